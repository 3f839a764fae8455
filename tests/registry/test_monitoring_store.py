"""Monitor results as time series, and alerts that open, deduplicate and close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper.config import Settings
from watchkeeper.errors import AlertNotFound, InvalidInput
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore

T0 = datetime(2026, 11, 26, 10, tzinfo=UTC)


def _result(hour: int, status: str, value: float, *, feature: str = "age") -> CheckResult:
    start = T0 + timedelta(hours=hour)
    return CheckResult(model="churn", version=3, window_start=start,
                       window_end=start + timedelta(hours=1), check="drift", feature=feature,
                       statistic="wasserstein", value=value, threshold=0.1,
                       status=status)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def store(settings: Settings):
    with Registry(settings) as registry:
        yield MonitoringStore(registry.engine, clock=lambda: T0)


def test_results_form_a_time_series(store: MonitoringStore) -> None:
    store.record([_result(2, "ok", 0.02), _result(0, "ok", 0.01), _result(1, "fail", 0.3)])
    store.record([_result(1, "ok", 0.05, feature="income")])
    series = store.series("churn", check="drift", feature="age")
    assert [(r.window_start.hour, r.value, r.status) for r in series] == [
        (10, 0.01, "ok"),
        (11, 0.3, "fail"),
        (12, 0.02, "ok"),
    ]
    assert series[1].window_start.tzinfo is not None
    assert len(store.series("churn", since=T0 + timedelta(hours=1))) == 3
    assert store.series("other") == []


def test_alert_opens_once_updates_and_closes(store: MonitoringStore) -> None:
    first = store.apply_alerts([_result(0, "fail", 0.3)])
    assert len(first.opened) == 1
    assert first.opened[0].status == "open"
    assert "feature 'age' wasserstein = 0.3" in first.opened[0].message
    again = store.apply_alerts([_result(1, "fail", 0.4)])  # still failing: same alert
    assert again.opened == ()
    assert len(again.updated) == 1
    assert again.updated[0].id == first.opened[0].id
    assert again.updated[0].value == 0.4
    assert len(store.alerts("churn")) == 1
    warn = store.apply_alerts([_result(2, "warn", 0.09)])  # in between: nothing changes
    assert (warn.opened, warn.updated, warn.closed) == ((), (), ())
    recovered = store.apply_alerts([_result(3, "ok", 0.02)])
    assert [a.id for a in recovered.closed] == [first.opened[0].id]
    assert store.alerts("churn") == []
    assert store.alerts("churn", open_only=False)[0].closed_at is not None
    reopened = store.apply_alerts([_result(4, "fail", 0.5)])
    assert reopened.opened[0].id != first.opened[0].id


def test_ok_without_an_open_alert_does_nothing(store: MonitoringStore) -> None:
    changes = store.apply_alerts([_result(0, "ok", 0.01)])
    assert (changes.opened, changes.updated, changes.closed) == ((), (), ())


def test_acknowledge(store: MonitoringStore) -> None:
    alert = store.apply_alerts([_result(0, "fail", 0.3)]).opened[0]
    assert store.acknowledge(alert.id, "alice").acknowledged_by == "alice"
    with pytest.raises(AlertNotFound, match="no alert with id 999"):
        store.acknowledge(999, "alice")


def test_bad_results_are_refused() -> None:
    with pytest.raises(InvalidInput, match="status must be one of"):
        _result(0, "broken", 0.1)
    with pytest.raises(InvalidInput, match="window_end is before"):
        CheckResult(model="m", version=None, window_start=T0, window_end=T0 - timedelta(1),
                    check="drift", feature="", statistic="x", value=None, threshold=None,
                    status="ok")  # fmt: skip
    assert _result(0, "ok", float("nan")).value is None


def test_latest_result_per_key(store: MonitoringStore) -> None:
    store.record([_result(0, "ok", 0.01), _result(1, "fail", 0.3)])
    store.record([_result(0, "ok", 0.02, feature="income")])
    latest = {(r.feature, r.value) for r in store.latest("churn")}
    assert latest == {("age", 0.3), ("income", 0.02)}
    assert store.latest("nobody") == []
