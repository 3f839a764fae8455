"""Cron times: the one helper batch schedules and retraining triggers both use.

It sits at the bottom of the house beside ``config`` (it needs only ``errors``), so neither
``batch`` nor ``retraining`` imports the other for it.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from watchkeeper.errors import InvalidInput


def next_time(cron: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after`` (UTC).

    >>> from datetime import UTC
    >>> next_time("0 2 * * *", datetime(2026, 11, 26, 12, tzinfo=UTC)).isoformat()
    '2026-11-27T02:00:00+00:00'
    """
    if not croniter.is_valid(cron):
        raise InvalidInput(f"'{cron}' is not a cron expression (e.g. '0 2 * * *': 02:00 daily)")
    found: datetime = croniter(cron, after).get_next(datetime)
    return found
