"""Simulated exponential cohorts with a known truth, shared by the forecast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from data.vocabulary import HORIZON_YEARS, TREATMENTS

FAST = {"n_bootstrap": 3, "max_rounds": 60, "min_rounds": 20, "learning_rate": 0.1}
"""Small, quick forecast-model settings for unit tests."""


def exponential_world(
    n: int,
    seed: int,
    *,
    censor: tuple[float, float] = (1.0, 10.0),
    confounded: bool = True,
    effects: tuple[float, float, float] = (-0.7, -1.5, 0.0),
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A cohort with known 5-year risks under each arm (constant hazards, logit-additive).

    ``x1`` is prognostic and (if ``confounded``) drives treatment; ``x2`` (binary) modifies the
    targeted effect: ``standard`` shifts the logit by ``effects[0]``, ``targeted`` by
    ``effects[1]`` when ``x2 == 1`` and by ``effects[2]`` otherwise.

    Returns ``X, time, event, treatment, truth`` with ``truth`` of shape (n, 3).
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = (rng.random(n) < 0.35).astype(np.float64)
    noise = rng.normal(size=n)
    base = -1.0 + 0.9 * x1
    shifts = np.stack(
        [np.zeros(n), np.full(n, effects[0]), np.where(x2 == 1, effects[1], effects[2])], axis=1
    )
    truth = special.expit(base[:, None] + shifts)
    p_treated = special.expit(1.2 * x1) if confounded else np.full(n, 0.6)
    treated = rng.random(n) < p_treated
    targeted = rng.random(n) < np.where(x2 == 1, 0.7, 0.2)
    codes = np.where(treated, np.where(targeted, 2, 1), 0)
    risk = truth[np.arange(n), codes]
    hazard = -np.log1p(-risk) / HORIZON_YEARS
    event_time = rng.exponential(1.0, n) / hazard
    censor_time = rng.uniform(*censor, n)
    X = pd.DataFrame({"x1": x1, "x2": x2, "noise": noise})
    return (
        X,
        np.minimum(event_time, censor_time),
        (event_time <= censor_time).astype(np.int64),
        np.asarray(TREATMENTS)[codes],
        truth,
    )
