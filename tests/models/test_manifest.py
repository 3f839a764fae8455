from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from watchkeeper.errors import IntegrityError, UnreadableModel
from watchkeeper.models import Manifest, read_manifest, save_model, verify_package
from watchkeeper.models.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    file_sha256,
    hash_directory,
    write_manifest,
)
from watchkeeper.models.signature import ColumnSpec, Signature


def _manifest(**changes: object) -> Manifest:
    base = Manifest(
        flavor="sklearn",
        files={"model.skops": "ab" * 32},
        library_versions={"python": "3.11.7"},
        signature=Signature((ColumnSpec(name="x", dtype="float", min=0.0, max=1.0),)),
        created_at="2024-01-01T00:00:00Z",
        options={"model_file": "model.skops", "classes": [0, 1]},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def package(tmp_path: Path, logreg: object, iris: tuple) -> Path:
    save_model(logreg, tmp_path / "pkg", input_example=iris[0])
    return tmp_path / "pkg"


def test_round_trip_keeps_digest() -> None:
    manifest = _manifest()
    again = Manifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest
    assert again.digest() == manifest.digest()
    assert len(manifest.digest()) == 64


def test_digest_ignores_key_order_but_not_content() -> None:
    manifest = _manifest()
    reordered = _manifest(
        files={"model.skops": "ab" * 32}, options={"classes": [0, 1], "model_file": "model.skops"}
    )
    assert reordered.digest() == manifest.digest()
    assert _manifest(files={"model.skops": "cd" * 32}).digest() != manifest.digest()
    assert _manifest(options={"model_file": "other"}).digest() != manifest.digest()


def test_saved_manifest_on_disk_has_the_returned_digest(package: Path) -> None:
    on_disk = read_manifest(package)
    assert on_disk.format_version == FORMAT_VERSION
    assert on_disk.flavor == "sklearn"
    assert set(on_disk.files) == {"model.skops"}
    assert on_disk.created_at.endswith("Z")
    assert verify_package(package).digest() == on_disk.digest()


def test_digest_changes_when_a_file_changes(package: Path) -> None:
    before = read_manifest(package)
    (package / "model.skops").write_bytes(b"changed")
    after = replace(before, files=hash_directory(package))
    assert after.files["model.skops"] == file_sha256(package / "model.skops")
    assert after.digest() != before.digest()


def test_expected_digest_mismatch_names_the_manifest(package: Path) -> None:
    digest = read_manifest(package).digest()
    assert verify_package(package, expected_digest=digest).digest() == digest
    manifest = read_manifest(package)
    write_manifest(package, replace(manifest, options={**manifest.options, "has_proba": False}))
    with pytest.raises(IntegrityError, match=r"manifest\.json was changed"):
        verify_package(package, expected_digest=digest)


def test_modified_file_is_named(package: Path) -> None:
    with (package / "model.skops").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match=r"model\.skops: sha256 differs") as info:
        verify_package(package)
    assert [d.field for d in info.value.details] == ["model.skops"]


def test_missing_file_is_named(package: Path) -> None:
    (package / "model.skops").unlink()
    with pytest.raises(IntegrityError, match=r"model\.skops: missing"):
        verify_package(package)


def test_extra_file_is_named(package: Path) -> None:
    (package / "sub").mkdir()
    (package / "sub" / "notes.txt").write_text("hello")
    with pytest.raises(IntegrityError, match=r"sub/notes\.txt: extra file"):
        verify_package(package)


def test_hash_directory_streams_every_file_but_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.bin").write_bytes(b"x" * (3 * 1024 * 1024 + 7))
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / MANIFEST_NAME).write_text("{}")
    hashes = hash_directory(tmp_path)
    assert list(hashes) == ["a/big.bin", "b.txt"]
    import hashlib

    assert hashes["a/big.bin"] == hashlib.sha256(b"x" * (3 * 1024 * 1024 + 7)).hexdigest()


def test_missing_manifest_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableModel, match=r"manifest\.json does not exist"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ("[1, 2]", "JSON object"),
        ('{"flavor": "sklearn"}', "invalid manifest: KeyError"),
    ],
)
def test_invalid_manifest_is_unreadable(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(UnreadableModel, match=message):
        read_manifest(tmp_path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    data = _manifest().to_dict()
    data["format_version"] = FORMAT_VERSION + 1
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(UnreadableModel, match="upgrade watchkeeper"):
        read_manifest(tmp_path)
