"""The statistics of safe deployment: A/B analysis valid under peeking, sample sizes, canary guards.

**A/B analysis** uses the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis,
Koomen & Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
Research 70(3), 2022; Optimizely's stats engine). With ``Δ`` the difference of means (treatment
minus control), its variance ``V = s_c²/n_c + s_t²/n_t`` and a normal mixture ``θ ~ N(0, τ²)``
over the true difference, the likelihood ratio against "no difference" is::

    Λ = sqrt(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))

(for equal arms ``V = 2σ²/n`` and this is the paper's two-stream formula). ``Λ`` is a
martingale under the null, so ``P(Λ ever reaches 1/α) ≤ α`` however often one looks: the
always-valid p-value is ``p_n = min(p_{n-1}, 1/Λ_n)`` and the confidence sequence is every
``θ₀`` the test at ``θ₀`` would not reject::

    |Δ - θ₀| < sqrt(V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)))

The variance is estimated **per arm** (sample variances, as Welch's test and Optimizely do), not
pooled: arms may differ in size (canary weights) and in spread, and under the null both
estimates agree anyway. Plugging an estimate in for the known variance is the usual
approximation; it is accurate once each arm holds :data:`MIN_N` units, and before that the
analysis reports no evidence. The mixture variance ``τ²`` defaults to ``(0.1 σ)²``, σ² the
mean of the two arms' variances: the test is most sensitive to effects near a tenth of a
standard deviation and scale-free (conversion or revenue alike). A unit must be an independent
observation: when one user's outcomes are correlated and the split is sticky per user, the
unit is the user (routing key), not the row: :mod:`watchkeeper.rollout.ab_units` summarises
an arm over its keys for this analysis.

**Sample sizes** use the normal approximation for a two-sided fixed-horizon test.
**Guards** are fixed-horizon one-sided tests with a margin (the latency guard: a ratio), each
giving a three-way verdict:
``"not_worse"`` (non-inferiority shown), ``"worse"`` (harm beyond the margin shown) or
``"inconclusive"``; they are meant for a few planned looks (one per canary step), not continuous
peeking. **Prediction comparisons** reuse the drift tests of :mod:`watchkeeper.monitoring.drift`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.special import bdtr, bdtrc, ndtr, ndtri

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import DriftResult, jensenshannon, ks
from watchkeeper.monitoring.drift.result import json_float
from watchkeeper.monitoring.sketch import LogSketch

__all__ = [
    "DEFAULT_RELATIVE_MIXTURE_SD",
    "MIN_N",
    "ABAnalysis",
    "ArmSummary",
    "GuardResult",
    "PredictionComparison",
    "ab_analysis",
    "compare_predictions",
    "distance_lower_bound",
    "error_rate_guard",
    "latency_guard",
    "loss_guard",
    "sample_size",
    "sample_size_proportions",
]

MIN_N = 100
"""Units per arm before an A/B look counts as evidence (the plug-in variance is unreliable
below, especially for rare binary outcomes)."""

DEFAULT_RELATIVE_MIXTURE_SD = 0.1
"""Default mixture standard deviation ``τ`` as a multiple of the per-unit standard deviation."""

MIN_SLOW_REQUESTS = 5
"""Requests above its limit the latency guard needs before its verdict can be ``worse``."""

Decision: TypeAlias = Literal["treatment_better", "control_better", "no_difference_yet"]
Verdict: TypeAlias = Literal["not_worse", "worse", "inconclusive"]


@dataclass(frozen=True)
class ArmSummary:
    """Sufficient statistics of one arm: count, mean and ``m2``, the sum of squared deviations
    from the mean (Welford), so summaries of batches merge exactly.

    >>> a = ArmSummary.from_values([1.0, 2.0]).merge(ArmSummary.from_values([3.0]))
    >>> a.n, a.mean, a.variance
    (3, 2.0, 1.0)
    """

    n: int
    mean: float = 0.0
    m2: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0 or self.m2 < 0 or not (math.isfinite(self.mean) and math.isfinite(self.m2)):
            raise InvalidInput(f"invalid arm summary {self!r}: n and m2 must be >= 0 and finite")

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ArmSummary:
        x = _finite(values, "values")
        if x.size == 0:
            return cls(0)
        mean = float(x.mean())
        return cls(int(x.size), mean, float(np.sum((x - mean) ** 2)))

    @classmethod
    def from_successes(cls, n: int, successes: int) -> ArmSummary:
        """A binary outcome (conversion) from its counts.

        >>> ArmSummary.from_successes(4, 1)
        ArmSummary(n=4, mean=0.25, m2=0.75)
        """
        if not 0 <= successes <= n:
            raise InvalidInput(f"need 0 <= successes <= n, got {successes} of {n}")
        p = successes / n if n else 0.0
        return cls(n, p, successes * (1 - p))

    @classmethod
    def from_sums(cls, n: int, total: float, sum_squares: float) -> ArmSummary:
        """From the count, sum and sum of squares a database aggregate gives."""
        mean = total / n if n else 0.0
        return cls(n, mean, max(sum_squares - n * mean * mean, 0.0))

    def merge(self, other: ArmSummary) -> ArmSummary:
        """Both batches' summary (Chan et al.'s parallel update)."""
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        return ArmSummary(n, mean, self.m2 + other.m2 + delta * delta * self.n * other.n / n)

    @property
    def variance(self) -> float:
        """Sample variance (``ddof=1``); NaN below two units."""
        return self.m2 / (self.n - 1) if self.n >= 2 else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


@dataclass(frozen=True)
class ABAnalysis:
    """One look at an A/B test; ``difference`` is treatment minus control.

    ``p_value``, ``ci_lower``/``ci_upper`` (the confidence sequence) and ``decision`` are always
    valid: they hold however often the test is looked at. ``fixed_horizon_p_value`` is Welch's
    t-test, for reference only and **not used for the decision**: it is valid for one look
    planned in advance, and repeated looks at it find false winners.

    ``unit`` says what one observation of ``control``/``treatment`` is: a ``"row"``, or a
    ``"routing_key"`` (:mod:`watchkeeper.rollout.ab_units`: then ``n`` counts keys and
    ``rows`` the outcomes of each arm).
    """

    control: ArmSummary
    treatment: ArmSummary
    difference: float
    ci_lower: float
    ci_upper: float
    p_value: float
    decision: Decision
    alpha: float
    mixture_variance: float
    fixed_horizon_p_value: float
    unit: Literal["row", "routing_key"] = "row"
    rows: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = _json(asdict(self))
        out["control"], out["treatment"] = _json(out["control"]), _json(out["treatment"])
        return out


def ab_analysis(
    control: ArmSummary | npt.ArrayLike,
    treatment: ArmSummary | npt.ArrayLike,
    *,
    alpha: float = 0.05,
    mixture_variance: float | None = None,
    previous_p: float = 1.0,
    previous_interval: tuple[float, float] | None = None,
    higher_is_better: bool = True,
    min_n: int = MIN_N,
) -> ABAnalysis:
    """Always-valid analysis of control (production) against treatment (candidate).

    Each arm is per-unit outcomes (0/1 conversions or real values) or an :class:`ArmSummary`.
    Pass the previous look's ``p_value`` and ``(ci_lower, ci_upper)`` to keep the running
    minimum and the running intersection. Below ``min_n`` units in an arm (or with no
    variance) a look adds no evidence. ``higher_is_better=False`` for costs and latencies.

    >>> rng = np.random.default_rng(0)
    >>> r = ab_analysis(rng.binomial(1, 0.10, 20_000), rng.binomial(1, 0.13, 20_000))
    >>> r.decision, r.ci_lower > 0, r.p_value < 0.05 < r.control.mean
    ('treatment_better', True, True)
    """
    _check_level("alpha", alpha)
    if not 0 < previous_p <= 1:
        raise InvalidInput(f"previous_p must be in (0, 1], got {previous_p!r}")
    c, t = _arm(control), _arm(treatment)
    difference = t.mean - c.mean
    v = c.variance / c.n + t.variance / t.n if min(c.n, t.n) >= 2 else math.nan
    lo, hi, p, tau2 = -math.inf, math.inf, previous_p, math.nan
    if min(c.n, t.n) >= max(min_n, 2) and v > 0:
        tau2 = _mixture_variance(mixture_variance, c, t)
        log_lr, half_width = _msprt(difference, v, tau2, alpha)
        p = min(previous_p, math.exp(-max(log_lr, 0.0)))
        lo, hi = difference - half_width, difference + half_width
    if previous_interval is not None:
        lo, hi = _intersect((lo, hi), previous_interval)
    return ABAnalysis(
        control=c,
        treatment=t,
        difference=difference,
        ci_lower=lo,
        ci_upper=hi,
        p_value=p,
        decision=_decide(p, alpha, difference, higher_is_better),
        alpha=alpha,
        mixture_variance=tau2,
        fixed_horizon_p_value=_welch_p(c, t),
    )


def _msprt(difference: float, v: float, tau2: float, alpha: float) -> tuple[float, float]:
    """``ln Λ`` against no difference and the half-width of the confidence sequence."""
    log_lr = 0.5 * math.log(v / (v + tau2)) + tau2 * difference**2 / (2 * v * (v + tau2))
    half_width = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log1p(tau2 / v)))
    return log_lr, half_width


def _mixture_variance(given: float | None, c: ArmSummary, t: ArmSummary) -> float:
    if given is None:
        return DEFAULT_RELATIVE_MIXTURE_SD**2 * (c.variance + t.variance) / 2
    if not (math.isfinite(given) and given > 0):
        raise InvalidInput(f"mixture_variance must be positive and finite, got {given!r}")
    return given


def _intersect(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    # Empty only if the model is badly wrong (or with chance below alpha): keep the current one.
    return (lo, hi) if lo <= hi else a


def _decide(p: float, alpha: float, difference: float, higher_is_better: bool) -> Decision:
    if p > alpha or difference == 0:
        return "no_difference_yet"
    return "treatment_better" if (difference > 0) == higher_is_better else "control_better"


def _welch_p(c: ArmSummary, t: ArmSummary) -> float:
    """Two-sided Welch t-test p-value of treatment against control."""
    if min(c.n, t.n) < 2 or c.variance / c.n + t.variance / t.n == 0:
        return math.nan
    from scipy.stats import ttest_ind_from_stats  # scipy.stats is slow to import: when used

    welch = ttest_ind_from_stats(t.mean, t.std, t.n, c.mean, c.std, c.n, equal_var=False)
    return float(welch.pvalue)


def sample_size(mde: float, *, std: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided fixed-horizon test of means to detect an absolute
    difference ``mde`` with the given power: ``2 (z_{1-α/2} + z_{power})² std² / mde²``.

    >>> sample_size(0.5, std=2.0)
    252
    """
    _check_design(mde, alpha, power)
    if not (math.isfinite(std) and std > 0):
        raise InvalidInput(f"std must be positive, got {std!r}")
    z = _z(1 - alpha / 2) + _z(power)
    return math.ceil(2 * (z * std / mde) ** 2)


