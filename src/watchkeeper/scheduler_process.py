"""The scheduler as a supervised child process of ``watchkeeper serve``.

Monitor runs over large windows, batch jobs and retraining are heavy: run on threads of a
serving process they compete with the hot path for the interpreter and the cores. So
``watchkeeper serve`` starts ``watchkeeper scheduler`` as a child process at a lower CPU
priority (``nice``), one per ``serve`` command whatever ``--workers`` says, and:

- restarts it with backoff (1 s doubling to 30 s) when it exits unexpectedly, counting the
  restarts and logging each exit status;
- stops it (SIGTERM, then SIGKILL after ``stop_timeout``) when the server stops;
- tells it its parent's pid, so a child whose server was killed outright stops by itself
  (it checks every second) and hands its lease over.

The database lease still keeps one scheduler acting across replicas.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from watchkeeper.config import Settings

log = logging.getLogger("watchkeeper.scheduler")
PARENT_ENV = "WATCHKEEPER_PARENT_PID"
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0


@dataclass(frozen=True, kw_only=True)
class ChildOptions:
    interval: float = 1.0  # seconds between the scheduler's looks
    lease_ttl: float = 10.0
    nice: int = 10  # added to the child's CPU niceness: serving keeps the cores it needs
    log_level: str = "info"
    stop_timeout: float = 20.0  # after SIGTERM, before SIGKILL

    def command(self) -> list[str]:
        return [sys.executable, "-m", "watchkeeper", "scheduler",
                "--interval", f"{self.interval:g}", "--lease-ttl", f"{self.lease_ttl:g}",
                "--nice", str(self.nice), "--log-level", self.log_level]  # fmt: skip


class SchedulerProcess:
    """Runs ``watchkeeper scheduler`` beside this process until :meth:`stop`."""

    def __init__(self, settings: Settings, options: ChildOptions | None = None) -> None:
        self.settings = settings
        self.options = options or ChildOptions()
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="wk-scheduler-child",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        env = {**os.environ, **self.settings.to_env(), PARENT_ENV: str(os.getpid())}
        with self._lock:
            if self._stop.is_set():
                return None
            self._child = subprocess.Popen(self.options.command(), env=env)
            return self._child

    def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                child = self._spawn()
            except OSError as exc:
                log.error("could not start the scheduler process: %s", exc)
                child = None
            if child is None and self._stop.is_set():
                return
            if child is not None:
                began = time.monotonic()
                code = child.wait()
                if self._stop.is_set():
                    return
                if time.monotonic() - began > BACKOFF_MAX:  # it had been running well
                    backoff = BACKOFF_FIRST
                log.error("the scheduler process (pid %d) exited with status %s; "
                          "restarting in %g s", child.pid, code, backoff)  # fmt: skip
            self.restarts += 1
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def stop(self) -> None:
        """Ask the child to finish its round and hand its lease over; kill it if it won't."""
        with self._lock:
            self._stop.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(self.options.stop_timeout)
            except subprocess.TimeoutExpired:
                log.error("the scheduler process did not stop in %g s: killed",
                          self.options.stop_timeout)  # fmt: skip
                child.kill()
                child.wait()
        if self._thread is not None:
            self._thread.join(5.0)
