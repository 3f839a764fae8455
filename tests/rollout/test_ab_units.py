"""A/B analysis per routing key: the delta-method statistic, the per-key accumulator, the
incremental reader of the logbook, and the error rate under peeking with correlated outcomes."""

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.logbook.entries import FeedbackItem, PredictionBatch
from watchkeeper.registry.deployments import Deployment
from watchkeeper.rollout.ab_units import OVERLAP, ABLooks, KeyedSums, keyed_summary, unit_keys
from watchkeeper.rollout.stats import ArmSummary, ab_analysis

# --- the statistic ----------------------------------------------------------------------------


def test_keys_of_equal_size_give_the_t_test_of_their_means() -> None:
    """With m outcomes in every key, R is the mean of the key means and its variance is the
    squared standard error of the key means (scipy), so the analysis is Welch's test on them."""
    rng = np.random.default_rng(0)
    m = 5
    y_c, y_t = rng.binomial(m, rng.beta(1, 9, 300)), rng.binomial(m, rng.beta(1, 8, 250))
    c, t = keyed_summary(np.full(300, m), y_c), keyed_summary(np.full(250, m), y_t)
    assert (c.n, t.n) == (300, 250)
    assert math.isclose(c.mean, np.mean(y_c / m))
    assert math.isclose(c.variance / c.n, stats.sem(y_c / m) ** 2)
    welch = stats.ttest_ind(y_t / m, y_c / m, equal_var=False)
    assert math.isclose(ab_analysis(c, t).fixed_horizon_p_value, welch.pvalue, rel_tol=1e-9)


def test_unequal_keys_give_the_cluster_robust_variance_of_the_mean() -> None:
    """Against the sandwich estimator of an intercept-only regression with clusters = keys,
    computed from the rows: (X'X)⁻¹ Σ_g (X_g' e_g)² (X'X)⁻¹ · G / (G - 1)."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 30, 200)
    key = np.repeat(np.arange(200), sizes)
    y = rng.normal(rng.normal(0, 1, 200)[key], 1.0)
    e = y - y.mean()
    per_key = np.bincount(key, weights=e)
    g = sizes.size
    sandwich = np.sum(per_key**2) / y.size**2 * g / (g - 1)
    s = keyed_summary(sizes, np.bincount(key, weights=y))
    assert math.isclose(s.mean, y.mean())
    assert math.isclose(s.variance / s.n, sandwich, rel_tol=1e-10)


def test_one_row_per_key_is_the_per_row_analysis() -> None:
    y = np.random.default_rng(2).lognormal(0, 1, 150)
    per_row, per_key = ArmSummary.from_values(y), keyed_summary(np.ones(150), y)
    assert per_key.n == per_row.n
    assert math.isclose(per_key.mean, per_row.mean)
    assert math.isclose(per_key.m2, per_row.m2)


def test_keys_without_outcomes_are_left_out_and_bad_input_refused() -> None:
    assert keyed_summary([0, 2, 2], [0.0, 1.0, 2.0]) == keyed_summary([2, 2], [1.0, 2.0])
    assert keyed_summary([], []) == ArmSummary(0)
    with pytest.raises(InvalidInput, match="counts and sums"):
        keyed_summary([1, -1], [0.0, 0.0])
    with pytest.raises(InvalidInput, match="counts and sums"):
        keyed_summary([1, 2], [0.0])
    with pytest.raises(InvalidInput, match="one finite value per key"):
        KeyedSums().update(["a"], [math.nan])


# --- the accumulator --------------------------------------------------------------------------


def test_merging_accumulators_equals_one_fed_both_streams() -> None:
    """A key that appears in both parts is one unit, not two."""
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 40, 600).astype(str)
    values = rng.normal(size=600)
    whole = KeyedSums().update(keys, values)
    part = KeyedSums().update(keys[:250], values[:250])
    part += KeyedSums().update(keys[250:], values[250:])
    assert (part.keys, part.rows) == (whole.keys, whole.rows) == (40, 600)
    a, b = part.summary(), whole.summary()
    assert a.n == b.n
    assert math.isclose(a.mean, b.mean)
    assert math.isclose(a.m2, b.m2)
    direct = keyed_summary(np.bincount(keys.astype(int)), np.bincount(keys.astype(int), values))
    assert math.isclose(b.m2, direct.m2)


def test_a_request_without_a_key_is_a_unit_of_its_own() -> None:
    units = unit_keys(np.array(["u1", None, "u1", None], dtype=object), ["a", "b", "c", "d"])
    assert units.to_pylist() == ["k:u1", "r:b", "k:u1", "r:d"]
    # a key can never be mistaken for a request id
    assert unit_keys(np.array(["r:x", None], dtype=object), ["q", "x"]).to_pylist() == [
        "k:r:x",
        "r:x",
    ]


# --- error rate under peeking, with outcomes correlated within a key (seeded) -------------

REPS, LOOKS, NEW_KEYS, RATE = 200, 30, 10, 2.0
ALPHA, SLACK = 0.05, 0.03  # three standard errors of a rate of 0.05 over 200 runs


def _arm(rng: np.random.Generator, mean: float, icc: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative outcomes per key and look: ``NEW_KEYS`` keys arrive every look; each has its
    own conversion rate (beta, intra-key correlation ``icc``) and comes back Poisson(``RATE``)
    times a look."""
    a, b = mean * (1 / icc - 1), (1 - mean) * (1 / icc - 1)
    keys = NEW_KEYS * LOOKS
    arrived = np.repeat(np.arange(LOOKS), NEW_KEYS)[:, None] <= np.arange(LOOKS)[None, :]
    n = rng.poisson(RATE, (keys, LOOKS)) * arrived
    y = rng.binomial(n, rng.beta(a, b, keys)[:, None])
    return n, y


