"""Configuration value objects and the package's exports."""

from __future__ import annotations

import numpy as np
import pytest

import watchkeeper.logbook
from tests.logbook.conftest import make_batch
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import LogbookConfig


def test_exports_are_sorted_and_importable() -> None:
    names = watchkeeper.logbook.__all__
    assert names == sorted(names)
    assert all(getattr(watchkeeper.logbook, n) is not None for n in names)


def test_config_checks_its_values_and_hides_the_salt() -> None:
    with pytest.raises(InvalidInput, match="sample_rate for 'churn'"):
        LogbookConfig(sample_rate={"churn": 1.5})
    with pytest.raises(InvalidInput, match="flush_rows must be >= 1"):
        LogbookConfig(flush_rows=0)
    config = LogbookConfig(hash_salt="secret", sample_rate={"a": 0.5})
    assert "secret" not in repr(config)
    assert "{'a': 0.5}" in repr(config)
    with pytest.raises(TypeError):
        config.sample_rate["a"] = 1.0  # type: ignore[index]


def test_batches_are_checked_cheaply_when_made() -> None:
    with pytest.raises(InvalidInput, match="unknown role 'blue'"):
        make_batch("r", role="blue")
    with pytest.raises(InvalidInput, match="one row per prediction"):
        make_batch("r", rows=2, predictions=np.zeros(3))
    with pytest.raises(InvalidInput, match="but 3 feature names"):
        make_batch("r", features=np.zeros((2, 2)))
