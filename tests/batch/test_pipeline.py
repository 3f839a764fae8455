"""batch.pipeline: reading ahead and writing behind, errors carried across, chunks bounded."""

from __future__ import annotations

import threading

import pytest

from watchkeeper.batch.pipeline import DEPTH, ReadAhead, WriteBehind

# queued on both sides, one being read, one scored, one written (the module's promise)
BOUND = 2 * DEPTH + 3


class _Broken(Exception):
    pass


def test_read_ahead_yields_every_item_in_order() -> None:
    assert list(ReadAhead(iter(range(50)))) == list(range(50))


def test_a_read_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def source():
        yield from range(3)
        raise _Broken("bad page")

    seen: list[int] = []
    reader = ReadAhead(source())

    def consume() -> None:
        for item in reader:
            seen.append(item)

    with pytest.raises(_Broken, match="bad page"):
        consume()
    reader.close()
    assert seen == [0, 1, 2]


def test_closing_early_stops_the_reader_and_closes_its_source() -> None:
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    reader = ReadAhead(endless())
    assert next(iter(reader)) == 0
    reader.close()  # returns: the thread blocked on a full queue saw the stop
    assert closed.is_set()


def test_a_write_error_is_raised_in_the_callers_thread_and_nothing_hangs() -> None:
    written: list[int] = []

    def write(item: int) -> None:
        if item == 2:
            raise _Broken("disk full")
        written.append(item)

    writer: WriteBehind[int] = WriteBehind(write)

    def produce() -> None:
        for item in range(100):  # far more than the queue holds: put must not block forever
            writer.put(item)
        writer.close()

    with pytest.raises(_Broken, match="disk full"):
        produce()
    writer.abort()
    assert written == [0, 1]


def test_close_raises_a_write_error_of_the_last_items() -> None:
    def write(item: int) -> None:
        raise _Broken(f"item {item}")

    writer: WriteBehind[int] = WriteBehind(write)
    writer.put(0)
    with pytest.raises(_Broken, match="item 0"):
        writer.close()


def test_chunks_in_flight_stay_bounded_when_the_writer_is_slow() -> None:
    """A reader far ahead of a stuck writer would hold the whole input in memory. The writer
    waits for the source to reach item 40 (or a time-out): an unbounded pipeline gets there
    with nothing written; a bounded one stalls, the writer's wait times out, and it goes on."""
    reached = threading.Event()
    yielded = [0]
    written = [0]
    most = [0]

    def source():
        for n in range(60):
            most[0] = max(most[0], yielded[0] - written[0])
            if n == 40:
                reached.set()
            yielded[0] += 1
            yield n

    def write(item: int) -> None:
        if written[0] == 0:
            reached.wait(timeout=2.0)
        written[0] += 1

    writer: WriteBehind[int] = WriteBehind(write)
    reader = ReadAhead(source())
    for item in reader:  # the scorer: hands each chunk on
        writer.put(item)
    writer.close()
    reader.close()
    assert written[0] == 60
    assert most[0] <= BOUND
