"""Deployment records and leases, on SQLite and PostgreSQL: compare-and-set, history, audit."""

from __future__ import annotations

import pytest

from watchkeeper.errors import Conflict, InvalidInput, VersionNotFound
from watchkeeper.registry import Registry


@pytest.fixture
def registry(two_versions: Registry) -> Registry:
    return two_versions


def test_start_update_and_promote_in_one_record(registry: Registry) -> None:
    store = registry.deployments
    revision = registry.store.revisions()["m"]
    d = store.start("m", "canary", 2, share=0.01, config={"steps": [0.01, 1.0]}, actor="ann",
                    reason="try v2")  # fmt: skip
    assert (d.mode, d.state, d.candidate, d.baseline, d.share, d.active) == (
        "canary",
        "running",
        2,
        1,
        0.01,
        True,
    )
    assert registry.store.revisions()["m"] > revision  # servers see the change
    with pytest.raises(Conflict, match="already has a canary"):
        store.start("m", "shadow", 2, share=1.0, config={}, actor="bob", reason="")
    moved = store.update("m", d.revision, actor="controller", reason="step 1 passed", step=1,
                         share=1.0)  # fmt: skip
    assert moved.step == 1
    assert moved.step_started_at >= d.step_started_at
    with pytest.raises(Conflict, match="changed"):  # a stale writer loses
        store.update("m", d.revision, actor="bob", reason="", share=0.5)
    done = store.update("m", moved.revision, actor="controller", reason="all steps passed",
                        promote=True, state="promoted")  # fmt: skip
    assert not done.active
    assert registry.get("m@production").version == 2
    assert registry.get("m@1").stage == "archived"
    assert registry.rollback("m").version == 1  # the old one is still there to go back to
    events = store.events("m")
    assert [e.reason for e in events] == ["all steps passed", "step 1 passed", "try v2"]
    audit = [e for e in registry.history("m") if e.action == "deploy"]
    assert [e.actor for e in audit] == ["controller", "controller", "ann"]


def test_bad_starts_are_refused(registry: Registry) -> None:
    store = registry.deployments
    with pytest.raises(Conflict, match="already the production"):
        store.start("m", "canary", 1, share=0.01, config={}, actor="a", reason="")
    with pytest.raises(VersionNotFound):
        store.start("m", "canary", 9, share=0.01, config={}, actor="a", reason="")
    with pytest.raises(InvalidInput, match="mode"):
        store.start("m", "yolo", 2, share=0.01, config={}, actor="a", reason="")
    with pytest.raises(InvalidInput, match="share"):
        store.start("m", "canary", 2, share=1.5, config={}, actor="a", reason="")
    assert store.get("m") is None  # nothing half-written
