"""Where a batch job reads: Parquet (file, folder or glob on any fsspec URL), CSV, or SQL.

An input is split into *units* (one per file; one for a SQL query). Each unit is read as a
stream of record batches of at most ``chunk_rows`` rows, never whole, so memory stays flat
whatever the input's size. Units are what ``--resume`` skips once their output is committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from watchkeeper.errors import InvalidInput

SQL_PREFIX = "sql://"
_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


@dataclass(frozen=True)
class Unit:
    """One piece of the input: a file, or the query."""

    key: str  # stable name, used for resume and for output part names
    kind: str  # parquet | csv | sql
    location: str
    rows: int | None  # known up front for Parquet (from the footer), else None


@dataclass(frozen=True)
class Source:
    uri: str
    units: tuple[Unit, ...]
    query: str | None = None

    @property
    def total_rows(self) -> int | None:
        counts = [u.rows for u in self.units]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)


def open_source(uri: str, *, query: str | None = None) -> Source:
    """Units of ``uri``: ``sql://<SQLAlchemy URL>`` (with ``query``), a CSV file or folder, or
    Parquet (file, folder, glob)."""
    if uri.startswith(SQL_PREFIX) or query is not None:
        if query is None:
            raise InvalidInput("a SQL input needs --query 'SELECT …'")
        url = uri.removeprefix(SQL_PREFIX)
        return Source(url, (Unit("query", "sql", url, None),), query)
    fs, paths = _expand(uri)
    if not paths:
        raise InvalidInput(f"no input files found at '{uri}'")
    units = []
    for path in sorted(paths):
        kind = "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet"
        rows = _parquet_rows(fs, path) if kind == "parquet" else None
        units.append(Unit(_key(path), kind, fs.unstrip_protocol(path), rows))
    return Source(uri, tuple(units))


def _expand(uri: str) -> tuple[Any, list[str]]:
    fs, _, given = fsspec.get_fs_token_paths(uri)
    # fsspec expands '*' itself but leaves '?' and '[…]' patterns as one literal path
    paths = [p for g in given for p in (fs.glob(g) if any(c in g for c in "?[") else [g])]
    out: list[str] = []
    for path in paths:
        if fs.isdir(path):
            found = [p for p in fs.find(path) if p.lower().endswith(_SUFFIXES)]
            out += [p for p in found if "/_" not in p[len(path) :] and "/." not in p[len(path) :]]
        elif fs.exists(path):
            out.append(path)
    return fs, out


def _parquet_rows(fs: Any, path: str) -> int:
    try:
        with fs.open(path, "rb") as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInput(f"cannot read '{path}' as Parquet: {exc}") from exc


def _key(path: str) -> str:
    return path.rstrip("/").replace("/", "__").replace(":", "_")[-180:]


def read_unit(unit: Unit, *, chunk_rows: int, columns: Sequence[str] | None = None,
              query: str | None = None) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """Stream one unit's record batches (``columns``: read only these)."""
    wanted = list(columns) if columns else None
    try:
        if unit.kind == "parquet":
            with fsspec.open(unit.location, "rb") as handle:
                reader = pq.ParquetFile(handle)
                yield from reader.iter_batches(batch_size=chunk_rows, columns=wanted)
        elif unit.kind == "csv":
            yield from _csv(unit.location, chunk_rows, wanted)
        else:
            yield from _sql(unit.location, query or "", chunk_rows, wanted)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {unit.location}: {exc}") from exc


def unit_columns(unit: Unit, *, query: str | None = None) -> list[str] | None:
    """The column names of ``unit`` (None when it holds no rows): a Parquet file's from its
    footer, others' from their first rows."""
    if unit.kind == "parquet":
        try:
            with fsspec.open(unit.location, "rb") as handle:
                footer = pq.ParquetFile(handle)
                rows = footer.metadata.num_rows
                return list(footer.schema_arrow.names) if rows else None
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {unit.location}: {exc}") from exc
    first = next(read_unit(unit, chunk_rows=1, query=query), None)
    return None if first is None else list(first.schema.names)


def _csv(location: str, chunk_rows: int, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    convert = pcsv.ConvertOptions(include_columns=columns) if columns else None
    # a block of ~1 KiB per row keeps batches near chunk_rows without reading the file whole
    read = pcsv.ReadOptions(block_size=max(1 << 16, min(chunk_rows * 256, 1 << 28)))
    with fsspec.open(location, "rb", compression="infer") as handle:
        reader = pcsv.open_csv(handle, read_options=read, convert_options=convert)
        for batch in reader:
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)


def _sql(
    url: str, query: str, chunk_rows: int, columns: list[str] | None
) -> Iterator[pa.RecordBatch]:
    """Rows streamed with a server-side cursor where the database has one, ``chunk_rows`` at a
    time (``partitions(n)``: SQLite's driver gives single rows to ``yield_per`` alone)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            streaming = connection.execution_options(stream_results=True)
            result = streaming.execute(text(query))
            with result:
                names = list(result.keys())
                for rows in result.partitions(chunk_rows):
                    batch = pa.RecordBatch.from_pydict(
                        {name: [row[i] for row in rows] for i, name in enumerate(names)}
                    )
                    yield batch.select(columns) if columns else batch
    except SQLAlchemyError as exc:
        raise InvalidInput(f"the query failed: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
