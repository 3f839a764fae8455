"""skops files run no code they were not explicitly trusted to (issue 16, item 1).

The hostile file is built here by hand: a skops schema whose only object is a
``ConstructorFromReduceNode`` calling ``numpy.testing._private.utils.runstring`` (a numpy
function that calls ``exec``) with a payload that writes a sentinel file. The old rule trusted
every ``numpy.*`` name, so this file ran its payload at registration and at every load.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from typer.testing import CliRunner

from tests.models.helpers import CustomScaler
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.errors import IntegrityError, InvalidInput, ModelNotFound, UntrustedTypes
from watchkeeper.models import load_model, save_model
from watchkeeper.models.manifest import read_manifest, write_manifest
from watchkeeper.registry import Registry

RUNSTRING = "numpy.testing._private.utils.runstring"
CUSTOM = "tests.models.helpers.CustomScaler"


def _json_node(value: str) -> dict[str, Any]:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True, "__id__": 2}  # fmt: skip


def hostile_skops(sentinel: Path) -> bytes:
    """A .skops file whose loading calls ``exec`` on code that creates ``sentinel``."""
    code = f"import pathlib; pathlib.Path({str(sentinel)!r}).write_text('pwned')"
    namespace = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
                 "content": {}, "__id__": 3,
                 "key_types": {"__class__": "list", "__module__": "builtins",
                               "__loader__": "ListNode", "content": [], "__id__": 4}}  # fmt: skip
    args = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [_json_node(code), namespace], "__id__": 1}  # fmt: skip
    module, _, function = RUNSTRING.rpartition(".")
    schema = {"__class__": function, "__module__": module,
              "__loader__": "ConstructorFromReduceNode", "content": args, "__id__": 0,
              "protocol": 2, "_skops_version": skops.__version__}  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def iris() -> tuple[Any, Any]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture
def registry(tmp_path: Path):
    with Registry(Settings(home=tmp_path / "home", user="tester")) as reg:
        yield reg


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def _artifact_files(home: Path) -> list[Path]:
    return [p for p in (home / "artifacts").rglob("*") if p.is_file()]


def test_the_hostile_file_really_runs_code_when_trusted(tmp_path: Path) -> None:
    """The test file is hostile: plain skops, told to trust the function, runs the payload
    (so the refusals below are what stands between it and the machine)."""
    sentinel = tmp_path / "proof"
    skops.io.loads(hostile_skops(sentinel), trusted=[RUNSTRING])
    assert sentinel.read_text() == "pwned"


def test_registration_refuses_a_hostile_skops_file_and_writes_nothing(
    tmp_path: Path, registry: Registry
) -> None:
    """Registering a skops file that references a code-running function is refused, naming
    the type; the payload never runs, and no version, model row or artifact is left."""
    sentinel = tmp_path / "sentinel"
    hostile = tmp_path / "model.skops"
    hostile.write_bytes(hostile_skops(sentinel))
    with pytest.raises(UntrustedTypes, match=rf"not trusted: {RUNSTRING.replace('.', '[.]')};"):
        registry.register("churn", hostile)
    assert not sentinel.exists()
    with pytest.raises(ModelNotFound, match="churn"):
        registry.list_versions("churn")
    assert registry.list_models() == []
    assert _artifact_files(registry.settings.home) == []


def test_cli_refuses_the_hostile_file_in_one_line(tmp_path: Path, cli) -> None:
    """``models register`` refuses the file with one line naming the type, exit code 1."""
    sentinel = tmp_path / "sentinel"
    hostile = tmp_path / "model.skops"
    hostile.write_bytes(hostile_skops(sentinel))
    result = cli("models", "register", "churn", str(hostile))
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert result.output.count("\n") == 1
    assert RUNSTRING in result.output
    assert "--trust" in result.output
    assert "Traceback" not in result.output
    assert not sentinel.exists()
    assert _artifact_files(tmp_path / "home") == []


def test_loading_refuses_a_package_holding_the_hostile_file(
    tmp_path: Path, iris: tuple[Any, Any]
) -> None:
    """A package whose (correctly hashed) skops file is hostile is refused at load time."""
    X, y = iris
    package = tmp_path / "pkg"
    save_model(LogisticRegression(max_iter=500).fit(X, y), package)
    sentinel = tmp_path / "sentinel"
    data = hostile_skops(sentinel)
    (package / "model.skops").write_bytes(data)
    manifest = read_manifest(package)
    files = {**manifest.files, "model.skops": hashlib.sha256(data).hexdigest()}
    write_manifest(package, type(manifest)(**{**manifest.__dict__, "files": files}))
    with pytest.raises(UntrustedTypes, match=RUNSTRING.replace(".", "[.]")):
        load_model(package)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: LogisticRegression(max_iter=500), id="logistic-regression"),
        pytest.param(lambda: RandomForestClassifier(5, random_state=0), id="random-forest"),
        pytest.param(lambda: HistGradientBoostingClassifier(max_iter=5), id="hist-gb"),
        pytest.param(
            lambda: make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500)),
            id="function-transformer-numpy-ufunc",
        ),
    ],
)
def test_common_models_register_and_load_without_trust(
    tmp_path: Path, registry: Registry, iris: tuple[Any, Any], make: Any
) -> None:
    """Plain scikit-learn models (and their trees) need no --trust, and record none."""
    X, y = iris
    model = make().fit(X, y)
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    version = registry.register("iris", path)
    assert registry.trusted_types(version) == ()
    np.testing.assert_array_equal(registry.load("iris@1").predict(X), model.predict(X))


def test_a_column_pipeline_registers_and_loads_without_trust(
    registry: Registry, iris: tuple[Any, Any]
) -> None:
    """StandardScaler, SimpleImputer, OneHotEncoder in a ColumnTransformer need no trust."""
    X, y = iris
    frame = X.copy()
    frame["kind"] = np.where(y == 0, "a", "b")
    numeric = list(X.columns)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["kind"]),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame, y)
    registry.register("pipe", model, input_example=frame)
    np.testing.assert_array_equal(registry.load("pipe@1").predict(frame), model.predict(frame))


def test_a_function_transformer_with_an_arbitrary_function_is_refused(
    registry: Registry, iris: tuple[Any, Any]
) -> None:
    """A FunctionTransformer's function is never trusted for being from numpy."""
    X, y = iris
    model = make_pipeline(FunctionTransformer(np.nan_to_num), LogisticRegression(max_iter=500))
    with pytest.raises(UntrustedTypes, match=r"numpy\.[\w.]*nan_to_num"):
        registry.register("iris", model.fit(X, y))
    assert registry.list_models() == []


