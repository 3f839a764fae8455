"""Delivering alert changes: to the log, and to webhooks as JSON POSTs with retries.

``monitoring/`` decides when alerts open and close but never speaks HTTP (DESIGN.md); whoever
runs monitors (``watchkeeper monitor run``, the scheduler) hands the changes to these sinks.
A webhook is retried a bounded number of times with jittered backoff (``tenacity``); one that
keeps failing is logged and counted, never silently skipped. The scheduler delivers through
:class:`BackgroundSink`, so a dead endpoint costs its round nothing.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from watchkeeper.registry.monitoring import Alert, AlertChanges

log = logging.getLogger("watchkeeper.alerts")


class AlertSink(Protocol):
    def deliver(self, changes: AlertChanges) -> None: ...


def payload(changes: AlertChanges) -> dict[str, Any]:
    """The JSON body: ``{"opened": [...], "updated": [...], "closed": [...]}``."""

    def one(alert: Alert) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(alert).items()}  # fmt: skip

    return {
        "opened": [one(a) for a in changes.opened],
        "updated": [one(a) for a in changes.updated],
        "closed": [one(a) for a in changes.closed],
    }


class LogSink:
    """Opened alerts as warnings, closed ones as info; updates stay quiet (deduplication)."""

    def deliver(self, changes: AlertChanges) -> None:
        for alert in changes.opened:
            log.warning("ALERT opened #%s: %s", alert.id, alert.message)
        for alert in changes.closed:
            log.info("ALERT closed #%s: %s recovered", alert.id, alert.message.split(":")[0])


@dataclass(frozen=True, kw_only=True)
class WebhookPolicy:
    """At most ``attempts`` tries, waiting ``initial_delay`` · 2^n plus up to ``jitter``
    seconds between them (never more than ``max_delay``); each try gives up after ``timeout``."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.5
    timeout: float = 5.0


class WebhookSink:
    """Posts alert changes to ``url`` with bounded retries (``tenacity``), in the caller's
    thread: wrap it in :class:`BackgroundSink` wherever the caller must not wait."""

    def __init__(
        self,
        url: str,
        *,
        policy: WebhookPolicy = WebhookPolicy(),
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.policy = policy
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.sleep = sleep
        self.failures = 0  # deliveries given up after every attempt

    def deliver(self, changes: AlertChanges) -> None:
        if not (changes.opened or changes.updated or changes.closed):
            return
        body = json.dumps(payload(changes)).encode()
        policy = self.policy
        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay)
            + wait_random(0, policy.jitter),
            retry=retry_if_result(lambda problem: problem is not None),
            sleep=self.sleep,
            before_sleep=self._failed_attempt,
            retry_error_callback=lambda state: _problem(state),
        )  # fmt: skip
        problem = retrying(self._post, body)
        if problem is None:
            return
        self._failed_attempt_log(policy.attempts, problem)
        self.failures += 1
        log.error("webhook %s: gave up on %d alert change(s)", self.url,
                  len(changes.opened) + len(changes.updated) + len(changes.closed))  # fmt: skip

    def _failed_attempt(self, state: RetryCallState) -> None:
        self._failed_attempt_log(state.attempt_number, _problem(state))

    def _failed_attempt_log(self, attempt: int, problem: str | None) -> None:
        log.warning("webhook %s attempt %d/%d failed: %s", self.url, attempt,
                    self.policy.attempts, problem)  # fmt: skip

    def _post(self, body: bytes) -> str | None:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.policy.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)
        return None if 200 <= status < 300 else f"HTTP {status}"


def _problem(state: RetryCallState) -> str | None:
    outcome = state.outcome
    if outcome is None:
        return "not attempted"
    if outcome.failed:
        return repr(outcome.exception())
    result = outcome.result()
    return None if result is None else str(result)


class BackgroundSink:
    """Hands alert changes to ``sink`` on a thread of its own, through a bounded queue: a slow
    or dead endpoint never holds up the caller (the scheduler's round). A full queue drops the
    changes, logged and counted in ``dropped``; a sink that raises is logged and counted in
    ``errors``, and the thread goes on with the next changes."""

    def __init__(self, sink: AlertSink, *, name: str, maxsize: int = 100) -> None:
        self.sink, self.name = sink, name
        self.dropped = 0
        self.errors = 0
        self._queue: queue.Queue[AlertChanges] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def deliver(self, changes: AlertChanges) -> None:
        if not (changes.opened or changes.updated or changes.closed):
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"wk-notify-{self.name}",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        try:
            self._queue.put_nowait(changes)
        except queue.Full:
            self.dropped += 1
            log.error("alert delivery %s: queue full, dropped %d alert change(s)", self.name,
                      len(changes.opened) + len(changes.updated) + len(changes.closed))  # fmt: skip

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                changes = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.sink.deliver(changes)
            except Exception:  # the next alert still goes out
                self.errors += 1
                log.exception("alert delivery %s failed", self.name)
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every queued change was handled (delivered or given up)."""
        self._queue.join()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def deliver_all(sinks: Sequence[AlertSink], changes: AlertChanges) -> None:
    for sink in sinks:
        sink.deliver(changes)
