"""A customer-churn world with realistic structure, that drifts when told to.

Features: tenure (months, skewed), monthly charges (bimodal by plan), support calls (counts),
contract (month-to-month / one-year / two-year) and a satisfaction score. Churn follows a
logistic law of them. ``data_drift`` moves the charges up and makes support calls more frequent
(inputs change); ``concept_drift`` changes how the inputs relate to churn (a competitor courts
long-tenured customers on long contracts, while customers who call support now stay) — the
inputs alone would not show it; only the labels, arriving late, do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = ["tenure", "monthly_charges", "support_calls", "contract", "satisfaction"]
CONTRACTS = ("month-to-month", "one-year", "two-year")


def customers(n: int, rng: np.random.Generator, *, data_drift: bool = False) -> pd.DataFrame:
    contract = rng.choice(CONTRACTS, size=n, p=(0.55, 0.25, 0.20))
    tenure = np.clip(rng.gamma(2.0, 14.0, size=n), 0, 72).round()
    premium = rng.random(n) < 0.4
    charges = np.where(premium, rng.normal(95, 12, n), rng.normal(45, 10, n))
    calls = rng.poisson(1.2, size=n).astype(float)
    satisfaction = np.clip(rng.normal(7.0, 1.5, n), 0, 10).round(1)
    if data_drift:
        charges = charges * 1.25 + 8
        calls = rng.poisson(3.0, size=n).astype(float)
    return pd.DataFrame({"tenure": tenure, "monthly_charges": charges.round(2),
                         "support_calls": calls, "contract": contract,
                         "satisfaction": satisfaction})  # fmt: skip


def churn(
    frame: pd.DataFrame, rng: np.random.Generator, *, concept_drift: bool = False
) -> np.ndarray:
    contract = frame["contract"].map({"month-to-month": 1.2, "one-year": 0.0, "two-year": -1.0})
    logit = (-0.04 * frame["tenure"] + 0.03 * (frame["monthly_charges"] - 60)
             + 0.45 * frame["support_calls"] - 0.55 * (frame["satisfaction"] - 7)
             + contract.to_numpy() - 0.6)  # fmt: skip
    if concept_drift:  # a competitor courts loyal, long-contract customers; callers now stay
        logit = (0.06 * frame["tenure"] - 0.45 * frame["support_calls"]
                 + 0.03 * (frame["monthly_charges"] - 60) - 0.55 * (frame["satisfaction"] - 7)
                 - contract.to_numpy() - 1.0)  # fmt: skip
    probability = 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))
    return np.asarray(rng.random(len(frame)) < probability, dtype=np.int64)
