"""How fast the server refuses resource bombs, and what they cost concurrent requests.

    .venv/bin/python bench/bombs.py [--tries 5] [--rounds 3] [--duration 4] [--connections 4]
                                    [--bomb-rate R] [--small-only] [--skip-refusals]

One ``watchkeeper serve`` process (the LogisticRegression on 20 features of ``bench/serve.py``).
(i) For each bomb, the time from sending it to the server's answer, median and max over
``--tries`` (goal: under 50 ms; a body of 10 MB takes a few ms to upload over loopback, counted).
(ii) The p99 of ``--connections`` keep-alive connections sending one-row predictions, in
``--rounds`` rounds without bombs alternated with rounds where another process sends the bombs
one after the other without pause; medians of the rounds and their ratio (goal: about 1).
(iii) What the count before parsing adds to a one-row body: its cost next to the parse.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import orjson

from rollout import measure
from serve import free_port, serve_command, setup_registry, start, stop
from watchkeeper.serving.protocols import _bounds, kserve_v1

MIB = 1024 * 1024
Bomb = tuple[str, str, bytes, str]  # name, path, body, content type


def bombs(columns: list[str]) -> list[Bomb]:
    row = [0.5] * len(columns)
    record = dict(zip(columns, row, strict=True))
    json_ = "application/json"

    def tensor(shape: list[int], data: list[Any]) -> bytes:
        return orjson.dumps(
            {"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": data}]}
        )

    return [
        ("v2 shape [30000000, 0] (83 B)", "/v2/models/lr/infer", tensor([30_000_000, 0], []),
         json_),
        ("v2 shape [10000, 2^30], 20 values", "/v2/models/lr/infer", tensor([10_000, 2**30], row),
         json_),
        ("JSON 2.5 M one-value rows (10 MB)", "/v1/models/lr:predict",
         orjson.dumps({"instances": [[1]] * 2_500_000}), json_),
        ("JSON 10 001 valid rows (max + 1)", "/v1/models/lr:predict",
         orjson.dumps({"instances": [row] * 10_001}), json_),
        ("CSV 2.6 M lines (10 MB)", "/invocations",
         b"a,b\n" + b"1,2\n" * (10 * MIB // 4 - 10), "text/csv"),
        ("feedback body 20 MB", "/v1/feedback",
         orjson.dumps([{"request_id": "r", "label": 1}] * (20 * MIB // 30)), json_),
        ("feedback 8 000 outcome names", "/v1/feedback",
         orjson.dumps([{"request_id": "r", "outcome": {f"n{i}": 1 for i in range(8000)}}]), json_),
        ("5 MB value echoed in an error", "/v1/models/lr:predict",
         orjson.dumps({"instances": [{**record, "v" * 5 * MIB: 1}]}), json_),
        ("management API body 2 MB", "/api/v1/models/lr/rollback",
         orjson.dumps({"reason": "r" * 2 * MIB}), json_),
        ("unknown model name", "/v1/models/nope-1234:predict",
         orjson.dumps({"instances": [record]}), json_),
    ]  # fmt: skip


def send(url: str, bomb: Bomb) -> tuple[float, float, int, int]:
    """Over a new connection: seconds from the first byte sent to the answer, seconds from the
    last byte handed to the kernel to the answer, the answer's status and its size."""
    _, path, body, content_type = bomb
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start_t = time.perf_counter()
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered without reading it all: the answer is waiting
        sent_t = time.perf_counter()
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # counted as status 0 if nothing came
        end_t = time.perf_counter()
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    size = len(answer.partition(b"\r\n\r\n")[2])
    return end_t - start_t, end_t - sent_t, status, size


def refusal_times(url: str, columns: list[str], tries: int) -> None:
    print(f"{'bomb':<38}{'status':>7}{'answer B':>10}{'median ms':>11}{'max ms':>9}"
          f"{'after upload':>14}")  # fmt: skip
    for bomb in bombs(columns):
        runs = [send(url, bomb) for _ in range(tries)]
        times = [t * 1000 for t, _, _, _ in runs]
        after = [t * 1000 for _, t, _, _ in runs]
        statuses = sorted({s for _, _, s, _ in runs})
        size = max(n for _, _, _, n in runs)
        print(f"{bomb[0]:<38}{','.join(map(str, statuses)):>7}{size:>10}"
              f"{statistics.median(times):>11.1f}{max(times):>9.1f}"
              f"{statistics.median(after):>14.1f}")  # fmt: skip


