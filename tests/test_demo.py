"""``watchkeeper demo --fast``: the whole loop, end to end, against a real server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from tests.processes import TIME_SCALE
from watchkeeper.config import Settings
from watchkeeper.demo import story
from watchkeeper.demo.story import run_demo
from watchkeeper.registry import Registry


def test_the_demo_closes_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the story's own give-up bound, stretched like every bound on a loaded run
    stretched = replace(story.FAST, deadline=story.FAST.deadline * TIME_SCALE)
    monkeypatch.setattr(story, "FAST", stretched)
    console = Console(record=True, width=120)
    report = tmp_path / "report.html"
    outcome = run_demo(tmp_path / "home", fast=True, report=report, console=console)
    text = console.export_text()
    assert outcome.retrained_version == 2
    assert outcome.production == 2  # the retrained model went through shadow and canary
    assert outcome.bad_rolled_back
    assert "error_rate" in text
    with Registry(Settings(home=tmp_path / "home")) as registry:
        bad = registry.get(f"churn@{outcome.bad_version}")
        assert bad.stage != "production"
        modes = [e.mode for e in reversed(registry.deployments.events("churn"))]
    assert modes[:2] == ["shadow", "canary"]  # the retrained model: shadow first
    assert 0 < outcome.failed < outcome.requests * 0.05  # only the broken canary's answers
    assert report.stat().st_size > 100_000
    for step in ("alert", "retraining triggered", "gate pass", "is production"):
        assert step in text
