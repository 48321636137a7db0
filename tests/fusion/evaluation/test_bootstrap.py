"""The vectorised bootstrap engine against sklearn on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fusion.evaluation.bootstrap import group_metrics


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
