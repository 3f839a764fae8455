import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon

from watchkeeper.errors import InvalidInput
from watchkeeper.rollout.stats import (
    MIN_N,
    ArmSummary,
    ab_analysis,
    compare_predictions,
    error_rate_guard,
    loss_guard,
    sample_size,
    sample_size_proportions,
)

# --- ArmSummary ---------------------------------------------------------------------------


def test_arm_summary_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, 500)
    arm = ArmSummary.from_values(x)
    assert arm.n == 500
    assert math.isclose(arm.mean, x.mean())
    assert math.isclose(arm.variance, x.var(ddof=1))
    assert math.isclose(arm.std, x.std(ddof=1))


@pytest.mark.parametrize("sizes", [(1, 1), (10, 3), (0, 7), (7, 0), (250, 1000)])
def test_merge_equals_one_summary_of_both_batches(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.lognormal(1.0, 1.0, sizes[0]), rng.lognormal(2.0, 0.5, sizes[1])
    merged = ArmSummary.from_values(a).merge(ArmSummary.from_values(b))
    whole = ArmSummary.from_values(np.concatenate([a, b]))
    assert merged.n == whole.n
    assert math.isclose(merged.mean, whole.mean, rel_tol=1e-12)
    assert math.isclose(merged.m2, whole.m2, rel_tol=1e-10, abs_tol=1e-12)


def test_counts_and_sums_give_the_same_summary_as_values() -> None:
    x = np.random.default_rng(1).binomial(1, 0.3, 400).astype(float)
    whole = ArmSummary.from_values(x)
    for arm in (
        ArmSummary.from_successes(400, int(x.sum())),
        ArmSummary.from_sums(400, float(x.sum()), float((x**2).sum())),
    ):
        assert arm.n == whole.n
        assert math.isclose(arm.mean, whole.mean)
        assert math.isclose(arm.m2, whole.m2)


def test_empty_and_invalid_summaries() -> None:
    assert ArmSummary.from_values([]) == ArmSummary(0)
    assert math.isnan(ArmSummary.from_values([1.0]).variance)
    with pytest.raises(InvalidInput, match="successes"):
        ArmSummary.from_successes(3, 4)
    with pytest.raises(InvalidInput, match="m2 must be"):
        ArmSummary(3, 1.0, -1.0)
    with pytest.raises(InvalidInput, match="finite numbers"):
        ArmSummary.from_values([1.0, math.nan])


# --- mSPRT: formulas ------------------------------------------------------------------------


def test_fixed_horizon_p_value_is_welch() -> None:
    rng = np.random.default_rng(2)
    c, t = rng.normal(0.0, 1.0, 300), rng.normal(0.2, 3.0, 120)
    expected = stats.ttest_ind(t, c, equal_var=False).pvalue
    assert math.isclose(ab_analysis(c, t).fixed_horizon_p_value, expected, rel_tol=1e-9)


def test_likelihood_ratio_is_the_normal_mixture_marginal() -> None:
    """1/Λ is N(Δ; 0, V) / ∫ N(Δ; θ, V) N(θ; 0, τ²) dθ = N(Δ; 0, V) / N(Δ; 0, V + τ²)."""
    rng = np.random.default_rng(3)
    c, t = rng.normal(10.0, 2.0, 400), rng.normal(10.3, 2.5, 600)
    tau2 = 0.05
    r = ab_analysis(c, t, mixture_variance=tau2)
    v = c.var(ddof=1) / c.size + t.var(ddof=1) / t.size
    diff = t.mean() - c.mean()
    null = stats.norm.pdf(diff, 0, math.sqrt(v))
    mixture = stats.norm.pdf(diff, 0, math.sqrt(v + tau2))
    assert math.isclose(r.p_value, min(1.0, null / mixture), rel_tol=1e-9)
    # Each end of the confidence sequence is where the test at that θ₀ reaches 1/α.
    for theta0 in (r.ci_lower, r.ci_upper):
        ratio = stats.norm.pdf(diff - theta0, 0, math.sqrt(v + tau2)) / stats.norm.pdf(
            diff - theta0, 0, math.sqrt(v)
        )
        assert math.isclose(ratio, 1 / r.alpha, rel_tol=1e-9)
    assert r.ci_lower < r.difference < r.ci_upper


def test_default_mixture_is_a_tenth_of_the_arms_std() -> None:
    rng = np.random.default_rng(4)
    c, t = rng.normal(0.0, 1.0, 500), rng.normal(0.0, 2.0, 500)
    r = ab_analysis(c, t)
    expected = 0.01 * (c.var(ddof=1) + t.var(ddof=1)) / 2
    assert math.isclose(r.mixture_variance, expected)
    assert ab_analysis(c, t, mixture_variance=0.5).mixture_variance == 0.5


def test_running_minimum_and_intersection_across_looks() -> None:
    rng = np.random.default_rng(5)
    c, t = rng.binomial(1, 0.1, 2000), rng.binomial(1, 0.1, 2000)
    current = ab_analysis(c, t)
    later = ab_analysis(c, t, previous_p=1e-4, previous_interval=(-0.01, 0.5))
    assert later.p_value == 1e-4
    assert later.ci_lower == max(-0.01, current.ci_lower)
    assert later.ci_upper == min(0.5, current.ci_upper)
    assert later.decision != "no_difference_yet"


def test_too_few_units_give_no_evidence() -> None:
    r = ab_analysis([0, 1] * 40, [1] * 80, previous_p=0.3)
    assert r.control.n < MIN_N
    assert (r.p_value, r.decision) == (0.3, "no_difference_yet")
    assert (r.ci_lower, r.ci_upper) == (-math.inf, math.inf)
    assert math.isnan(r.mixture_variance)
    json.dumps(r.to_dict(), allow_nan=False)
    # No variance at all (nobody converted yet) is no evidence either.
    assert ab_analysis(np.zeros(500), np.zeros(500)).p_value == 1.0


def test_the_unit_is_a_row_unless_said_otherwise() -> None:
    """Arms given as values are per-row units; ``ab_units`` marks its per-key analyses."""
    r = ab_analysis(np.arange(200.0), np.arange(200.0))
    assert (r.unit, r.rows) == ("row", None)
    keyed = json.loads(json.dumps(replace(r, unit="routing_key", rows=(900, 950)).to_dict()))
    assert (keyed["unit"], keyed["rows"], keyed["control"]["n"]) == ("routing_key", [900, 950], 200)


def test_decision_direction() -> None:
    rng = np.random.default_rng(6)
    low, high = rng.normal(1.0, 1.0, 5000), rng.normal(1.2, 1.0, 5000)
    assert ab_analysis(low, high).decision == "treatment_better"
    assert ab_analysis(high, low).decision == "control_better"
    assert ab_analysis(low, high, higher_is_better=False).decision == "control_better"


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidInput, match="alpha"):
        ab_analysis([1.0], [2.0], alpha=1.5)
    with pytest.raises(InvalidInput, match="previous_p"):
        ab_analysis([1.0], [2.0], previous_p=0.0)
    with pytest.raises(InvalidInput, match="mixture_variance"):
        ab_analysis(np.arange(200.0), np.arange(200.0), mixture_variance=-1.0)


