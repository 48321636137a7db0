"""AUROC with bootstrap CI and the Youden threshold."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fusion.evaluation.metrics import AurocEstimate, auroc_with_ci, youden_threshold


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    return y, y * 0.8 + rng.normal(size=200)


def test_point_estimate_equals_sklearn(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scores
    estimate = auroc_with_ci(y, s, n_resamples=30)
    assert isinstance(estimate, AurocEstimate)
    assert estimate.auroc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert estimate.low <= estimate.auroc <= estimate.high
    assert 0.5 < estimate.low < estimate.high < 1.0
    assert estimate.n == 200
    assert estimate.as_dict() == {
        "auroc": estimate.auroc,
        "low": estimate.low,
        "high": estimate.high,
        "n": 200.0,
    }


def test_bootstrap_is_deterministic_by_seed(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scores
    first = auroc_with_ci(y, s, n_resamples=30, random_state=5)
    assert auroc_with_ci(y, s, n_resamples=30, random_state=5) == first
    other = auroc_with_ci(y, s, n_resamples=30, random_state=6)
    assert other.auroc == first.auroc
    assert (other.low, other.high) != (first.low, first.high)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_raises(label: int) -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc_with_ci([label] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"must be 1-D of equal length"):
        auroc_with_ci([0, 1, 1], [0.1, 0.2])


def test_perfect_ranking_has_a_degenerate_interval() -> None:
    estimate = auroc_with_ci([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], n_resamples=20)
    assert (estimate.auroc, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


def test_youden_threshold_separates_a_separable_set() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    risk = np.array([0.1, 0.2, 0.35, 0.6, 0.8, 0.9])
    threshold = youden_threshold(y, risk)
    assert 0.0 <= threshold <= 1.0
    np.testing.assert_array_equal(risk >= threshold, y.astype(bool))


def test_youden_threshold_is_a_probability(scores: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = scores
    risk = 1 / (1 + np.exp(-s))
    threshold = youden_threshold(y, risk)
    assert 0.0 <= threshold <= 1.0
    predicted = risk >= threshold
    sensitivity = predicted[y == 1].mean()
    specificity = (~predicted[y == 0]).mean()
    assert sensitivity + specificity - 1 > 0.2
