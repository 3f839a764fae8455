"""Monitors declared in ``watchkeeper.toml``: parsed into specs, with errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.spec import MonitorSpec, declared_monitors

TOML = """
[watchkeeper]
home = "state"

[monitors.churn]
window = "1d"
every = "15m"
checks = ["quality", "drift", "concept"]
webhooks = ["http://127.0.0.1:9/hook"]
max_error_rate = 0.02
max_latency_p99_s = 0.25

[monitors.churn.drift]
correction = "bh"
method = { tenure = "ks" }
threshold = { plan = 0.2 }

[monitors.churn.quality]
null_rate = [0.01, 0.1]

[monitors.fraud]
"""


def test_monitors_come_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "watchkeeper.toml"
    path.write_text(TOML)
    settings = Settings.load(env={}, config_file=path)
    assert settings.home == Path("state")
    monitors = declared_monitors(settings)
    assert sorted(monitors) == ["churn", "fraud"]
    churn = monitors["churn"]
    assert churn.window == timedelta(days=1)
    assert churn.interval == timedelta(minutes=15)
    assert churn.checks == ("quality", "drift", "concept")
    assert churn.webhooks == ("http://127.0.0.1:9/hook",)
    assert churn.max_error_rate == 0.02
    assert churn.max_latency_p99_s == 0.25
    assert churn.drift.correction == "bh"
    assert churn.drift.method == {"tenure": "ks"}
    assert churn.drift.threshold == {"plan": 0.2}
    assert churn.quality.null_rate == (0.01, 0.1)
    fraud = monitors["fraud"]  # an empty table: every default
    assert fraud == MonitorSpec(model="fraud")
    assert fraud.interval == fraud.window == timedelta(hours=1)


@pytest.mark.parametrize(
    ("table", "field", "problem"),
    [
        ({"windw": "1h"}, "monitors.m.windw", "unknown key; known: checks, drift, every"),
        ({"window": "an hour"}, "monitors.m.window", "not a duration"),
        ({"checks": "drift"}, "monitors.m.checks", "Input should be a valid tuple"),
        ({"checks": ["drift", 3]}, "monitors.m.checks[1]", "Input should be a valid string"),
        ({"drift": {"sigma": 3}}, "monitors.m.drift.sigma", "unknown key; known: alpha, bins"),
        ({"drift": {"correction": "holm"}}, "monitors.m.drift.correction", "'bonferroni' or"),
        ({"drift": {"threshold": {"plan": "high"}}}, "monitors.m.drift.threshold.plan", "number"),
        ({"quality": {"null_rate": [0.5, 0.1]}}, "monitors.m", "warn <= fail"),
        ({"quality": {"null_rate": [0.5]}}, "monitors.m.quality.null_rate[1]", "Field required"),
        ({"max_error_rate": "lots"}, "monitors.m.max_error_rate", "Input should be a valid number"),
        ({"model": "other"}, "monitors.m.model", "the table's name gives it"),
    ],
)
def test_a_bad_declaration_names_its_key(table: dict, field: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        MonitorSpec.from_dict("m", table)
    assert [d.field for d in caught.value.details] == [field]
    assert problem in caught.value.details[0].problem
    assert field.split(".")[-1] in caught.value.message  # the CLI prints only the message


def test_a_bad_check_or_threshold_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown check"):
        MonitorSpec.from_dict("m", {"checks": ["drift", "vibes"]})
    with pytest.raises(InvalidInput, match="max_error_rate"):
        MonitorSpec(model="m", max_error_rate=2.0)


def test_monitors_must_be_tables(tmp_path: Path) -> None:
    path = tmp_path / "watchkeeper.toml"
    path.write_text('monitors = "all"\n')
    with pytest.raises(InvalidInput, match="watchkeeper.toml: monitors: Input should be a valid"):
        Settings.load(env={}, config_file=path)


def test_correction_none_is_no_correction() -> None:
    """TOML has no null: ``correction = "none"`` stands for None."""
    assert MonitorSpec.from_dict("m", {"drift": {"correction": "none"}}).drift.correction is None