def bomber(url: str, columns: list[str], ready: Any, stop_event: Any, sent: Any,
           rate: float, small_only: bool) -> None:  # fmt: skip
    """Sends every bomb in turn until told to stop (its own process: no GIL shared with the
    measuring client), ``rate`` a second (0: one after the other), only those under 64 KiB with
    ``small_only``; the bodies are built before ``ready`` is set."""
    made = [b for b in bombs(columns) if not small_only or len(b[2]) < 64 * 1024]
    ready.set()
    next_at = time.monotonic()
    while not stop_event.is_set():
        for bomb in made:
            if stop_event.is_set():
                return
            if rate > 0:
                next_at += 1 / rate
                time.sleep(max(0.0, next_at - time.monotonic()))
            send(url, bomb)
            sent.value += 1


def concurrent_p99(url: str, columns: list[str], args: argparse.Namespace) -> None:
    body = json.dumps({"instances": [[0.5] * len(columns)]})
    measure(url, body, args.connections, 1.0)  # warm up
    quiet: list[dict[str, float]] = []
    loud: list[dict[str, float]] = []
    bombs_sent = 0
    context = multiprocessing.get_context("spawn")
    for _ in range(args.rounds):
        quiet.append(measure(url, body, args.connections, args.duration))
        ready, stop_event, sent = context.Event(), context.Event(), context.Value("i", 0)
        given = (url, columns, ready, stop_event, sent, args.bomb_rate, args.small_only)
        process = context.Process(target=bomber, args=given)
        process.start()
        ready.wait(120)
        loud.append(measure(url, body, args.connections, args.duration))
        stop_event.set()
        process.join(120)
        bombs_sent += sent.value
    q99 = statistics.median(r["p99"] for r in quiet)
    l99 = statistics.median(r["p99"] for r in loud)
    q50 = statistics.median(r["p50"] for r in quiet)
    l50 = statistics.median(r["p50"] for r in loud)
    errors = sum(r["errors"] for r in quiet + loud)
    which = "bombs under 64 KiB" if args.small_only else "bombs"
    pace = f"{args.bomb_rate:g}/s" if args.bomb_rate > 0 else "back to back"
    print(f"\n{args.connections} connections of one-row predictions, median of "
          f"{args.rounds} rounds of {args.duration:g} s each way "
          f"({bombs_sent} {which} sent alongside, {pace}):")  # fmt: skip
    print(f"  p99 without bombs {q99:.2f} ms, with bombs {l99:.2f} ms: ratio {l99 / q99:.2f}")
    print(f"  p50 without bombs {q50:.2f} ms, with bombs {l50:.2f} ms: ratio {l50 / q50:.2f}")
    rps_q = statistics.median(r["rps"] for r in quiet)
    rps_l = statistics.median(r["rps"] for r in loud)
    print(f"  req/s without {rps_q:.0f}, with {rps_l:.0f}; non-2xx normal answers: {errors:.0f}")


def small_body_cost(columns: list[str]) -> None:
    body = orjson.dumps({"instances": [[0.5] * len(columns)]})
    n = 20_000
    count = timeit.timeit(lambda: _bounds.check_json(body, 10_000, len(columns)), number=n)
    parse = timeit.timeit(lambda: kserve_v1.parse(body, columns), number=n)
    print(f"\none-row body ({len(body)} B): the count before parsing {count / n * 1e6:.2f} µs "
          f"of a parse of {parse / n * 1e6:.2f} µs (parse included)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--bomb-rate",
        type=float,
        default=0.0,
        help="bombs a second during the loud rounds (0: back to back)",
    )
    parser.add_argument(
        "--small-only",
        action="store_true",
        help="only the bombs whose body is under 64 KiB (shapes, names, ...)",
    )
    parser.add_argument("--skip-refusals", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wk-bombs-bench-"))
    data = setup_registry(tmp / "home")
    columns = list(data["columns"])  # type: ignore[call-overload]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp / "home")}
    proc = start(serve_command(port, "--model", "lr", "--only", "lr"), env, f"{url}/healthz")
    try:
        one = {"instances": [[0.5] * len(columns)]}
        deadline = time.monotonic() + 60
        while httpx.post(f"{url}/v1/models/lr:predict", json=one).status_code != 200:
            assert time.monotonic() < deadline, "the model never answered"
            time.sleep(0.1)
        if not args.skip_refusals:
            refusal_times(url, columns, args.tries)
        concurrent_p99(url, columns, args)
        small_body_cost(columns)
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
