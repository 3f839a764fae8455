"""``watchkeeper ui``: the dashboard alone, on localhost only while no token exists."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_ui_serves_the_dashboard_on_localhost_without_tokens(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", "ui", "--host", "0.0.0.0", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    page = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and page is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/ui", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert page is not None
    assert page.status_code == 200
    assert "No models registered yet" in page.text
    assert "listening on 127.0.0.1 only, not 0.0.0.0" in err
    assert f"watchkeeper dashboard on http://127.0.0.1:{port}/ui" in out
