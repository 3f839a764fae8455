"""An MLflow tracking server or store, read through MLflow's own client.

MLflow's own warnings (deprecations inside its store and dependencies) are silenced while it
runs: they are about MLflow, not about what the user asked for.

MLflow is an optional extra: it is imported when a ``MlflowSource`` is built, and a missing
install is a ``MissingDependency`` naming the extra. Every MLflow exception is translated here,
at this one boundary: an unknown model is ``ModelNotFound``, anything else about reaching or
reading the store is ``StoreUnavailable``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from watchkeeper.errors import (
    InvalidInput,
    ModelNotFound,
    StoreUnavailable,
    clip,
    missing_dependency,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

T = TypeVar("T")
_PAGE = 1000
_MAX_WHY = 300
_LOCAL_SCHEMES = ("", "file")


def shown_uri(uri: str) -> str:
    """The tracking URI without any user name or password, fit for output and tags."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class MlflowSource:
    """The registered models, versions, runs and model files of one MLflow tracking URI."""

    def __init__(self, tracking_uri: str) -> None:
        try:
            with _quiet():
                import mlflow
                import mlflow.artifacts
                from mlflow.exceptions import MlflowException
        except ImportError as exc:
            raise missing_dependency("mlflow", "mlflow") from exc
        _check_local_store(tracking_uri)
        self.uri = tracking_uri
        self.shown = shown_uri(tracking_uri)
        self._error = MlflowException
        self._artifacts = mlflow.artifacts
        with self._calls("connecting"):
            self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def models(self, name: str | None = None) -> list[RegisteredModel]:
        """One registered model by name (``ModelNotFound`` when absent), or all of them."""
        if name is not None:
            with self._calls(f"reading model '{name}'", missing=name):
                return [self._client.get_registered_model(name)]
        return self._pages(
            "listing registered models",
            lambda token: self._client.search_registered_models(
                max_results=_PAGE, page_token=token
            ),
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of the registered model ``name``, oldest first."""
        found = self._pages(
            f"listing the versions of '{name}'",
            lambda token: self._client.search_model_versions(
                _name_filter(name), max_results=_PAGE, page_token=token
            ),
        )
        return sorted((v for v in found if v.name == name), key=lambda v: int(v.version))

    def run(self, run_id: str) -> Run | None:
        """The run, or None when this store does not have it (deleted, or logged elsewhere)."""
        try:
            with _quiet():
                return self._client.get_run(run_id)
        except self._error as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise StoreUnavailable(
                f"MLflow at {self.shown}: reading run {run_id} failed: {self._why(exc)}"
            ) from exc

    def download(self, version: ModelVersion, destination: Path) -> Path:
        """The version's model folder (with its ``MLmodel``), downloaded by MLflow."""
        what = f"downloading models:/{version.name}/{version.version}"
        with self._calls(what):
            uri = self._client.get_model_version_download_uri(version.name, version.version)
            path = self._artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(destination), tracking_uri=self.uri
            )
        return Path(path)

    def run_url(self, run: Run) -> str | None:
        """The run's page in the MLflow UI, when the tracking URI is a server."""
        if urlsplit(self.shown).scheme not in ("http", "https"):
            return None
        base = self.shown.rstrip("/")
        return f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"

    def _pages(self, what: str, fetch: Callable[[str | None], Any]) -> list[Any]:
        out: list[Any] = []
        token: str | None = None
        with self._calls(what):
            while True:
                page = fetch(token)
                out.extend(page)
                token = page.token
                if not token:
                    return out

    @contextmanager
    def _calls(self, what: str, *, missing: str | None = None) -> Iterator[None]:
        try:
            with _quiet():
                yield
        except self._error as exc:
            if missing is not None and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ModelNotFound(
                    f"MLflow at {self.shown} has no registered model '{missing}'"
                ) from exc
            raise StoreUnavailable(
                f"MLflow at {self.shown}: {what} failed: {self._why(exc)}"
            ) from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"MLflow at {self.shown}: {what} failed: {self._why(exc)}"
            ) from exc

    def _why(self, exc: BaseException) -> str:
        """The exception's first line, clipped, without the tracking URI's credentials."""
        text = str(getattr(exc, "message", None) or exc).strip()
        line = text.splitlines()[0] if text else type(exc).__name__
        netloc, safe = urlsplit(self.uri).netloc, urlsplit(self.shown).netloc
        return clip(line.replace(netloc, safe) if netloc != safe else line, _MAX_WHY)


def data_uri(run: Run) -> str | None:
    """Where the run's first logged dataset came from (``mlflow.log_input``), if it says."""
    inputs = getattr(run, "inputs", None)
    for dataset_input in getattr(inputs, "dataset_inputs", None) or ():
        source = dataset_input.dataset.source
        try:
            spec = json.loads(source)
        except (TypeError, ValueError):
            return str(source) or None
        if isinstance(spec, dict):
            for key in ("uri", "url", "path"):
                if isinstance(spec.get(key), str):
                    return str(spec[key])
    return None


@contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's own warnings (deprecations in its store, its dependencies) are not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _name_filter(name: str) -> str:
    quote = "'" if "'" not in name else '"'
    if quote in name:
        raise InvalidInput(f"cannot search MLflow for a model named {name!r} (both quotes)")
    return f"name = {quote}{name}{quote}"


def _check_local_store(uri: str) -> None:
    """A SQLite or file store must exist: MLflow would create an empty one for a typo."""
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        path = unquote(uri.split(":///", 1)[1]) if ":///" in uri else ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise StoreUnavailable(f"no MLflow store at {uri}: {path or 'no file'} does not exist")
    elif parts.scheme in _LOCAL_SCHEMES:
        path = unquote(parts.path)
        if not Path(path).is_dir():
            raise StoreUnavailable(f"no MLflow store at {uri}: {path} is not a folder")
