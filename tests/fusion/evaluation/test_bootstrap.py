"""The vectorised bootstrap engine against sklearn on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fusion.evaluation.bootstrap import group_metrics
from fusion.evaluation.metrics import auroc_with_ci


def test_vectorised_bootstrap_matches_weighted_sklearn(cohort) -> None:
    """Each resample's AUROC and rates equal sklearn's on the same draw counts."""
    y, risk, features = cohort
    risk = np.round(risk, 1)  # many ties: the tie blocks must count half
    codes = features["site"].map({"east": 0, "north": 1, "south": 2}).to_numpy()
    _, draws = group_metrics(y, risk, codes, threshold=0.5, n_resamples=3, random_state=11)
    rng = np.random.default_rng(11)
    order = np.lexsort((risk, codes))
    y_sorted, risk_sorted, codes_sorted = y[order], risk[order], codes[order]
    indices = rng.integers(0, len(y), (3, len(y)))
    for b in range(3):
        weights = np.bincount(indices[b], minlength=len(y))
        for g in range(3):
            member = codes_sorted == g
            w, t, s = weights[member], y_sorted[member], risk_sorted[member]
            assert draws["n"][b, g] == w.sum()
            assert draws["auroc"][b, g] == pytest.approx(roc_auc_score(t, s, sample_weight=w))
            flagged = s >= 0.5
            assert draws["tpr"][b, g] == pytest.approx((w * t * flagged).sum() / (w * t).sum())


def test_auroc_with_ci_is_sklearns_point_and_the_engines_interval() -> None:
    """Headline AUROC: sklearn's point; the CI is the engine's, equal to sklearn per resample."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.normal(y, 1.5), 0) * 3.0  # a logit-like score with many ties
    estimate = auroc_with_ci(y, score, n_resamples=40, random_state=9)
    assert estimate.auroc == roc_auc_score(y, score)
    # The same draws by hand: rows sorted by score, 40 resamples of row counts.
    order = np.lexsort((score, np.zeros(len(y))))
    y_sorted, score_sorted = y[order], score[order]
    draws = np.random.default_rng(9).integers(0, len(y), (40, len(y)))
    by_hand = []
    for indices in draws:
        weights = np.bincount(indices, minlength=len(y))
        if (weights * y_sorted).sum() and (weights * (1 - y_sorted)).sum():
            by_hand.append(roc_auc_score(y_sorted, score_sorted, sample_weight=weights))
    low, high = np.percentile(by_hand, [2.5, 97.5])
    assert (estimate.low, estimate.high) == pytest.approx((low, high))


def test_group_point_auroc_is_sklearns_with_ties() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    risk = np.round(rng.uniform(0, 1, 200), 1)
    codes = rng.integers(0, 3, 200)
    point, _ = group_metrics(y, risk, codes, threshold=0.5)
    for g in range(3):
        member = codes == g
        assert point["auroc"][g] == roc_auc_score(y[member], risk[member])