def _peek(rng: np.random.Generator, means: tuple[float, float], icc: float) -> dict[str, float]:
    """Share of runs in which a look after every batch declared a winner (always-valid p-value
    at most alpha), analysing rows as units (the bug) and keys as units (the fix)."""
    found = {"row": 0, "key": 0}
    for _ in range(REPS):
        (n_c, y_c), (n_t, y_t) = _arm(rng, means[0], icc), _arm(rng, means[1], icc)
        n_c, y_c, n_t, y_t = (np.cumsum(a, axis=1) for a in (n_c, y_c, n_t, y_t))
        p = {"row": 1.0, "key": 1.0}
        for look in range(LOOKS):
            rows = [ArmSummary.from_successes(int(n[:, look].sum()), int(y[:, look].sum()))
                    for n, y in ((n_c, y_c), (n_t, y_t))]  # fmt: skip
            keys = [keyed_summary(n[:, look], y[:, look]) for n, y in ((n_c, y_c), (n_t, y_t))]
            p["row"] = ab_analysis(*rows, alpha=ALPHA, previous_p=p["row"]).p_value
            p["key"] = ab_analysis(*keys, alpha=ALPHA, previous_p=p["key"]).p_value
        for unit in found:
            found[unit] += p[unit] <= ALPHA
    return {unit: count / REPS for unit, count in found.items()}


def test_the_accumulator_fed_batch_by_batch_gives_the_simulated_summaries() -> None:
    """What the simulations below analyse is what :class:`KeyedSums` accumulates look by look."""
    n, y = _arm(np.random.default_rng(19), 0.10, 0.2)
    arm = KeyedSums()
    for look in range(LOOKS):
        rows = n[:, look]
        keys = np.repeat(np.arange(rows.size), rows).astype(str)
        values = np.concatenate([np.r_[np.ones(k), np.zeros(r - k)]
                                 for r, k in zip(rows, y[:, look], strict=True)])  # fmt: skip
        arm.update(keys, values)
        expected = keyed_summary(n[:, : look + 1].sum(axis=1), y[:, : look + 1].sum(axis=1))
        got = arm.summary()
        assert got.n == expected.n
        assert math.isclose(got.mean, expected.mean)
        assert math.isclose(got.m2, expected.m2, rel_tol=1e-9)


