"""Input globs: every pattern fsspec understands, not only '*'."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from watchkeeper.batch.sources import open_source


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("part-*.parquet", 3), ("part-?.parquet", 3), ("part-[01].parquet", 2)],
)
def test_globs_expand(tmp_path: Path, pattern: str, expected: int) -> None:
    """Regression: 'part-[01].parquet' and 'part-?.parquet' were taken as one missing file."""
    for i in range(3):
        pd.DataFrame({"a": [i]}).to_parquet(tmp_path / f"part-{i}.parquet")
    source = open_source(str(tmp_path / pattern))
    assert [u.rows for u in source.units] == [1] * expected
