"""``Registry``: the Python API over metadata, artifacts and model packages.

The CLI, the server and the scheduler all call these methods; nothing else writes the registry.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.config import Settings
from watchkeeper.errors import Detail, IntegrityError, InvalidInput, StoreUnavailable
from watchkeeper.registry import db
from watchkeeper.registry.artifacts import ArtifactStore
from watchkeeper.registry.deployments import DeploymentStore
from watchkeeper.registry.entities import AuditEvent, ModelVersion, RegisteredModel
from watchkeeper.registry.refs import ModelRef, check_name
from watchkeeper.registry.search import Filter
from watchkeeper.registry.store import MetadataStore, NewVersion

if TYPE_CHECKING:
    import pandas as pd

    from watchkeeper.models import LoadedModel
    from watchkeeper.monitoring.profile import DatasetProfile

# The model-file parts (pandas, the flavors, profiles) are imported by the methods that use
# them: reading metadata (``watchkeeper models list``) does not pay for them.

PROFILE_FILE = "reference_profile.json"


class Registry:
    """Version control for trained models.

    >>> import tempfile, pathlib
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True, as_frame=True)
    >>> home = pathlib.Path(tempfile.mkdtemp())
    >>> registry = Registry(Settings(home=home))
    >>> model = LogisticRegression(max_iter=500).fit(X, y)
    >>> v1 = registry.register("iris", model, input_example=X, metrics={"accuracy": 0.97})
    >>> registry.promote("iris", v1.version, "production").stage
    'production'
    >>> registry.get("iris@production").version
    1
    >>> registry.load("iris@production").predict(X.head(2)).tolist()
    [0, 0]
    >>> registry.close()
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        self.engine = db.create_db_engine(self.settings.resolved_database_url)
        try:
            db.ensure_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.store = MetadataStore(self.engine)
        self.deployments = DeploymentStore(self.store)
        self.artifacts = ArtifactStore(
            self.settings.resolved_artifact_url, cache_dir=self.settings.home / "cache"
        )

    @property
    def actor(self) -> str:
        return self.settings.user

    def acting_as(self, user: str) -> Registry:
        """The same registry (one engine, one store) recording ``user`` in the audit log."""
        view = copy.copy(self)
        view.settings = replace(self.settings, user=user)
        return view

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- registering ---------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        flavor: str = "auto",
        input_example: Any = None,
        reference_data: pd.DataFrame | str | Path | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
        run_url: str | None = None,
        data_uri: str | None = None,
        data_hash: str | None = None,
        description: str = "",
        stage: str = "none",
        trusted_types: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Store a new version of ``name``: a model object, a model file or a package directory.

        ``input_example`` is a DataFrame, a dict of columns, a 2-D array or a CSV, Parquet or
        JSON file (see ``read_example``). ``reference_data`` (a DataFrame or a Parquet/CSV
        path) is profiled and stored with the
        version for drift monitoring; as a path it also becomes the version's data link.

        The version's signature (what serving validates requests against) is inferred from
        ``input_example``, else from ``reference_data`` (only the columns the model takes, when
        it names them), else taken from the model (an MLflow signature, ONNX graph inputs, a
        booster's or estimator's feature names); when the model names its inputs and the data
        given disagrees, ``InvalidInput``. ``ModelVersion.signature`` is None when nothing
        told: such a version is served without validation.

        A skops model may hold only default-trusted types and the ones named in
        ``trusted_types`` (else ``UntrustedTypes``, and nothing is stored); the named types it
        holds are recorded with the version, and loading it later trusts exactly those.
        """
        from watchkeeper.models import package_from_path, save_model
        from watchkeeper.models.manifest import file_sha256, hash_directory, write_manifest
        from watchkeeper.models.package import trust_package

        check_name(name)
        if isinstance(input_example, (str, Path)):
            input_example = read_example(input_example)
        frame = read_table(reference_data) if reference_data is not None else None
        if isinstance(reference_data, (str, Path)):
            data_uri = data_uri or str(reference_data)
            data_hash = data_hash or file_sha256(Path(reference_data))
        with tempfile.TemporaryDirectory(prefix="watchkeeper-") as tmp:
            package = Path(tmp) / "package"
            if isinstance(model, (str, Path)):
                manifest = package_from_path(
                    Path(model),
                    package,
                    flavor=flavor,
                    input_example=input_example,
                    reference_data=frame,
                    trusted_types=trusted_types,
                )
            else:
                save_model(
                    model,
                    package,
                    flavor=flavor,
                    input_example=input_example,
                    reference_data=frame,
                )
                manifest = trust_package(package, trusted_types)
            if frame is not None:
                self._attach_profile(package, frame)
                manifest = replace(manifest, files=hash_directory(package))
                write_manifest(package, manifest)
            key = self.artifacts.new_key(name)
            uri = self.artifacts.put_directory(package, key)
        new = NewVersion(
            flavor=manifest.flavor,
            artifact_uri=uri,
            manifest_digest=manifest.digest(),
            signature=manifest.signature.to_dict() if manifest.signature else None,
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            tags={k: str(v) for k, v in (tags or {}).items()},
            run_id=run_id,
            run_url=run_url,
            data_uri=data_uri,
            data_hash=data_hash,
            description=description,
            has_profile=reference_data is not None,
            stage=stage,
        )
        try:
            return self.store.add_version(name, new, actor=self.actor)
        except BaseException:
            self.artifacts.delete(key)  # no orphaned files for a version that does not exist
            raise

    def _attach_profile(self, package: Path, frame: pd.DataFrame) -> None:
        from watchkeeper.models import load_model
        from watchkeeper.monitoring.profile import profile_frame, profile_values

        loaded = load_model(package, verify=False)
        names = loaded.signature.names if loaded.signature else list(frame.columns)
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidInput(
                f"reference data lacks the model's input column(s): {', '.join(missing)}"
            )
        profile = profile_frame(frame[names])
        predictions = loaded.predict(frame[names])
        profile = profile.with_predictions(profile_values(predictions))
        (package / PROFILE_FILE).write_text(json.dumps(profile.to_dict()))

    # --- reading -------------------------------------------------------------------------

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``name``, ``name@3``, ``name@production``, ``name@latest`` or ``name@alias``."""
        return self.store.resolve(ModelRef.parse(ref))

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_versions(name)

    def search(self, filters: Iterable[str] = (), *, name: str | None = None) -> list[ModelVersion]:
        """Versions matching every filter, e.g. ``["metrics.auc >= 0.8", "tags.team = risk"]``."""
        return self.store.search([Filter.parse(f) for f in filters], name=name)

    def history(self, name: str | None = None, *, limit: int | None = None) -> list[AuditEvent]:
        if name is not None:
            self.store.get_model(name)
        return self.store.history(name, limit=limit)

    def revisions(self) -> dict[str, int]:
        return self.store.revisions()

    def trusted_types(self, version: ModelVersion) -> tuple[str, ...]:
        """The types beyond the default allow-list trusted when ``version`` was registered."""
        from watchkeeper.models.manifest import MANIFEST_NAME, read_manifest
        from watchkeeper.models.package import recorded_trust

        path = self.artifacts.local_path(version.artifact_uri, version.manifest_digest)
        if not path.is_dir():
            raise StoreUnavailable(
                f"the files of {version.ref} are missing from {version.artifact_uri}"
            )
        manifest = read_manifest(path)
        if manifest.digest() != version.manifest_digest:
            raise IntegrityError(
                f"{path / MANIFEST_NAME} was changed since {version.ref} was registered",
                details=[Detail(field=MANIFEST_NAME, problem="digest differs")],
            )
        return recorded_trust(manifest)

    def load(self, ref: str, *, trusted_types: list[str] | None = None) -> LoadedModel:
        """Load a version's model after checking every file against the recorded sha256.

        A skops file is loaded trusting the types recorded at registration; ``trusted_types``
        adds more for this load only.
        """
        version = self.get(ref)
        return self.load_version(version, trusted_types=trusted_types)

    def load_version(
        self, version: ModelVersion, *, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        from watchkeeper.models import load_model

        path = self.artifacts.local_path(version.artifact_uri, version.manifest_digest)
        if not path.is_dir():
            raise StoreUnavailable(
                f"the files of {version.ref} are missing from {version.artifact_uri}"
            )
        return load_model(
            path, verify=True, expected_digest=version.manifest_digest, trusted_types=trusted_types
        )

    def profile(self, ref: str) -> DatasetProfile | None:
        """The reference profile stored with a version, or None when none was given."""
        return self.profile_of(self.get(ref))

    def profile_of(self, version: ModelVersion, *, verify: bool = True) -> DatasetProfile | None:
        """``verify=False`` skips the hash check, for a package that was just loaded."""
        from watchkeeper.models import verify_package
        from watchkeeper.monitoring.profile import DatasetProfile

        if not version.has_profile:
            return None
        path = self.artifacts.local_path(version.artifact_uri, version.manifest_digest)
        if verify:
            verify_package(path, expected_digest=version.manifest_digest)
        return DatasetProfile.from_dict(json.loads((path / PROFILE_FILE).read_text()))

    # --- changing ------------------------------------------------------------------------

    def promote(self, name: str, version: int, stage: str, *, reason: str = "") -> ModelVersion:
        """Move a version to ``staging``, ``production``, ``archived`` or ``none``.

        Promoting to production archives the current production version in the same
        transaction.
        """
        return self.store.set_stage(name, version, stage, actor=self.actor, reason=reason)

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        return self.store.set_alias(name, version, alias, actor=self.actor)

    def remove_alias(self, name: str, alias: str) -> None:
        self.store.remove_alias(name, alias, actor=self.actor)

    def rollback(self, name: str, *, reason: str = "") -> ModelVersion:
        """Re-point production at the version that was production before; returns it."""
        return self.store.rollback(name, actor=self.actor, reason=reason)

    def rollback_target(self, name: str) -> int | None:
        """The version ``rollback`` would put back in production (None: nothing to go back to)."""
        return self.store.rollback_target(name)

    def delete_version(self, name: str, version: int) -> None:
        """Delete a version and its files; refused while it is in production."""
        uri = self.store.delete_version(name, version, actor=self.actor)
        self.artifacts.delete(uri)


def read_table(source: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a Parquet file/folder or a CSV file."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.exists():
        raise InvalidInput(f"reference data '{path}' does not exist")
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read reference data '{path}': {exc}") from exc


EXAMPLE_SUFFIXES = (".csv", ".parquet", ".json")


def read_example(source: str | Path) -> pd.DataFrame:
    """An input example from a file, by its extension: ``.csv``, ``.parquet`` or ``.json``
    (a list of records ``[{"age": 31, ...}, ...]`` or an object of columns ``{"age": [...]}``)."""
    import pandas as pd

    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in EXAMPLE_SUFFIXES:
        raise InvalidInput(
            f"input example '{path}': expected a {', '.join(EXAMPLE_SUFFIXES)} file, "
            f"not {suffix or 'a file without an extension'}"
        )
    if not path.is_file():
        raise InvalidInput(f"input example '{path}' does not exist")
    try:
        if suffix != ".json":
            return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, list) and document and all(isinstance(r, dict) for r in document):
            return pd.DataFrame.from_records(document)
        if isinstance(document, dict) and all(isinstance(v, list) for v in document.values()):
            return pd.DataFrame(document)
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise InvalidInput(f"cannot read input example '{path}': {exc}") from exc
    raise InvalidInput(
        f"input example '{path}': expected a list of records "
        '[{"column": value, ...}, ...] or an object of columns {"column": [values], ...}'
    )