def sample_size_proportions(
    p_baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Units per arm to detect a rate moving from ``p_baseline`` to ``p_baseline + mde``
    (two-sided, pooled variance under the null, unpooled under the alternative; no
    continuity correction)::

        n = (z_{1-α/2} sqrt(2 p̄ (1 - p̄)) + z_{power} sqrt(p₁(1-p₁) + p₂(1-p₂)))² / mde²

    >>> sample_size_proportions(0.10, 0.02)
    3841
    """
    _check_design(mde, alpha, power)
    p1, p2 = p_baseline, p_baseline + mde
    if not (0 < p1 < 1 and 0 < p2 < 1):
        raise InvalidInput(f"rates must be in (0, 1), got {p1!r} and {p2!r}")
    mean = (p1 + p2) / 2
    spread = _z(1 - alpha / 2) * math.sqrt(2 * mean * (1 - mean)) + _z(power) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil((spread / mde) ** 2)


def _check_design(mde: float, alpha: float, power: float) -> None:
    _check_level("alpha", alpha)
    _check_level("power", power)
    if not (math.isfinite(mde) and mde != 0):
        raise InvalidInput(f"mde must be a non-zero number, got {mde!r}")


@dataclass(frozen=True)
class GuardResult:
    """A one-sided "candidate not worse than production" test with a margin (lower is better).

    ``difference`` is candidate minus production. ``p_noninferiority`` tests the null
    "candidate worse by at least ``margin``": small means it is shown not worse.
    ``p_harm`` tests "candidate worse by at most ``margin``": small means it is shown worse.
    """

    method: str
    statistic: float
    difference: float
    margin: float
    p_noninferiority: float
    p_harm: float
    alpha: float
    verdict: Verdict
    n_production: int
    n_candidate: int

    def to_dict(self) -> dict[str, Any]:
        return _json(asdict(self))


def error_rate_guard(
    production_errors: int,
    production_n: int,
    candidate_errors: int,
    candidate_n: int,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    method: Literal["auto", "z", "fisher"] = "auto",
) -> GuardResult:
    """Is the candidate's error (or misclassification) rate above production's by > ``margin``?

    ``"z"``: Agresti–Caffo adjusted Wald test of the difference (one error and one success
    added to each arm, so zero counts give a finite, honest test). ``"fisher"``: Fisher's
    exact test, only for ``margin == 0``. ``"auto"`` picks Fisher when ``margin == 0`` and an
    expected cell count is below 5, else z. With ``margin == 0`` "not worse" needs the
    candidate to be significantly *better*; give a tolerated margin to show non-inferiority.

    >>> error_rate_guard(50, 10_000, 48, 10_000, margin=0.005).verdict
    'not_worse'
    >>> r = error_rate_guard(1, 1_000, 8, 1_000)
    >>> r.method, r.verdict, round(r.p_harm, 4)
    ('fisher', 'worse', 0.0193)
    """
    _check_level("alpha", alpha)
    for errors, n in ((production_errors, production_n), (candidate_errors, candidate_n)):
        if not 0 <= errors <= n or n == 0:
            raise InvalidInput(f"need 0 <= errors <= n and n > 0, got {errors} of {n}")
    if method == "auto":
        method = (
            "fisher"
            if margin == 0
            and _min_expected(production_errors, production_n, candidate_errors, candidate_n) < 5
            else "z"
        )
    if method == "fisher" and margin != 0:
        raise InvalidInput("Fisher's exact test has no margin; use method='z'")
    stat, p_noninf, p_harm = (
        _fisher(production_errors, production_n, candidate_errors, candidate_n)
        if method == "fisher"
        else _agresti_caffo(production_errors, production_n, candidate_errors, candidate_n, margin)
    )
    difference = candidate_errors / candidate_n - production_errors / production_n
    return _guard(
        method, stat, difference, margin, p_noninf, p_harm, alpha, production_n, candidate_n
    )


def _min_expected(x_p: int, n_p: int, x_c: int, n_c: int) -> float:
    errors, total = x_p + x_c, n_p + n_c
    return min(n * k / total for n in (n_p, n_c) for k in (errors, total - errors))


def _agresti_caffo(x_p: int, n_p: int, x_c: int, n_c: int, margin: float) -> tuple[float, ...]:
    p_p, p_c = (x_p + 1) / (n_p + 2), (x_c + 1) / (n_c + 2)
    se = math.sqrt(p_p * (1 - p_p) / (n_p + 2) + p_c * (1 - p_c) / (n_c + 2))
    z = (p_c - p_p - margin) / se
    return z, float(ndtr(z)), float(ndtr(-z))


def _fisher(x_p: int, n_p: int, x_c: int, n_c: int) -> tuple[float, ...]:
    from scipy.stats import fisher_exact  # imported here: scipy.stats costs ~0.8 s to import

    table = [[x_c, n_c - x_c], [x_p, n_p - x_p]]
    harm = fisher_exact(table, alternative="greater")
    return (
        float(harm.statistic),
        float(fisher_exact(table, alternative="less").pvalue),
        float(harm.pvalue),
    )


def loss_guard(
    production_loss: npt.ArrayLike,
    candidate_loss: npt.ArrayLike,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    paired: bool = False,
) -> GuardResult:
    """Is the candidate's mean per-row loss above production's by more than ``margin``?

    Per-row losses come from labelled rows (squared error, log loss, ``1 - correct`` for
    accuracy). ``paired=True`` when both models scored the same rows (shadow): a t-test on the
    per-row differences; otherwise (canary: different requests) Welch's t-test.

    >>> rng = np.random.default_rng(1)
    >>> prod = rng.normal(1.0, 0.5, 2_000)
    >>> loss_guard(prod, prod + rng.normal(0.01, 0.1, 2_000), margin=0.05, paired=True).verdict
    'not_worse'
    """
    _check_level("alpha", alpha)
    prod, cand = (
        _finite(production_loss, "production_loss"),
        _finite(candidate_loss, "candidate_loss"),
    )
    if paired and prod.shape != cand.shape:
        raise InvalidInput(f"paired losses need equal lengths, got {prod.size} and {cand.size}")
    if min(prod.size, cand.size) < 2:
        raise InvalidInput("need at least two rows per model")
    difference = float(cand.mean() - prod.mean())
    method = "paired_t" if paired else "welch_t"
    spread = np.ptp(cand - prod) if paired else np.ptp(prod) + np.ptp(cand)
    if spread == 0:
        t = _sign_inf(difference - margin)  # no spread: the difference is known exactly
        p_noninf, p_harm = float(ndtr(t)), float(ndtr(-t))
    else:
        t, p_noninf, p_harm = _loss_t_test(prod, cand, margin, paired)
    return _guard(method, t, difference, margin, p_noninf, p_harm, alpha, prod.size, cand.size)


def _loss_t_test(
    prod: npt.NDArray[np.float64], cand: npt.NDArray[np.float64], margin: float, paired: bool
) -> tuple[float, float, float]:
    """t of the candidate's loss minus ``margin`` against production's (paired: per row; else
    Welch's), with its one-sided p-values: below, and above."""
    from scipy import stats

    if paired:
        test = partial(stats.ttest_1samp, cand - prod, margin)
    else:
        p, c = ArmSummary.from_values(prod), ArmSummary.from_values(cand)
        test = partial(stats.ttest_ind_from_stats, c.mean - margin, c.std, c.n, p.mean, p.std,
                       p.n, equal_var=False)  # fmt: skip
    below, above = test(alternative="less"), test(alternative="greater")
    return float(below.statistic), float(below.pvalue), float(above.pvalue)


def latency_guard(
    production: LogSketch,
    candidate: LogSketch,
    *,
    max_ratio: float = 1.5,
    quantile: float = 0.99,
    alpha: float = 0.05,
    min_above: int = MIN_SLOW_REQUESTS,
) -> GuardResult:
    """Is the candidate's ``quantile`` latency above ``max_ratio`` times production's?

    Both sides are latency sketches (``monitoring.sketch``). With ``T = max_ratio ·
    q_production``: if the candidate's quantile is at most ``T``, at most ``1 - quantile`` of
    its requests take longer than ``T``, so ``k`` of its ``n`` requests above ``T`` has the
    binomial tail ``P(X ≥ k; n, 1 - quantile)`` as ``p_harm``. Comparing the two raw quantiles
    instead fails good candidates: a p99 taken from the few requests of a 1% canary step is
    nearly their maximum, while production's is a true p99. Production's quantile is taken as
    known (it has most of the traffic, or the whole deployment's at the last step). ``k`` is
    :meth:`LogSketch.count_above` over the whole range: a sketch has no open last bin, so a
    request of a minute counts above a limit of seconds. ``statistic`` is the ratio of the two
    quantiles, ``difference`` the candidate's share above ``T`` minus ``1 - quantile``,
    ``margin`` is ``max_ratio``.

    The binomial takes the slow requests as independent; they are not quite: one pause of the
    process (a garbage collection, a noisy neighbour, a busy interpreter lock) slows every
    request in flight at once, and on a small canary step two or three such requests reach
    ``p_harm < alpha`` by themselves (seen in CI: 3 of 51 failed a healthy candidate). So fewer
    than ``min_above`` requests above ``T`` never make the verdict ``worse``; the step goes on
    and the next look has more requests.

    >>> ms = lambda values: LogSketch(alpha=0.01, floor=0.001).update(values)
    >>> prod = ms([4.0] * 980 + [4700.0] * 20)  # p99 about 4.7 s
    >>> latency_guard(prod, ms([4.0] * 99 + [4000.0])).verdict
    'inconclusive'
    >>> latency_guard(prod, ms([60_000.0] * 100)).verdict
    'worse'
    """
    _check_level("alpha", alpha)
    _check_level("quantile", quantile)
    n_p, n_c = production.count, candidate.count
    if min(n_p, n_c) == 0:
        raise InvalidInput("need two non-empty latency sketches")
    if max_ratio <= 0:
        raise InvalidInput(f"max_ratio must be positive, got {max_ratio!r}")
    if min_above < 1:
        raise InvalidInput(f"min_above must be at least 1, got {min_above!r}")
    q_p, q_c = production.quantile(quantile), candidate.quantile(quantile)
    above = candidate.count_above(max_ratio * q_p)
    tail = 1.0 - quantile
    p_harm = 1.0 if above == 0 else float(bdtrc(above - 1, n_c, tail))
    p_noninf = float(bdtr(above, n_c, tail))
    ratio = q_c / q_p if q_p > 0 else 1.0
    result = _guard("binomial_tail", ratio, above / n_c - tail, max_ratio, p_noninf, p_harm,
                    alpha, n_p, n_c)  # fmt: skip
    if result.verdict == "worse" and above < min_above:  # p_harm stays reported as it is
        return replace(result, verdict="inconclusive")
    return result


def distance_lower_bound(
    counts_a: npt.ArrayLike,
    counts_b: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> float:
    """One-sided ``1 - alpha`` lower confidence bound of the Jensen–Shannon distance (base 2)
    between the label distributions behind two samples, given as counts over the same labels.

    The basic bootstrap (``2·d - q₁₋α(d*)``, multinomial resamples of each sample): the
    distance of two samples is biased upwards, so the bound is near zero for two samples of
    one distribution, however the raw distance happens to fall, and close to the distance
    when the distributions differ clearly. Seeded, so a look gives the same answer twice.

    >>> round(distance_lower_bound([500, 500], [63, 37]), 2)  # 0.13 apart by chance
    0.04
    >>> round(distance_lower_bound([500, 500], [0, 100]), 2)  # one class only: 0.56 apart
    0.54
    """
    _check_level("alpha", alpha)
    a, b = np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or min(a.sum(), b.sum()) <= 0 or (a < 0).any():
        raise InvalidInput("need two non-empty count vectors over the same labels")
    p, q = a / a.sum(), b / b.sum()
    rng = np.random.default_rng(seed)
    p_star = rng.multinomial(int(a.sum()), p, size=resamples) / a.sum()
    q_star = rng.multinomial(int(b.sum()), q, size=resamples) / b.sum()
    observed = float(_js_distance(p[None, :], q[None, :])[0])
    upper = float(np.quantile(_js_distance(p_star, q_star), 1 - alpha))
    return max(0.0, 2 * observed - upper)


def _js_distance(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Row-wise Jensen–Shannon distance (base 2), as ``monitoring.drift.jensenshannon``."""
    mix = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mix), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / mix), 0.0).sum(axis=1)
    distance: npt.NDArray[Any] = np.sqrt(np.clip((kl_p + kl_q) / 2, 0.0, 1.0))
    return distance


def _guard(
    method: str,
    statistic: float,
    difference: float,
    margin: float,
    p_noninf: float,
    p_harm: float,
    alpha: float,
    n_production: int,
    n_candidate: int,
) -> GuardResult:
    verdict: Verdict = (
        "not_worse" if p_noninf < alpha else "worse" if p_harm < alpha else "inconclusive"
    )
    return GuardResult(
        method=method,
        statistic=float(statistic),
        difference=difference,
        margin=margin,
        p_noninferiority=p_noninf,
        p_harm=p_harm,
        alpha=alpha,
        verdict=verdict,
        n_production=n_production,
        n_candidate=n_candidate,
    )


@dataclass(frozen=True)
class PredictionComparison:
    """Candidate against production predictions on the same requests.

    ``agreement`` is the share of requests with the same predicted class (``None`` for
    regression); ``distance`` is the drift test of the two prediction distributions.
    """

    n: int
    agreement: float | None
    distance: DriftResult


def compare_predictions(
    production: npt.ArrayLike,
    candidate: npt.ArrayLike,
    *,
    task: Literal["classification", "regression"],
    threshold: float | None = None,
) -> PredictionComparison:
    """How differently the candidate answers the same requests.

    Classes: agreement rate and the Jensen–Shannon distance of the class shares (drifted above
    ``threshold``, default 0.1). Values: the Kolmogorov–Smirnov test (``threshold`` its alpha,
    default 0.05; conservative here, as the two samples answer the same requests).

    >>> r = compare_predictions(["a", "b", "b", "a"], ["a", "b", "a", "a"], task="classification")
    >>> r.agreement, round(r.distance.statistic, 3)
    (0.75, 0.221)
    """
    prod, cand = np.asarray(production), np.asarray(candidate)
    if prod.ndim != 1 or prod.shape != cand.shape or prod.size == 0:
        raise InvalidInput(f"need two non-empty 1-D arrays alike, got {prod.shape}, {cand.shape}")
    if task == "classification":
        distance = jensenshannon(prod, cand, threshold=0.1 if threshold is None else threshold)
        return PredictionComparison(prod.size, float(np.mean(prod == cand)), distance)
    if task == "regression":
        distance = ks(prod, cand, alpha=0.05 if threshold is None else threshold)
        return PredictionComparison(prod.size, None, distance)
    raise InvalidInput(f"task must be 'classification' or 'regression', got {task!r}")


def _json(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: json_float(v) if isinstance(v, float) else v for k, v in fields.items()}


def _arm(arm: ArmSummary | npt.ArrayLike) -> ArmSummary:
    return arm if isinstance(arm, ArmSummary) else ArmSummary.from_values(arm)


def _finite(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise InvalidInput(f"{what} must be a 1-D array of finite numbers")
    return x


def _sign_inf(x: float) -> float:
    """The statistic of a difference with zero standard error."""
    return 0.0 if x == 0 else math.copysign(math.inf, x)


def _check_level(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise InvalidInput(f"{name} must be in (0, 1), got {value!r}")


def _z(q: float) -> float:
    return float(ndtri(q))
