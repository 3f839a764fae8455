"""Status colours: every figure on the dashboard is shown with one of four states.

``fail`` is the alert colour (red), ``warn`` amber, ``ok`` green, ``none`` grey (no data).
Monitor results carry their own status; live figures are graded here.
"""

from __future__ import annotations

from collections.abc import Iterable

STATES = ("fail", "warn", "ok", "none")
COLOURS = {"fail": "#c62828", "warn": "#ef6c00", "ok": "#2e7d32", "none": "#9e9e9e"}

ERROR_RATE_WARN = 0.01
ERROR_RATE_FAIL = 0.05
"""Share of answered requests that were server errors (5xx)."""


def grade(value: float | None, warn: float, fail: float) -> str:
    """``fail`` at or above ``fail``, ``warn`` at or above ``warn``, else ``ok``.

    >>> grade(0.02, 0.01, 0.05), grade(None, 0.01, 0.05)
    ('warn', 'none')
    """
    if value is None:
        return "none"
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


def of_result(status: str | None) -> str:
    """A monitor result's status as a colour state (``skipped`` and missing are grey)."""
    return status if status in ("fail", "warn", "ok") else "none"


def worst(states: Iterable[str]) -> str:
    """The most serious state among ``states``.

    >>> worst(["ok", "none", "warn"])
    'warn'
    """
    found = set(states)
    return next((s for s in ("fail", "warn", "ok") if s in found), "none")