def test_peeking_with_rows_as_units_finds_false_winners_keys_as_units_do_not() -> None:
    """Regression test for "A/B analysis uses the wrong unit": identical arms (10% conversion
    on average, intra-key correlation 0.2, about 30 rows a key by the end), looked at after
    every batch. Rows as units: the variance is understated by the design effect and the
    always-valid test declares a winner in far more than alpha of the runs. Keys as units:
    at most alpha (+ Monte-Carlo slack)."""
    rates = _peek(np.random.default_rng(20), (0.10, 0.10), icc=0.2)
    assert rates["row"] > 0.25  # measured 0.51
    assert rates["key"] <= ALPHA + SLACK  # measured 0.0


def test_keys_as_units_still_find_a_true_effect() -> None:
    """The same arms, the candidate converting 18% on average: the per-key analysis finds it
    in most runs within the 30 looks."""
    rates = _peek(np.random.default_rng(21), (0.10, 0.18), icc=0.2)
    assert rates["key"] >= 0.8


# --- incremental looks at a real logbook ------------------------------------------------------

Logged = dict[int, list[Any]]
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _deployment(started_at: datetime = START, candidate: int = 2) -> Deployment:
    return Deployment(
        model="m", revision=1, mode="ab", state="running", candidate=candidate, baseline=1,
        share=0.5, step=0, config={}, reason="", standby=None, standby_until=None,
        started_at=started_at, step_started_at=started_at, updated_at=started_at,
        updated_by="test",
    )  # fmt: skip


def _predict(book: Logbook, request: str, version: int, key: str | None, at: datetime,
             rows: int = 1) -> None:  # fmt: skip
    book.log_predictions(PredictionBatch(
        request_id=request, model="m", version=version, role="primary", timestamp=at,
        features=np.zeros((rows, 1)), feature_names=["a"], predictions=np.zeros(rows),
        probabilities=None, classes=None, latency_s=0.001, routing_key=key,
    ))  # fmt: skip


def _convert(book: Logbook, request: str, value: float, row: int = 0) -> None:
    book.log_feedback([FeedbackItem(request_id=request, row=row, outcome={"conversion": value})])