# --- mSPRT: behaviour under continuous monitoring (seeded simulations) -------------------

REPS, LOOKS = 200, 50


def _batches(rng: np.random.Generator, rate: float, batch: int) -> list[list[ArmSummary]]:
    """Per-run, per-look summaries of batches of 0/1 outcomes, as the controller aggregates."""
    successes = rng.binomial(batch, rate, (REPS, LOOKS))
    return [[ArmSummary.from_successes(batch, int(s)) for s in run] for run in successes]


def _monitor(control: list[ArmSummary], treatment: list[ArmSummary], truth: float) -> dict:
    """Look after every batch; what a controller sees."""
    c, t = ArmSummary(0), ArmSummary(0)
    p, interval = 1.0, None
    out = {"first": None, "covered": True, "naive": False, "last": None}
    for look, (bc, bt) in enumerate(zip(control, treatment, strict=True)):
        c, t = c.merge(bc), t.merge(bt)
        r = ab_analysis(c, t, previous_p=p, previous_interval=interval)
        p, interval = r.p_value, (r.ci_lower, r.ci_upper)
        if r.decision != "no_difference_yet" and out["first"] is None:
            out["first"] = look
        out["covered"] &= r.ci_lower <= truth <= r.ci_upper
        out["naive"] |= r.fixed_horizon_p_value < 0.05
        out["last"] = r
    return out


