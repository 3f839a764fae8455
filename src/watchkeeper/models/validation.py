"""What to do with values a model's signature does not expect: the policy the server's request
validation (``watchkeeper.serving.validation``) and batch scoring's row checks
(``watchkeeper.batch.validate``) both follow. It lives beside the signature, so neither of them
imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from watchkeeper.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class ValidationPolicy:
    """What to do with values a signature does not expect.

    >>> ValidationPolicy(out_of_range="reject")
    ValidationPolicy(out_of_range='reject', unseen_category='reject', bounds={}, max_rows=10000, \
max_details=50)
    """

    out_of_range: Literal["count", "reject"] = "count"
    unseen_category: Literal["count", "reject"] = "reject"
    bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_rows: int = 10_000
    max_details: int = 50

    def __post_init__(self) -> None:
        for name in ("out_of_range", "unseen_category"):
            if getattr(self, name) not in ("count", "reject"):
                raise InvalidInput(
                    f"{name} must be 'count' or 'reject', got {getattr(self, name)!r}"
                )
        if self.max_rows < 1 or self.max_details < 1:
            raise InvalidInput("max_rows and max_details must be at least 1")
        bounds = {str(k): (low, high) for k, (low, high) in self.bounds.items()}
        for name, (low, high) in bounds.items():
            if low is not None and high is not None and low > high:
                raise InvalidInput(f"bounds for {name!r}: low {low} is above high {high}")
        object.__setattr__(self, "bounds", bounds)
