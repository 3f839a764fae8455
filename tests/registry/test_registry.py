"""Every registry operation and error, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.errors import (
    AliasNotFound,
    Conflict,
    IntegrityError,
    InvalidInput,
    InvalidReference,
    InvalidStage,
    ModelNotFound,
    NoEarlierProduction,
    StoreUnavailable,
    UnreadableModel,
    VersionNotFound,
)
from watchkeeper.registry import Registry

Iris = tuple[pd.DataFrame, pd.Series]


def _register(registry: Registry, model: LogisticRegression, X: pd.DataFrame, n: int = 1) -> None:
    for _ in range(n):
        registry.register("iris", model, input_example=X)


def test_register_records_everything(registry: Registry, iris: Iris, iris_model) -> None:
    X, _ = iris
    v1 = registry.register(
        "iris",
        iris_model,
        input_example=X,
        metrics={"accuracy": 0.97, "f1": 0.96},
        tags={"team": "risk"},
        run_id="run-42",
        run_url="http://ci/run/42",
        data_uri="s3://data/iris.parquet",
        data_hash="abc",
        description="first",
    )
    v2 = registry.register("iris", iris_model, input_example=X)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.metrics == {"accuracy": 0.97, "f1": 0.96}
    assert v1.tags == {"team": "risk"}
    assert (v1.run_id, v1.run_url, v1.data_uri, v1.data_hash) == (
        "run-42",
        "http://ci/run/42",
        "s3://data/iris.parquet",
        "abc",
    )
    assert v1.stage == "none"
    assert v1.flavor == "sklearn"
    assert v1.created_by == "tester"
    assert [c["name"] for c in v1.signature["columns"]] == list(X.columns)
    assert registry.get("iris@1") == v1
    model = registry.get_model("iris")
    assert model.latest_version == 2
    assert model.production_version is None


def test_resolve_by_version_stage_alias_latest(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 3)
    registry.promote("iris", 2, "production")
    registry.promote("iris", 3, "staging")
    registry.set_alias("iris", 1, "champion")
    assert registry.get("iris@production").version == 2
    assert registry.get("iris").version == 2  # a bare name means production
    assert registry.get("iris@staging").version == 3
    assert registry.get("iris@champion").version == 1
    assert registry.get("iris@latest").version == 3
    assert registry.get("iris@1").aliases == ("champion",)


def test_not_found_and_bad_references(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0])
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        registry.get("nope@1")
    with pytest.raises(VersionNotFound, match="has no version 9"):
        registry.get("iris@9")
    with pytest.raises(VersionNotFound, match="has no production version"):
        registry.get("iris@production")
    with pytest.raises(AliasNotFound, match="no alias 'champion'"):
        registry.get("iris@champion")
    with pytest.raises(InvalidReference, match="nothing after '@'"):
        registry.get("iris@")
    with pytest.raises(InvalidInput, match="invalid model name"):
        registry.get("bad name@1")


def test_promotion_archives_previous_production(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 2)
    registry.promote("iris", 1, "production")
    registry.promote("iris", 2, "production")
    stages = {v.version: v.stage for v in registry.list_versions("iris")}
    assert stages == {1: "archived", 2: "production"}


def test_illegal_stage_changes_nothing(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0])
    before = registry.history("iris")
    with pytest.raises(InvalidStage, match="unknown stage 'prod'"):
        registry.promote("iris", 1, "prod")
    assert registry.get("iris@1").stage == "none"
    assert registry.history("iris") == before


def test_rollback_walks_back_through_production_history(
    registry: Registry, iris: Iris, iris_model
) -> None:
    _register(registry, iris_model, iris[0], 3)
    for version in (1, 2, 3):
        registry.promote("iris", version, "production")
    revision = registry.get_model("iris").revision
    assert registry.rollback_target("iris") == 2
    assert registry.get_model("iris").revision == revision  # asking changes nothing
    assert registry.rollback("iris", reason="bad latency").version == 2
    assert registry.get("iris@production").version == 2
    assert registry.get_model("iris").revision > revision
    assert registry.rollback_target("iris") == 1
    assert registry.rollback("iris").version == 1
    assert registry.rollback_target("iris") is None
    with pytest.raises(NoEarlierProduction, match="no earlier production version"):
        registry.rollback("iris")
    assert registry.get("iris@production").version == 1  # a failed rollback changes nothing
    stages = {v.version: v.stage for v in registry.list_versions("iris")}
    assert stages == {1: "production", 2: "archived", 3: "archived"}
    # a new promotion after rollbacks, then a rollback, returns to the one before it
    registry.promote("iris", 3, "production")
    assert registry.rollback("iris").version == 1


def test_rollback_skips_deleted_versions(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 3)
    for version in (1, 2, 3):
        registry.promote("iris", version, "production")
    registry.delete_version("iris", 2)
    assert registry.rollback_target("iris") == 1
    assert registry.rollback("iris").version == 1


def test_rollback_without_history_is_a_clear_error(
    registry: Registry, iris: Iris, iris_model
) -> None:
    _register(registry, iris_model, iris[0])
    registry.promote("iris", 1, "production")
    with pytest.raises(NoEarlierProduction, match="'iris' has no earlier production"):
        registry.rollback("iris")
    with pytest.raises(ModelNotFound, match="'ghost'"):
        registry.rollback("ghost")


def test_aliases_move_and_are_removed(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 2)
    registry.set_alias("iris", 1, "champion")
    registry.set_alias("iris", 2, "champion")
    assert registry.get("iris@champion").version == 2
    assert registry.get("iris@1").aliases == ()
    registry.remove_alias("iris", "champion")
    with pytest.raises(AliasNotFound, match="no alias 'champion'"):
        registry.get("iris@champion")
    with pytest.raises(AliasNotFound, match="no alias 'champion'"):
        registry.remove_alias("iris", "champion")
    with pytest.raises(InvalidInput, match="invalid alias 'production'"):
        registry.set_alias("iris", 1, "production")


def test_delete_refused_in_production_and_removes_files(
    registry: Registry, iris: Iris, iris_model
) -> None:
    _register(registry, iris_model, iris[0], 2)
    registry.promote("iris", 1, "production")
    with pytest.raises(Conflict, match="in production"):
        registry.delete_version("iris", 1)
    doomed = registry.get("iris@2")
    files = Path(doomed.artifact_uri)
    assert files.is_dir()
    registry.delete_version("iris", 2)
    assert not files.exists()
    with pytest.raises(VersionNotFound, match="no version 2"):
        registry.get("iris@2")
    assert registry.register("iris", registry.load("iris@1").path).version == 3  # never reused


def test_load_verifies_hashes(registry: Registry, iris: Iris, iris_model) -> None:
    X, _ = iris
    _register(registry, iris_model, X)
    loaded = registry.load("iris@1")
    np.testing.assert_array_equal(loaded.predict(X), iris_model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), iris_model.predict_proba(X))
    version = registry.get("iris@1")
    model_file = next(p for p in Path(version.artifact_uri).iterdir() if p.name != "manifest.json")
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match=model_file.name):
        registry.load("iris@1")


def test_load_with_missing_files_is_a_clear_error(
    registry: Registry, iris: Iris, iris_model
) -> None:
    _register(registry, iris_model, iris[0])
    import shutil

    shutil.rmtree(registry.get("iris@1").artifact_uri)
    with pytest.raises(StoreUnavailable, match="files of iris@1 are missing"):
        registry.load("iris@1")


def test_unreadable_model_leaves_registry_unchanged(registry: Registry, tmp_path: Path) -> None:
    junk = tmp_path / "model.pkl"
    junk.write_bytes(b"this is not a pickle")
    with pytest.raises(UnreadableModel, match=r"model\.pkl"):
        registry.register("junk", junk)
    assert registry.list_models() == []
    artifacts = Path(registry.artifacts.root)
    assert not artifacts.exists() or not any(artifacts.rglob("*.pkl"))


def test_search_by_metric_tag_and_stage(registry: Registry, iris: Iris, iris_model) -> None:
    X, _ = iris
    for acc, team in ((0.7, "a"), (0.9, "b"), (0.95, "b")):
        registry.register(
            "iris", iris_model, input_example=X, metrics={"acc": acc}, tags={"team": team}
        )
    registry.promote("iris", 3, "production")
    found = registry.search(["metrics.acc >= 0.9", "tags.team = b"])
    assert [v.version for v in found] == [2, 3]
    assert [v.version for v in registry.search(["stage=production"])] == [3]
    assert [v.version for v in registry.search(["metrics.acc<0.8"], name="iris")] == [1]
    with pytest.raises(InvalidInput, match="not a number"):
        registry.search(["metrics.acc > high"])
    with pytest.raises(InvalidInput, match="cannot read filter"):
        registry.search(["accuracy is good"])


def test_history_is_an_audit_trail(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 2)
    registry.promote("iris", 1, "production", reason="first release")
    registry.promote("iris", 2, "production")
    registry.rollback("iris", reason="errors")
    events = registry.history("iris")
    actions = [(e.action, e.version, e.from_value, e.to_value) for e in reversed(events)]
    assert actions[0] == ("create_model", None, None, None)
    assert actions[-4:] == [
        ("stage", 1, "none", "production"),
        ("stage", 1, "production", "archived"),
        ("stage", 2, "none", "production"),
        ("rollback", 1, "2", "1"),
    ]
    assert {e.actor for e in events} == {"tester"}
    assert events[0].reason == "errors"
    with pytest.raises(ModelNotFound, match="ghost"):
        registry.history("ghost")


def test_reference_profile_is_stored_with_the_version(
    registry: Registry, iris: Iris, iris_model, tmp_path: Path
) -> None:
    X, _ = iris
    data = tmp_path / "train.parquet"
    X.to_parquet(data)
    version = registry.register("iris", iris_model, input_example=X, reference_data=data)
    assert version.has_profile
    assert version.data_uri == str(data)
    assert version.data_hash is not None
    assert len(version.data_hash) == 64
    profile = registry.profile("iris@1")
    assert profile is not None
    assert profile.row_count == len(X)
    petal = profile.features["petal_length"]
    assert petal.count == len(X)
    assert petal.min == X["petal_length"].min()
    assert petal.max == X["petal_length"].max()
    assert profile.predictions is not None
    assert registry.register("iris", iris_model, input_example=X).has_profile is False
    assert registry.profile("iris@2") is None


def test_reference_missing_columns_is_refused(registry: Registry, iris: Iris, iris_model) -> None:
    X, _ = iris
    with pytest.raises(InvalidInput, match="petal_width"):
        registry.register(
            "iris", iris_model, input_example=X, reference_data=X.drop(columns=["petal_width"])
        )
    assert registry.list_models() == []


def test_revisions_change_on_routing_changes(registry: Registry, iris: Iris, iris_model) -> None:
    _register(registry, iris_model, iris[0], 2)
    before = registry.revisions()["iris"]
    registry.promote("iris", 1, "production")
    middle = registry.revisions()["iris"]
    registry.set_alias("iris", 2, "challenger")
    assert before < middle < registry.revisions()["iris"]


def test_registering_a_version_moves_the_revision(
    registry: Registry, iris: Iris, iris_model
) -> None:
    """Regression (issue 17, item 4): registering did not bump the model's revision, so a
    server kept answering ``name@latest`` with the old version. Every change that moves
    ``latest``, an alias or a stage moves the revision servers poll."""
    _register(registry, iris_model, iris[0], 1)
    steps = [registry.revisions()["iris"]]
    _register(registry, iris_model, iris[0], 1)  # latest: 1 -> 2
    steps.append(registry.revisions()["iris"])
    registry.set_alias("iris", 1, "champion")
    steps.append(registry.revisions()["iris"])
    registry.remove_alias("iris", "champion")
    steps.append(registry.revisions()["iris"])
    registry.delete_version("iris", 2)  # latest: 2 -> 1
    steps.append(registry.revisions()["iris"])
    assert steps == sorted(set(steps)), steps
    assert registry.get("iris@latest").version == 1