def test_a_true_effect_is_found() -> None:
    """Conversion 10% against 12%: every run declares the treatment better within
    50 looks of 400 units per arm, and the confidence sequences cover the true +0.02."""
    rng = np.random.default_rng(10)
    runs = [
        _monitor(c, t, 0.02)
        for c, t in zip(_batches(rng, 0.10, 400), _batches(rng, 0.12, 400), strict=True)
    ]
    assert all(run["last"].decision == "treatment_better" for run in runs)
    assert np.mean([run["covered"] for run in runs]) >= 0.95
    # Detection comes at a sample size comparable to the fixed-horizon design.
    first = np.median([(run["first"] + 1) * 400 for run in runs])
    assert first < 2 * sample_size_proportions(0.10, 0.02)


def test_peeking_at_no_effect_rarely_declares_a_winner() -> None:
    """200 runs of 50 looks at identical arms (10% conversion): the mSPRT declares a winner in
    at most alpha (+ simulation margin) of the runs; peeking at Welch's p-value finds one far
    more often, which is why it is not used for decisions."""
    rng = np.random.default_rng(11)
    runs = [
        _monitor(c, t, 0.0)
        for c, t in zip(_batches(rng, 0.10, 200), _batches(rng, 0.10, 200), strict=True)
    ]
    msprt = np.mean([run["first"] is not None for run in runs])
    naive = np.mean([run["naive"] for run in runs])
    assert msprt <= 0.08
    assert naive >= 0.2
    assert np.mean([run["covered"] for run in runs]) >= 0.95


