"""Importing a real MLflow registry (a SQLite tracking store made by MLflow in the test)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.mlflow_store import Store, make_store, quiet
from watchkeeper.errors import MissingDependency, ModelNotFound, StoreUnavailable
from watchkeeper.registry import Registry
from watchkeeper.registry.mlflow_import import (
    PARAM_PREFIX,
    SOURCE_TAG,
    VERSION_TAG,
    import_mlflow,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return make_store(tmp_path_factory.mktemp("mlflow"))


def test_import_copies_versions_lineage_and_aliases(registry: Registry, store: Store) -> None:
    """Every MLflow version arrives with its signature, run metrics and parameters, run id,
    tags and description; MLflow's alias names the same version here; the registered model's
    description and tags come too; a version in MLflow's Production stage is not promoted."""
    report = import_mlflow(registry, store.uri)
    assert report.ok
    assert [(v.mlflow_version, v.version, v.action) for v in report.versions] == [
        (1, 1, "imported"),
        (2, 2, "imported"),
    ]
    for number in (1, 2):
        version = registry.get(f"iris@{number}")
        assert version.signature is not None
        assert [c["name"] for c in version.signature["columns"]] == list(store.X.columns)
        assert version.metrics == {"accuracy": pytest.approx(store.accuracy[number])}
        assert version.run_id == store.run_ids[number]
        assert version.tags[SOURCE_TAG] == f"models:/iris/{number}"
        assert version.tags[VERSION_TAG] == str(number)
        assert version.tags[f"{PARAM_PREFIX}C"] == {1: "0.5", 2: "2.0"}[number]
        assert version.stage == "none"
    second = registry.get("iris@2")
    assert second.description == "stronger regularisation off"
    assert second.tags["reviewed"] == "yes"
    assert registry.get("iris@champion").version == 1
    model = registry.get_model("iris")
    assert model.description == "iris classifier from MLflow"
    assert model.tags == {"team": "risk"}
    assert model.production_version is None
    stages = [(r.value, r.version, r.action) for r in report.refs if r.kind == "stage"]
    assert stages == [("production", 2, "not applied")]


def test_imported_versions_predict_what_mlflow_predicts(registry: Registry, store: Store) -> None:
    """The imported model gives exactly MLflow pyfunc's predictions on the same rows."""
    import_mlflow(registry, store.uri)
    for number, expected in store.predictions.items():
        got = registry.load(f"iris@{number}").predict(store.X)
        np.testing.assert_array_equal(got, expected)


def test_a_second_import_adds_only_what_is_new(
    registry: Registry, store: Store, tmp_path: Path
) -> None:
    """Running the import again duplicates nothing; a version added in MLflow since is the only
    one added, and an alias moved in MLflow moves here."""
    source = store.copy(tmp_path / "mlflow")
    import_mlflow(registry, source.uri)
    again = import_mlflow(registry, source.uri)
    assert [v.action for v in again.versions] == ["present", "present"]
    assert [r.action for r in again.refs if r.kind == "alias"] == ["unchanged"]
    assert len(registry.list_versions("iris")) == 2
    third = source.log_version(1.0)
    with quiet():
        source.client().set_registered_model_alias("iris", "champion", str(third))
    report = import_mlflow(registry, source.uri)
    assert [(v.mlflow_version, v.action) for v in report.versions] == [
        (1, "present"),
        (2, "present"),
        (3, "imported"),
    ]
    assert [v.version for v in registry.list_versions("iris")] == [1, 2, 3]
    assert registry.get("iris@3").run_id == source.run_ids[third]
    assert registry.get("models:/iris@champion").version == 3
    np.testing.assert_array_equal(
        registry.load("iris@3").predict(source.X), source.predictions[third]
    )


def test_mlflow_references_resolve(registry: Registry, store: Store) -> None:
    """models:/NAME@ALIAS, models:/NAME/VERSION, models:/NAME/latest and a stage in MLflow's
    spelling name versions in the registry API."""
    import_mlflow(registry, store.uri, with_stages=True)
    assert registry.get("models:/iris@champion").version == 1
    assert registry.get("models:/iris/1").version == 1
    assert registry.get("models:/iris/latest").version == 2
    assert registry.get("models:/iris/Production").version == 2
    assert registry.load("models:/iris/2").predict(store.X).shape == (len(store.X),)


