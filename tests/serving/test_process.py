"""`watchkeeper serve` as a real process: SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.processes import TIME_SCALE, wait_for
from tests.serving.slow_model import STARTED_DIR, SlowModel
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveStatsStore

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60 * TIME_SCALE
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server never became ready")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_in_flight_requests(tmp_path: Path, workers: int) -> None:
    settings = Settings(home=tmp_path, user="tester")
    with Registry(settings) as registry:
        frame = pd.DataFrame({"x": [1.0, 2.0]})
        registry.register("slow", SlowModel(), input_example=frame, stage="production")
    port = _free_port()
    started = tmp_path / "started"
    started.mkdir()
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           STARTED_DIR: str(started)}  # fmt: skip
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "serve",
            "--without-scheduler",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        _exercise(proc, f"http://127.0.0.1:{port}", started)
    # the shutdown flushed the logbook: every answered request is on disk
    now = datetime.now(UTC)
    logged = Logbook(settings.resolved_logbook_url).read(
        "slow", now - timedelta(hours=1), now + timedelta(hours=1)
    )
    assert sorted(logged.column("feature_x").to_pylist()) == [i + 0.5 for i in range(7)]
    # each worker published its live totals on the way out; summed, they count every request
    with Registry(settings) as registry:
        merged = LiveStatsStore(registry.engine).merged(
            "slow", now - timedelta(hours=1), now + timedelta(hours=1)
        )
    assert merged[(1, "requests")] == [7, 7, 0, 0]
    assert merged[(1, "rows")] == [7]


def _exercise(proc: subprocess.Popen[bytes], url: str, started: Path) -> None:
    try:
        _wait_ready(url, proc)
        results: list[int] = []

        def call(i: int) -> None:
            r = httpx.post(
                f"{url}/v1/models/slow:predict", json={"instances": [{"x": i + 0.5}]}, timeout=30
            )
            results.append(r.status_code)
            assert r.json()["predictions"] == [2.0 * i + 1.0]

        call(0)  # warm up: the first call also wakes the logbook writer
        threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 7)]
        for t in threads:
            t.start()
        # every request is inside a model call (each call marks its rows as it starts; x = i + 0.5
        # tells them from the warm-up's input example, 1 and 2)
        every = {f"{i + 0.5:g}" for i in range(7)}
        wait_for(lambda: {p.name for p in started.iterdir()} == every, 60, "calls in flight")
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert results == [200] * 7
    finally:
        if proc.poll() is None:
            proc.kill()
