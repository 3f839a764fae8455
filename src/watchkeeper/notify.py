"""Delivering alert changes: to the log, and to webhooks as JSON POSTs with retries.

``monitoring/`` decides when alerts open and close but never speaks HTTP (DESIGN.md); whoever
runs monitors (``watchkeeper monitor run``, the scheduler) hands the changes to these sinks.
A webhook that keeps failing is logged and counted, never silently skipped.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

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
    """Retries with exponential backoff: 0.5 s, 1 s, 2 s, ... at most ``attempts`` tries."""

    attempts: int = 5
    initial_delay: float = 0.5
    timeout: float = 10.0


class WebhookSink:
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
        delay = self.policy.initial_delay
        for attempt in range(1, self.policy.attempts + 1):
            problem = self._post(body)
            if problem is None:
                return
            log.warning("webhook %s attempt %d/%d failed: %s", self.url, attempt,
                        self.policy.attempts, problem)  # fmt: skip
            if attempt < self.policy.attempts:
                self.sleep(delay)
                delay *= 2
        self.failures += 1
        log.error("webhook %s: gave up on %d alert change(s)", self.url,
                  len(changes.opened) + len(changes.updated) + len(changes.closed))  # fmt: skip

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


def deliver_all(sinks: Sequence[AlertSink], changes: AlertChanges) -> None:
    for sink in sinks:
        sink.deliver(changes)