def test_with_stages_promotes_mlflow_production_once(registry: Registry, store: Store) -> None:
    """--with-stages puts MLflow's Production version in production; a later import does not
    undo what was decided here since."""
    report = import_mlflow(registry, store.uri, with_stages=True)
    assert [(r.value, r.action) for r in report.refs if r.kind == "stage"] == [
        ("production", "set")
    ]
    assert registry.get("iris@production").version == 2
    registry.promote("iris", 1, "production")
    again = import_mlflow(registry, store.uri, with_stages=True)
    assert [(r.action, r.note) for r in again.refs if r.kind == "stage"] == [
        ("kept", "already archived here")
    ]
    assert registry.get("iris@production").version == 1


def test_dry_run_changes_nothing(registry: Registry, store: Store) -> None:
    """A dry run lists what would be imported, with the version numbers it would get."""
    report = import_mlflow(registry, store.uri, dry_run=True)
    assert [(v.mlflow_version, v.version, v.action) for v in report.versions] == [
        (1, 1, "would import"),
        (2, 2, "would import"),
    ]
    assert [(r.value, r.action) for r in report.refs if r.kind == "alias"] == [
        ("champion", "would set")
    ]
    assert registry.list_models() == []


def test_one_model_under_another_name(registry: Registry, store: Store) -> None:
    """--name picks one MLflow model; --as stores it under another name."""
    report = import_mlflow(registry, store.uri, name="iris", target="flowers")
    assert report.ok
    assert [v.target for v in report.versions] == ["flowers", "flowers"]
    assert registry.get("flowers@champion").tags[SOURCE_TAG] == "models:/iris/1"
    with pytest.raises(ModelNotFound, match="has no registered model 'nope'"):
        import_mlflow(registry, store.uri, name="nope")


def test_unreadable_tracking_uris(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing SQLite store is refused (MLflow would create an empty one); a server nobody
    answers at is StoreUnavailable, its credentials never shown."""
    missing = tmp_path / "typo.db"
    with pytest.raises(StoreUnavailable, match="no MLflow store at .*typo.db does not exist"):
        import_mlflow(registry, f"sqlite:///{missing}")
    assert not missing.exists()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once it is closed
    with pytest.raises(StoreUnavailable, match=rf"MLflow at http://127.0.0.1:{port}: ") as caught:
        import_mlflow(registry, f"http://me:secret@127.0.0.1:{port}")
    assert "secret" not in caught.value.message


def test_without_mlflow_the_error_names_the_extra(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without MLflow installed, one line says which extra to install."""
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependency, match=r"pip install 'watchkeeper\[mlflow\]'"):
        import_mlflow(registry, "sqlite:///anything.db")


def test_names_watchkeeper_does_not_allow(registry: Registry, store: Store, tmp_path: Path) -> None:
    """An MLflow model name with a space is reported and skipped (the others come), and comes
    under another name with --as; an MLflow alias named like a stage here is skipped with the
    promote command that does the same."""
    source = store.copy(tmp_path / "mlflow")
    with quiet():
        client = source.client()
        files = client.get_model_version_download_uri("iris", "1")
        client.create_registered_model("Iris Model")
        client.create_model_version("Iris Model", source=files)
        client.set_registered_model_alias("iris", "Production", "2")
    report = import_mlflow(registry, source.uri)
    assert not report.ok
    assert report.problems == (
        "MLflow model 'Iris Model' not imported: invalid model name 'Iris Model': use letters, "
        "digits, '_', '-' or '.', starting with a letter or digit, at most 128 characters "
        "(import it alone under another name with --name and --as)",
    )
    assert [v.version for v in registry.list_versions("iris")] == [1, 2]
    skipped = [r for r in report.refs if r.value == "Production"]
    assert [(r.action, r.note) for r in skipped] == [
        ("skipped", "a stage here, not an alias: watchkeeper models promote iris 2 --to production")
    ]
    renamed = import_mlflow(registry, source.uri, name="Iris Model", target="iris-model")
    assert renamed.ok
    assert registry.get("iris-model@1").tags[SOURCE_TAG] == "models:/Iris Model/1"