def test_peeking_at_skewed_revenue_with_no_effect() -> None:
    """The same with real values (log-normal revenue per unit), streamed as merged batches."""
    rng = np.random.default_rng(12)
    batch = 100
    runs = []
    for _ in range(REPS // 2):
        x = rng.lognormal(0.0, 1.5, (2, LOOKS, batch))
        mean = x.mean(axis=2)
        m2 = ((x - mean[..., None]) ** 2).sum(axis=2)
        arms = [
            [ArmSummary(batch, float(mean[a, k]), float(m2[a, k])) for k in range(LOOKS)]
            for a in range(2)
        ]
        runs.append(_monitor(arms[0], arms[1], 0.0))
    assert np.mean([run["first"] is not None for run in runs]) <= 0.08
    assert np.mean([run["covered"] for run in runs]) >= 0.92


# --- sample sizes ---------------------------------------------------------------------------


def test_sample_size_for_means() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert sample_size(0.5, std=2.0) == math.ceil(2 * z**2 * 4 / 0.25) == 252
    assert sample_size(-0.5, std=2.0) == 252
    z = stats.norm.ppf(0.995) + stats.norm.ppf(0.9)
    assert sample_size(1.0, std=3.0, alpha=0.01, power=0.9) == math.ceil(2 * z**2 * 9)


def test_sample_size_for_proportions_worked_example() -> None:
    """10% baseline, +2 points: 3841 per arm, and that many units give 80% power."""
    p1, p2 = 0.10, 0.12
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    pbar = (p1 + p2) / 2
    by_hand = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * 0.9 + p2 * 0.88)) ** 2
    n = sample_size_proportions(p1, 0.02)
    assert n == math.ceil(by_hand / 0.02**2) == 3841

    def power(units: int) -> float:
        se0 = math.sqrt(2 * pbar * (1 - pbar) / units)
        se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / units)
        return stats.norm.cdf((0.02 - za * se0) / se1)

    assert power(n - 1) < 0.8 <= power(n)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_size(0.0, std=1.0), "mde"),
        (lambda: sample_size(0.1, std=0.0), "std"),
        (lambda: sample_size(0.1, std=1.0, power=1.0), "power"),
        (lambda: sample_size_proportions(0.95, 0.1), "rates"),
    ],
)
def test_sample_size_refuses_impossible_designs(call, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        call()


# --- canary guards --------------------------------------------------------------------------


def test_error_rate_z_test_is_agresti_caffo() -> None:
    r = error_rate_guard(120, 10_000, 150, 9_000, margin=0.002)
    p_p, p_c = 121 / 10_002, 151 / 9_002
    se = math.sqrt(p_p * (1 - p_p) / 10_002 + p_c * (1 - p_c) / 9_002)
    z = (p_c - p_p - 0.002) / se
    assert r.method == "z"
    assert math.isclose(r.statistic, z)
    assert math.isclose(r.p_noninferiority, stats.norm.cdf(z))
    assert math.isclose(r.p_harm, stats.norm.sf(z))
    assert math.isclose(r.difference, 150 / 9_000 - 120 / 10_000)


def test_error_rate_small_counts_use_fisher() -> None:
    r = error_rate_guard(1, 1_000, 8, 1_000)
    table = [[8, 992], [1, 999]]
    assert r.method == "fisher"
    assert math.isclose(r.p_harm, stats.fisher_exact(table, alternative="greater").pvalue)
    assert math.isclose(r.p_noninferiority, stats.fisher_exact(table, alternative="less").pvalue)
    assert r.verdict == "worse"
    assert error_rate_guard(0, 50, 0, 50).verdict == "inconclusive"
    with pytest.raises(InvalidInput, match="no margin"):
        error_rate_guard(1, 100, 1, 100, margin=0.01, method="fisher")


@pytest.mark.parametrize(
    ("production", "candidate", "margin", "verdict"),
    [
        ((100, 20_000), (104, 20_000), 0.002, "not_worse"),
        ((100, 20_000), (200, 20_000), 0.002, "worse"),
        ((100, 20_000), (104, 20_000), 0.0, "inconclusive"),
        ((0, 30), (0, 30), 0.01, "inconclusive"),
    ],
)
def test_error_rate_verdicts(production, candidate, margin: float, verdict: str) -> None:
    r = error_rate_guard(*production, *candidate, margin=margin)
    assert r.verdict == verdict
    json.dumps(r.to_dict(), allow_nan=False)


def test_loss_guard_matches_scipy_t_tests() -> None:
    rng = np.random.default_rng(20)
    prod = rng.exponential(1.0, 800)
    cand = prod + rng.normal(0.02, 0.2, 800)
    welch = loss_guard(prod, cand, margin=0.05)
    expected = stats.ttest_ind(cand - 0.05, prod, equal_var=False, alternative="less")
    assert welch.method == "welch_t"
    assert math.isclose(welch.statistic, expected.statistic)
    assert math.isclose(welch.p_noninferiority, expected.pvalue)
    paired = loss_guard(prod, cand, margin=0.05, paired=True)
    expected = stats.ttest_rel(cand - 0.05, prod, alternative="less")
    assert math.isclose(paired.statistic, expected.statistic)
    assert math.isclose(paired.p_noninferiority, expected.pvalue)
    assert math.isclose(paired.p_harm, 1 - expected.pvalue)
    # Pairing removes the rows' own variation: only it shows non-inferiority here.
    assert (welch.verdict, paired.verdict) == ("inconclusive", "not_worse")


def test_loss_guard_accuracy_and_harm() -> None:
    rng = np.random.default_rng(21)
    prod_wrong = rng.binomial(1, 0.10, 5_000)
    cand_wrong = rng.binomial(1, 0.14, 5_000)
    assert loss_guard(prod_wrong, cand_wrong, margin=0.01).verdict == "worse"
    same = loss_guard([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], margin=0.1, paired=True)
    assert (same.statistic, same.verdict) == (-math.inf, "not_worse")
    with pytest.raises(InvalidInput, match="equal lengths"):
        loss_guard([1.0, 2.0], [1.0, 2.0, 3.0], paired=True)


def test_compare_classes() -> None:
    prod = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    cand = prod.copy()
    cand[:20] = "b"
    r = compare_predictions(prod, cand, task="classification")
    assert r.n == 100
    assert r.agreement == 0.8
    shares = scipy_jensenshannon([0.6, 0.3, 0.1], [0.4, 0.5, 0.1], base=2)
    assert math.isclose(r.distance.statistic, shares)
    assert r.distance.method == "jensenshannon"


def test_compare_values() -> None:
    rng = np.random.default_rng(22)
    prod = rng.normal(0.0, 1.0, 1000)
    cand = prod * 1.3 + 0.2
    r = compare_predictions(prod, cand, task="regression")
    assert r.agreement is None
    assert math.isclose(r.distance.statistic, stats.ks_2samp(prod, cand).statistic)
    assert r.distance.drifted
    with pytest.raises(InvalidInput, match="alike"):
        compare_predictions(prod, cand[:10], task="regression")
    with pytest.raises(InvalidInput, match="task"):
        compare_predictions(prod, cand, task="ranking")  # type: ignore[arg-type]
