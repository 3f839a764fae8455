"""Fixtures for the logbook: batch factories and instrumented in-memory filesystems."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from watchkeeper.logbook import Logbook, LogbookConfig, PredictionBatch

DAY = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
FEATURES = ["age", "income", "tenure"]
FAST = LogbookConfig(flush_rows=1_000_000, flush_interval=60.0, retry_initial=0.01, retry_max=0.05)


def make_batch(
    request_id: str,
    *,
    model: str = "churn",
    version: int = 1,
    role: str = "primary",
    rows: int = 2,
    timestamp: datetime = DAY,
    feature_names: list[str] | None = None,
    seed: int = 0,
    **extra: Any,
) -> PredictionBatch:
    names = feature_names or FEATURES
    rng = np.random.default_rng(seed)
    probabilities = rng.random((rows, 2))
    fields: dict[str, Any] = {
        "features": rng.normal(size=(rows, len(names))),
        "predictions": probabilities.argmax(axis=1),
        "probabilities": probabilities,
        "classes": ["no", "yes"],
        "latency_s": 0.004,
    }
    fields.update(extra)
    return PredictionBatch(
        request_id=request_id,
        model=model,
        version=version,
        role=role,
        timestamp=timestamp,
        feature_names=names,
        **fields,
    )


class InstrumentedFS(MemoryFileSystem):  # type: ignore[misc]
    """An in-memory filesystem that records what it opens and lists, and can fail writes."""

    protocol = ("wktest",)
    opened: list[str] = []
    listed: list[str] = []
    fail_writes = False

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("wktest://"):
            path = path[len("wktest://") :]
        return super()._strip_protocol(path)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode and type(self).fail_writes:
            raise OSError(f"injected failure writing {path}")
        type(self).opened.append(path)
        return super()._open(path, mode, **kwargs)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        type(self).listed.append(self._strip_protocol(path))
        return super().ls(path, detail=detail, **kwargs)


@pytest.fixture
def instrumented() -> Iterator[type[InstrumentedFS]]:
    fsspec.register_implementation("wktest", InstrumentedFS, clobber=True)
    InstrumentedFS.opened, InstrumentedFS.listed = [], []
    InstrumentedFS.fail_writes = False
    yield InstrumentedFS
    InstrumentedFS.fail_writes = False


@pytest.fixture
def memory_url() -> Iterator[str]:
    root = f"/wk-{uuid.uuid4().hex}"
    yield f"memory://{root}"
    fs = MemoryFileSystem()
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Logbook]:
    logbook = Logbook(str(tmp_path / "logbook"), config=FAST)
    yield logbook
    logbook.close(timeout=1)


def window(days: int = 1) -> tuple[datetime, datetime]:
    return DAY - timedelta(days=days), DAY + timedelta(days=days)
