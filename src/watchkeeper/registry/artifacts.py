"""The artifact store: model package directories under any fsspec URL.

Each version's files live under a fresh key (``{model}/{uuid}``) so an upload never overwrites
anything and needs no lock; the metadata row that points at it is written only after the upload
completed. Remote packages are copied to a local cache keyed by their manifest digest before
loading, and verified there.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

from watchkeeper.errors import StoreUnavailable


class ArtifactStore:
    """Put, fetch and delete package directories below one root URL."""

    def __init__(self, root_url: str, *, cache_dir: Path) -> None:
        self.root_url = root_url.rstrip("/")
        self.cache_dir = cache_dir
        try:
            self.fs, self.root = url_to_fs(self.root_url)
        except (ImportError, ValueError) as exc:
            raise StoreUnavailable(f"cannot open artifact store '{root_url}': {exc}") from exc
        self.is_local = isinstance(self.fs, fsspec.implementations.local.LocalFileSystem)

    def new_key(self, model_name: str) -> str:
        return f"{model_name}/{uuid.uuid4().hex}"

    def uri(self, key: str) -> str:
        return f"{self.root_url}/{key}"

    def put_directory(self, local_dir: Path, key: str) -> str:
        """Upload every file of ``local_dir`` under ``key``; returns the artifact URI."""
        target = f"{self.root}/{key}"
        try:
            for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
                relative = path.relative_to(local_dir).as_posix()
                self.fs.makedirs(f"{target}/{relative}".rsplit("/", 1)[0], exist_ok=True)
                self.fs.put_file(str(path), f"{target}/{relative}")
        except OSError as exc:
            self.delete(key)
            raise StoreUnavailable(
                f"cannot write to artifact store {self.root_url}: {exc}"
            ) from exc
        return self.uri(key)

    def local_path(self, artifact_uri: str, digest: str) -> Path:
        """A local directory holding the package: the store itself when local, else a cache."""
        path = self._path_of(artifact_uri)
        if self.is_local:
            return Path(path)
        cached = self.cache_dir / digest
        if not cached.is_dir():
            partial = self.cache_dir / f".{digest}.{uuid.uuid4().hex}"
            try:
                self.fs.get(f"{path}/", f"{partial}/", recursive=True)
            except OSError as exc:
                shutil.rmtree(partial, ignore_errors=True)
                raise StoreUnavailable(f"cannot read {artifact_uri}: {exc}") from exc
            try:
                partial.rename(cached)
            except OSError:  # another process cached it first
                shutil.rmtree(partial, ignore_errors=True)
        return cached

    def delete(self, key_or_uri: str) -> None:
        path = self._path_of(key_or_uri)
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete {key_or_uri}: {exc}") from exc

    def _path_of(self, key_or_uri: str) -> str:
        if key_or_uri.startswith(self.root_url + "/"):
            key_or_uri = key_or_uri[len(self.root_url) + 1 :]
        return f"{self.root}/{key_or_uri}"
