"""The registry of drift tests: what each applies to, how it decides, and its binned form."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import psi as psi_module
from watchkeeper.monitoring.drift.chisquare import chisquare, chisquare_binned
from watchkeeper.monitoring.drift.jensenshannon import jensenshannon, jensenshannon_binned
from watchkeeper.monitoring.drift.ks import ks, ks_binned
from watchkeeper.monitoring.drift.result import DriftResult
from watchkeeper.monitoring.drift.wasserstein import wasserstein, wasserstein_binned

__all__ = ["METHODS", "FeatureKind", "Method", "run_binned", "run_exact"]

FeatureKind: TypeAlias = Literal["numeric", "categorical"]


@dataclass(frozen=True, kw_only=True)
class Method:
    """A drift test: the kinds it applies to and how its statistic decides.

    ``default_threshold`` is the fixed threshold (distances) or alpha (p-value tests);
    ``floor`` the smallest calibrated threshold allowed; ``noise_power`` how the statistic's
    spread on undrifted samples shrinks with the effective size ``N = n m / (n + m)``
    (as ``N ** -noise_power``): distances that are square roots of a divergence, or averages of
    CDF gaps, shrink as ``1/sqrt(N)``; PSI, a divergence, as ``1/N``.
    """

    name: str
    kinds: tuple[FeatureKind, ...]
    p_value: bool
    default_threshold: float
    floor: float = 0.0
    noise_power: float = 0.5


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="wasserstein", kinds=("numeric",), p_value=False, default_threshold=0.1, floor=0.02
        ),
        Method(name="ks", kinds=("numeric",), p_value=True, default_threshold=0.05),
        Method(
            name="psi",
            kinds=("numeric", "categorical"),
            p_value=False,
            default_threshold=0.2,
            floor=0.005,
            noise_power=1.0,
        ),
        Method(
            name="jensenshannon",
            kinds=("categorical",),
            p_value=False,
            default_threshold=0.1,
            floor=0.02,
        ),
        Method(name="chisquare", kinds=("categorical",), p_value=True, default_threshold=0.05),
    )
}


def method_info(name: str, kind: FeatureKind) -> Method:
    """The method called ``name``, checked to apply to ``kind``."""
    method = METHODS.get(name)
    if method is None:
        raise InvalidInput(f"unknown drift method {name!r} (known: {', '.join(sorted(METHODS))})")
    if kind not in method.kinds:
        raise InvalidInput(f"drift method {name!r} does not apply to {kind} features")
    return method


def run_exact(
    name: str, kind: FeatureKind, reference: npt.ArrayLike, current: npt.ArrayLike, threshold: float
) -> DriftResult:
    """Run a test on raw values (``threshold`` is alpha for p-value tests)."""
    method = method_info(name, kind)
    if method.p_value:
        test = ks if name == "ks" else chisquare
        return test(reference, current, alpha=threshold)
    exact: dict[str, Callable[..., DriftResult]] = {
        "wasserstein": wasserstein,
        "jensenshannon": jensenshannon,
        "psi": psi_module.psi if kind == "numeric" else psi_module.psi_categorical,
    }
    return exact[name](reference, current, threshold=threshold)


def run_binned(
    name: str,
    kind: FeatureKind,
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    threshold: float,
    *,
    edges: Sequence[float] = (),
    std: float = 1.0,
    tails: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0)),
    psi_bins: int = 10,
) -> DriftResult:
    """Run a test on counts over shared bins. Numeric ``wasserstein`` needs ``edges`` and
    ``std``; ``tails`` are the (reference, current) tail excesses."""
    method_info(name, kind)
    ref, cur = reference_counts, current_counts
    if name == "wasserstein":
        return wasserstein_binned(
            ref,
            cur,
            edges,
            std=std,
            reference_tails=tails[0],
            current_tails=tails[1],
            threshold=threshold,
        )
    if name == "psi":
        bins = psi_bins if kind == "numeric" else None
        return psi_module.psi_binned(ref, cur, bins=bins, threshold=threshold)
    if name == "jensenshannon":
        return jensenshannon_binned(ref, cur, threshold=threshold)
    test = ks_binned if name == "ks" else chisquare_binned
    return test(ref, cur, alpha=threshold)
