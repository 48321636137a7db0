"""Bootstrap risk interval: members differ, interval brackets them, SHA-checked files, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.errors import ArtifactIntegrityError
from fusion.model import FusionClassifier
from fusion.uncertainty import (
    fit_bootstrap_ensemble,
    interval_coverage,
    load_ensemble,
    member_risks,
    risk_intervals,
    save_ensemble,
)


@pytest.fixture(scope="module")
def fitted() -> tuple[FusionClassifier, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-2 * X["a"]))).astype(int).to_numpy()
    model = FusionClassifier(n_estimators=40, random_state=0).fit(X, y)
    return model, X, y


def test_members_differ_and_the_interval_brackets_their_median(fitted) -> None:
    model, X, y = fitted
    members = fit_bootstrap_ensemble(model, X, y, n_models=5, random_state=1)
    assert len(members) == 5
    assert all(m.best_iteration_ <= model.best_iteration_ for m in members)
    risks = member_risks(members, X.iloc[:20])
    assert risks.shape == (20, 5)
    assert np.ptp(risks, axis=1).max() > 0  # resampling changes the model
    low, high = risk_intervals(members, X.iloc[:20], level=0.9)
    median = np.median(risks, axis=1)
    assert np.all(low <= median)
    assert np.all(median <= high)
    assert np.all(low >= risks.min(axis=1))
    assert np.all(high <= risks.max(axis=1))
    wide_low, wide_high = risk_intervals(members, X.iloc[:20], level=0.99)
    assert np.all(wide_low <= low)
    assert np.all(wide_high >= high)


def test_ensemble_round_trips_and_refuses_a_modified_member(fitted, tmp_path) -> None:
    model, X, y = fitted
    members = fit_bootstrap_ensemble(model, X, y, n_models=2, random_state=0)
    sha = save_ensemble(members, tmp_path / "interval")
    loaded = load_ensemble(tmp_path / "interval", expected_sha256=sha)
    np.testing.assert_allclose(member_risks(loaded, X), member_risks(members, X))
    member = tmp_path / "interval" / "member_00.txt"
    member.write_text(member.read_text()[:-50])
    with pytest.raises(ArtifactIntegrityError, match="SHA-256"):
        load_ensemble(tmp_path / "interval", expected_sha256=sha)


def test_arguments_are_validated(fitted) -> None:
    model, X, y = fitted
    with pytest.raises(ValueError, match="at least 2"):
        fit_bootstrap_ensemble(model, X, y, n_models=1)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        risk_intervals([model], X, level=1.0)


def test_coverage_counts_the_truth_inside_closed_intervals() -> None:
    assert interval_coverage([0.1, 0.2, 0.3], [0.2, 0.4, 0.5], [0.2, 0.5, 0.3]) == pytest.approx(
        2 / 3
    )
    with pytest.raises(ValueError, match="Shapes differ"):
        interval_coverage([0.1], [0.2, 0.3], [0.1])
