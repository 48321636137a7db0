"""Shared data of the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def cohort() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 600
    features = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "site": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    y = rng.integers(0, 2, n)
    risk = np.clip(0.25 * y + rng.uniform(0, 0.75, n), 0, 1)
    return y, risk, features
