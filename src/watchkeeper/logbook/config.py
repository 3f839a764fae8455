"""The logbook's tunables and its counters, as small frozen value objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from watchkeeper.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class LogbookConfig:
    """How the logbook buffers, samples, redacts and retries.

    - ``flush_rows`` / ``flush_interval``: a flush starts when this many rows are buffered or when
      the oldest buffered row is this many seconds old (whichever comes first).
    - ``max_buffer_rows``: the bound; a batch that would exceed it is dropped and counted. Rows
      that failed to flush stay buffered and keep counting against it.
    - ``sample_rate``: per model, the fraction of *requests* kept (default 1.0). The choice hashes
      the request id, so it is deterministic and a request is kept or dropped whole.
    - ``drop_fields``: feature names never written. ``hash_fields``: feature names written as
      ``sha256(hash_salt + value)`` in hex.
    - ``retry_initial`` doubling up to ``retry_max``: seconds between attempts after a failed
      flush.
    - ``max_outcome_names``: distinct feedback outcome names (each a Parquet column) this
      logbook accepts; feedback bringing more is refused whole (feedback names no model, so the
      bound is per logbook writer: per server process).

    >>> LogbookConfig(flush_rows=10, sample_rate={"churn": 0.5})
    LogbookConfig(flush_rows=10, flush_interval=2.0, max_buffer_rows=1000000, \
sample_rate={'churn': 0.5}, drop_fields=(), hash_fields=(), hash_salt='', retry_initial=0.5, \
retry_max=30.0, max_outcome_names=64)
    """

    flush_rows: int = 50_000
    flush_interval: float = 2.0
    max_buffer_rows: int = 1_000_000
    sample_rate: Mapping[str, float] = field(default_factory=dict)
    drop_fields: tuple[str, ...] = ()
    hash_fields: tuple[str, ...] = ()
    hash_salt: str = field(default="", repr=False)
    retry_initial: float = 0.5
    retry_max: float = 30.0
    max_outcome_names: int = 64

    def __post_init__(self) -> None:
        problems = []
        if self.flush_rows < 1:
            problems.append(f"flush_rows must be >= 1, got {self.flush_rows}")
        if self.flush_interval <= 0:
            problems.append(f"flush_interval must be > 0, got {self.flush_interval}")
        if self.max_buffer_rows < 1:
            problems.append(f"max_buffer_rows must be >= 1, got {self.max_buffer_rows}")
        if self.max_outcome_names < 0:
            problems.append(f"max_outcome_names must be >= 0, got {self.max_outcome_names}")
        if not 0 < self.retry_initial <= self.retry_max:
            problems.append("retry_initial must be > 0 and <= retry_max")
        for model, rate in self.sample_rate.items():
            if not 0.0 <= rate <= 1.0:
                problems.append(f"sample_rate for {model!r} must be within [0, 1], got {rate}")
        if problems:
            raise InvalidInput("invalid logbook configuration: " + "; ".join(problems))
        # freeze the mapping too (a dict would be mutable behind the frozen dataclass)
        object.__setattr__(self, "sample_rate", MappingProxyType(dict(self.sample_rate)))
        object.__setattr__(self, "drop_fields", tuple(self.drop_fields))
        object.__setattr__(self, "hash_fields", tuple(self.hash_fields))

    def __repr__(self) -> str:
        parts = [
            f"flush_rows={self.flush_rows}",
            f"flush_interval={self.flush_interval}",
            f"max_buffer_rows={self.max_buffer_rows}",
            f"sample_rate={dict(self.sample_rate)}",
            f"drop_fields={self.drop_fields}",
            f"hash_fields={self.hash_fields}",
            f"hash_salt={'***' if self.hash_salt else repr('')}",
            f"retry_initial={self.retry_initial}",
            f"retry_max={self.retry_max}",
            f"max_outcome_names={self.max_outcome_names}",
        ]
        return f"LogbookConfig({', '.join(parts)})"


@dataclass(frozen=True, kw_only=True)
class LogbookStats:
    """A snapshot of the writer's counters (rows, unless named otherwise).

    ``buffered_rows`` includes rows whose flush failed and that wait for a retry.
    ``dropped_rows`` counts rows refused because the buffer was full, logged after ``close()``,
    or that could not be converted to records. ``sampled_out_rows`` were skipped on purpose.
    """

    buffered_rows: int = 0
    written_rows: int = 0
    dropped_rows: int = 0
    sampled_out_rows: int = 0
    flush_failures: int = 0
    feedback_buffered: int = 0
    feedback_written: int = 0
    feedback_dropped: int = 0
    last_flush_error: str | None = None
