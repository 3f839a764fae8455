"""The manifest of a model package: what is in the directory, and the sha256 of every file.

A package is a directory holding model file(s) and ``manifest.json``. The manifest records the
flavor, the library versions the model was saved with, the input signature, flavor options and
the sha256 of every other file. The registry keeps :meth:`Manifest.digest`, so a package whose
manifest or files changed after registration is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.errors import Detail, IntegrityError, UnreadableModel
from watchkeeper.models.signature import Signature

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything needed to load and trust a package directory."""

    format_version: int = FORMAT_VERSION
    flavor: str
    files: dict[str, str]
    library_versions: dict[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    created_at: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "files": dict(sorted(self.files.items())),
            "library_versions": dict(sorted(self.library_versions.items())),
            "signature": self.signature.to_dict() if self.signature else None,
            "created_at": self.created_at,
            "options": self.options,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Rebuild a manifest; raises ``UnreadableModel`` when ``data`` is not one."""
        try:
            version = int(data["format_version"])
            signature = data.get("signature")
            manifest = cls(
                format_version=version,
                flavor=str(data["flavor"]),
                files={str(k): str(v) for k, v in dict(data["files"]).items()},
                library_versions={
                    str(k): str(v) for k, v in dict(data.get("library_versions", {})).items()
                },
                signature=Signature.from_dict(signature) if signature else None,
                created_at=str(data["created_at"]),
                options=dict(data.get("options") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UnreadableModel(f"invalid manifest: {type(exc).__name__}: {exc}") from exc
        if version > FORMAT_VERSION:
            raise UnreadableModel(
                f"manifest format_version {version} is newer than this watchkeeper reads "
                f"({FORMAT_VERSION}); upgrade watchkeeper"
            )
        return manifest

    def canonical_json(self) -> bytes:
        """The bytes :meth:`digest` hashes: sorted keys, no whitespace, UTF-8."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON; the registry stores it per version."""
        return hashlib.sha256(self.canonical_json()).hexdigest()


DEFERRED = "deferred"


def file_sha256(path: Path) -> str:
    """sha256 (hex) of one file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_directory(
    directory: str | os.PathLike[str], *, defer: Collection[str] = ()
) -> dict[str, str]:
    """sha256 of every file below ``directory`` (keys: relative POSIX paths), but the manifest.

    Files named in ``defer`` are listed with the value ``DEFERRED`` instead of being hashed.
    """
    root = Path(directory)
    hashes: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            relative = path.relative_to(root).as_posix()
            if relative in defer:
                hashes[relative] = DEFERRED
            elif relative != MANIFEST_NAME:
                hashes[relative] = file_sha256(path)
    return dict(sorted(hashes.items()))


def write_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` (indented, sorted keys) atomically; returns its path."""
    path = Path(directory) / MANIFEST_NAME
    text = json.dumps(manifest.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
    partial = path.with_name(f".{MANIFEST_NAME}.partial")
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Read ``manifest.json``; a missing or invalid one raises ``UnreadableModel`` naming it."""
    path = Path(directory) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UnreadableModel(f"{path} does not exist: {directory} is not a model package") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableModel(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UnreadableModel(f"{path} does not hold a JSON object")
    try:
        return Manifest.from_dict(data)
    except UnreadableModel as exc:
        raise UnreadableModel(f"{path}: {exc.message}") from exc


def verify_package(
    directory: str | os.PathLike[str],
    expected_digest: str | None = None,
    *,
    defer: Collection[str] = (),
) -> Manifest:
    """Check the manifest digest (when given) and every file's sha256; return the manifest.

    Raises ``IntegrityError`` naming each file that differs, is missing or is not listed in the
    manifest, or the manifest itself when its digest is not ``expected_digest``. Files named in
    ``defer`` are only checked to be present: the caller hashes them as it reads them (the
    loader does, so a large model file is read and hashed once).
    """
    root = Path(directory)
    manifest = read_manifest(root)
    if expected_digest is not None:
        actual = manifest.digest()
        if actual != expected_digest:
            raise IntegrityError(
                f"{root / MANIFEST_NAME} was changed: its digest is {actual}, "
                f"expected {expected_digest}",
                details=[Detail(field=MANIFEST_NAME, problem="digest differs")],
            )
    expected = {k: DEFERRED if k in defer else v for k, v in manifest.files.items()}
    problems = _compare(expected, hash_directory(root, defer=defer))
    if problems:
        listing = "; ".join(f"{d.field}: {d.problem}" for d in problems)
        raise IntegrityError(f"package {root} failed verification: {listing}", details=problems)
    return manifest


def _compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[Detail]:
    problems: list[Detail] = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            problems.append(Detail(field=name, problem="missing"))
        elif name not in expected:
            problems.append(Detail(field=name, problem="extra file, not listed in the manifest"))
        elif expected[name] != actual[name]:
            problems.append(
                Detail(
                    field=name,
                    problem=f"sha256 differs (expected {expected[name]}, found {actual[name]})",
                )
            )
    return problems