class Spy(Logbook):
    """A logbook that remembers the windows it was asked to read."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.windows: list[tuple[str, datetime | None]] = []

    def read(self, model, start, end, **kwargs):
        self.windows.append(("predictions", start))
        return super().read(model, start, end, **kwargs)

    def read_feedback(self, start=None, end=None):
        self.windows.append(("feedback", start))
        return super().read_feedback(start, end)


def _traffic(book: Logbook, rng: np.random.Generator, users: range, at: datetime) -> Logged:
    """Each user makes 1–4 requests to its sticky arm and converts on some; returns the
    per-arm (keys, rows, conversions) logged."""
    logged: Logged = {1: [set(), 0, 0.0], 2: [set(), 0, 0.0]}
    for user in users:
        version = 1 + user % 2
        for visit in range(int(rng.integers(1, 5))):
            request = f"u{user}-{visit}-{at.timestamp()}"
            _predict(book, request, version, f"user-{user}", at)
            value = float(rng.random() < 0.2 + 0.1 * (version == 2))
            _convert(book, request, value)
            logged[version][0].add(user)
            logged[version][1] += 1
            logged[version][2] += value
    book.flush()
    return logged


def test_each_look_reads_only_what_is_new_and_agrees_with_a_fresh_recomputation(
    tmp_path: Path,
) -> None:
    book = Spy(str(tmp_path / "logbook"))
    rng = np.random.default_rng(30)
    looks = ABLooks(book)
    first = _traffic(book, rng, range(300), START + timedelta(minutes=5))
    now = datetime.now(UTC) + timedelta(seconds=1)
    a = looks.look(_deployment(), "conversion", now=now)
    assert a is not None
    assert a.unit == "routing_key"
    assert (a.control.n, a.treatment.n) == (len(first[1][0]), len(first[2][0])) == (150, 150)
    assert a.rows == (first[1][1], first[2][1])
    assert a.control.mean == pytest.approx(first[1][2] / first[1][1])
    # The second look reads from the first look's time (less the overlap), not the start.
    book.windows.clear()
    second = _traffic(book, rng, range(200, 500), datetime.now(UTC))  # 100 users come back
    later = datetime.now(UTC) + timedelta(seconds=1)
    b = looks.look(_deployment(), "conversion", now=later)
    assert {start for _, start in book.windows} == {now - OVERLAP}
    assert b is not None
    assert (b.control.n, b.treatment.n) == (250, 250)  # a returning user is still one unit
    assert b.rows == (first[1][1] + second[1][1], first[2][1] + second[2][1])
    # A new process (a scheduler failover) recomputes the same from the logbook at once.
    fresh = ABLooks(Logbook(str(tmp_path / "logbook"))).look(_deployment(), "conversion", now=later)
    assert fresh is not None
    for arm in ("control", "treatment"):  # the sums run in another order: equal to rounding
        ours, theirs = getattr(b, arm), getattr(fresh, arm)
        assert ours.n == theirs.n
        assert ours.mean == pytest.approx(theirs.mean, rel=1e-12)
        assert ours.m2 == pytest.approx(theirs.m2, rel=1e-9)
    assert fresh.rows == b.rows
    # The running minimum is all that is forgotten (to rounding, when this look set it).
    assert fresh.p_value >= b.p_value * (1 - 1e-9)
    assert b.p_value <= a.p_value


def test_late_outcomes_count_once_and_unkeyed_requests_are_units_of_their_own(
    tmp_path: Path,
) -> None:
    book = Logbook(str(tmp_path / "logbook"))
    looks = ABLooks(book)
    at = START + timedelta(minutes=1)
    for i in range(4):
        _predict(book, f"c{i}", 1, None, at)  # no key: four units
        _predict(book, f"t{i}", 2, "same-user", at, rows=2)  # one key, two rows a request
    _predict(book, "before", 1, None, START - timedelta(minutes=1))  # not in the deployment
    _predict(book, "other", 3, None, at)  # neither arm
    for i in range(4):
        _convert(book, f"c{i}", float(i % 2))
        _convert(book, f"t{i}", 1.0, row=0)
    for request in ("before", "other"):
        _convert(book, request, 1.0)
    book.flush()
    a = looks.look(_deployment(), "conversion", now=datetime.now(UTC) + timedelta(seconds=1))
    assert a is None  # the candidate has one key so far: nothing to analyse
    # Two more users on the candidate; the rows still waiting get their outcome late, once
    # twice over (a duplicate); the first outcome of a row stays.
    for user in ("u1", "u2"):
        _predict(book, f"t-{user}", 2, user, datetime.now(UTC))
        _convert(book, f"t-{user}", 0.0)
    for i in range(4):
        _convert(book, f"t{i}", 0.0, row=1)
        _convert(book, f"t{i}", 1.0, row=0)  # a correction of a counted row: ignored
    book.flush()
    b = looks.look(_deployment(), "conversion", now=datetime.now(UTC) + timedelta(seconds=1))
    assert b is not None
    assert (b.control.n, b.rows) == (4, (4, 10))
    assert b.control.mean == 0.5
    assert b.treatment.n == 3
    assert b.treatment.mean == pytest.approx(4 / 10)
    expected = keyed_summary([8, 1, 1], [4.0, 0.0, 0.0])
    assert b.treatment == expected


def test_concurrent_looks_count_each_row_once(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path / "logbook"))
    logged = _traffic(book, np.random.default_rng(32), range(200), START + timedelta(minutes=5))
    looks, now = ABLooks(book), datetime.now(UTC) + timedelta(seconds=1)
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: looks.look(_deployment(), "conversion", now=now), range(4)))
    assert {r.rows for r in found if r is not None} == {(logged[1][1], logged[2][1])}


def test_a_new_deployment_starts_from_nothing(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path / "logbook"))
    rng = np.random.default_rng(31)
    _traffic(book, rng, range(20), START + timedelta(minutes=5))
    looks = ABLooks(book)
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert looks.look(_deployment(), "conversion", now=now) is not None
    assert looks.look(_deployment(candidate=3), "conversion", now=now) is None
    later = _deployment(started_at=START + timedelta(minutes=10))
    assert looks.look(later, "conversion", now=now) is None
