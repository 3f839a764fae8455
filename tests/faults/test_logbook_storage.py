"""The logbook's storage failing (a full filesystem, a read-only one) never fails a prediction:
rows wait in the bounded buffer, what does not fit is dropped and counted, and the buffered
rows are written once the storage works again.

The storage is a small tmpfs the test mounts (root only, as in CI) and fills or remounts
read-only; it is unmounted at teardown however the test ends.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.processes import wait_for
from tests.security.conftest import Served, iris_registry
from watchkeeper.logbook import Logbook

ROW = {"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                      "petal_width": 0.2}]}  # fmt: skip
REQUESTS, BUFFER = 120, 40


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        if os.environ.get("WATCHKEEPER_REQUIRE_POSTGRES"):  # CI runs as root: never skipped
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


def _fill(disk: Path) -> None:
    """Take every byte of ``disk``: the next write fails with ENOSPC."""
    with open(disk / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass


def _read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def _writable(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    (disk / "filler").unlink(missing_ok=True)


@pytest.mark.parametrize("fault", [_fill, _read_only], ids=["full", "read-only"])
def test_a_failing_logbook_store_never_fails_a_prediction_and_loses_only_the_overflow(
    tmp_path: Path, serve: Callable[..., Served], small_disk: Path,
    fault: Callable[[Path], None],
) -> None:  # fmt: skip
    """Promise: with the logbook's filesystem full or read-only, every prediction is answered;
    the flushes' failures are counted; rows beyond ``--log-buffer-rows`` are dropped and
    counted (never silently); once the storage works again the buffered rows are written, so
    what is in the logbook plus what was counted dropped is every answered request."""
    logbook_url = str(small_disk / "logbook")
    iris_registry(tmp_path / "home").close()
    fault(small_disk)
    served = serve("--without-scheduler", "--log-flush-interval", "0.2",
                   "--log-buffer-rows", str(BUFFER),
                   env={"WATCHKEEPER_LOGBOOK_URL": logbook_url})  # fmt: skip
    wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, 60, "ready")
    for _ in range(REQUESTS):
        answer = httpx.post(f"{served.url}/v1/models/iris:predict", json=ROW, timeout=30)
        assert answer.status_code == 200, answer.text
    wait_for(lambda: _metric(served.url, "watchkeeper_logbook_flush_failures_total") > 0, 60,
             "the failing flushes to be counted")  # fmt: skip
    dropped = _metric(served.url, "watchkeeper_logbook_dropped_total")
    assert REQUESTS - BUFFER <= dropped < REQUESTS

    _writable(small_disk)
    book = Logbook(logbook_url)

    def logged() -> int:
        now = datetime.now(UTC)
        return book.read("iris", now - timedelta(hours=1), now + timedelta(hours=1)).num_rows

    wait_for(lambda: logged() == REQUESTS - dropped, 60, "the buffered rows to be written")
