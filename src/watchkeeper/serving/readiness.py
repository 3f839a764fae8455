"""What ``/readyz`` says: ready, degraded (serving, with a reason) or not ready.

A replica is *not ready* when it cannot answer for a model it should serve (a production version
not loaded, the model table not started, a background task stopped for good). It is *degraded*
when it answers correctly from what it has loaded but something behind it is wrong: its view of
the registry is stale because the metadata database cannot be read. Degraded answers 200, so a
database outage, which every replica sees at once, never takes the whole service out of the
load balancer; the reason and the view's age are in the body. ``serve --stale-view unready``
turns a stale view into not ready instead, for fleets where one replica cut off from the
database should leave (a rollback could not reach it) and the others can carry the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

StaleView = Literal["degraded", "unready"]
STALE_VIEWS: tuple[StaleView, ...] = ("degraded", "unready")


@dataclass
class Readiness:
    blocking: list[str] = field(default_factory=list)  # why the replica is not ready
    degraded: list[str] = field(default_factory=list)  # why it serves in a degraded state
    models: dict[str, str] = field(default_factory=dict)  # served: name -> version
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.blocking

    @property
    def status(self) -> str:
        return "not_ready" if self.blocking else "degraded" if self.degraded else "ready"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ready": self.ready, "status": self.status,
                               "models": self.models, "problems": self.problems}  # fmt: skip
        if self.blocking or self.degraded:
            out["reason"] = "; ".join(self.blocking + self.degraded)
        return out


def stale_reason(age: float, bound: float) -> str | None:
    """Why a registry view last read ``age`` seconds ago is stale (None: it is not)."""
    if age <= bound:
        return None
    return (f"the registry view is stale: no successful registry read for {age:.1f} s "
            f"(bound {bound:g} s)")  # fmt: skip