def test_trust_admits_exactly_the_named_type(tmp_path: Path, cli, iris: tuple[Any, Any]) -> None:
    """``--trust TYPE`` admits that type and no other; what was named is recorded with the
    version, shown by ``models show`` and trusted at load without naming it again."""
    X, y = iris
    custom = tmp_path / "custom.skops"
    skops.io.dump(make_pipeline(CustomScaler(), LogisticRegression(max_iter=500)).fit(X, y), custom)
    both = tmp_path / "both.skops"
    skops.io.dump(make_pipeline(CustomScaler(), KNeighborsClassifier()).fit(X, y), both)

    refused = cli("models", "register", "iris", str(custom))
    assert refused.exit_code == 1
    assert CUSTOM in refused.output

    refused = cli("models", "register", "iris", str(both), "--trust", CUSTOM)
    assert refused.exit_code == 1
    assert "KDTree" in refused.output
    assert f"{CUSTOM}," not in refused.output

    accepted = cli("models", "register", "iris", str(custom), "--trust", CUSTOM)
    assert accepted.exit_code == 0, accepted.output
    shown = cli("models", "show", "iris@1", "--json")
    assert json.loads(shown.output)["trusted_types"] == [CUSTOM]
    assert CUSTOM in cli("models", "show", "iris@1").output

    with Registry(Settings(home=tmp_path / "home")) as registry:
        assert len(registry.load("iris@1").predict(X)) == len(X)


def test_a_recorded_trust_cannot_be_widened_after_registration(
    tmp_path: Path, registry: Registry, iris: tuple[Any, Any]
) -> None:
    """The trusted types live in the manifest, whose digest the registry holds: adding one to
    a stored version's manifest makes every load refuse the version."""
    X, y = iris
    version = registry.register(
        "iris", make_pipeline(CustomScaler(), LogisticRegression()).fit(X, y),
        trusted_types=[CUSTOM],
    )  # fmt: skip
    assert registry.trusted_types(version) == (CUSTOM,)
    package = registry.artifacts.local_path(version.artifact_uri, version.manifest_digest)
    manifest = read_manifest(package)
    options = {**manifest.options, "trusted_types": [CUSTOM, RUNSTRING]}
    write_manifest(package, type(manifest)(**{**manifest.__dict__, "options": options}))
    with pytest.raises(IntegrityError, match="manifest"):
        registry.load("iris@1")


@pytest.mark.parametrize("name", ["numpy.", "numpy.*", "numpy", "sklearn.tree.", "a b.c"])
def test_trust_takes_full_type_names_never_prefixes(
    tmp_path: Path, registry: Registry, name: str
) -> None:
    """``--trust`` refuses anything but a full dotted name: no module prefix, no wildcard."""
    hostile = tmp_path / "model.skops"
    hostile.write_bytes(hostile_skops(tmp_path / "sentinel"))
    with pytest.raises(InvalidInput, match="full dotted name"):
        registry.register("churn", hostile, trusted_types=[name])
    assert not (tmp_path / "sentinel").exists()


def test_the_api_refuses_a_hostile_skops_file(tmp_path: Path, serve) -> None:
    """``POST /api/v1/models/{name}/versions`` with a hostile skops file answers 400
    ``untrusted_types`` naming the type; the payload never runs in the server."""
    sentinel = tmp_path / "sentinel"
    hostile = tmp_path / "model.skops"
    hostile.write_bytes(hostile_skops(sentinel))
    served = serve(home=tmp_path / "home")
    response = httpx.post(
        f"{served.url}/api/v1/models/churn/versions",
        json={"path": str(hostile)},
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "untrusted_types"
    assert {"field": RUNSTRING, "problem": "type not trusted"} in error["details"]
    assert not sentinel.exists()
    assert httpx.get(f"{served.url}/api/v1/models", timeout=30).json() == []
