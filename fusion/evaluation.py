"""Model evaluation: AUROC with bootstrap confidence intervals and threshold choice.

Owns metric maths on arrays; no SQL, no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["AurocEstimate", "auroc_with_ci", "youden_threshold"]


@dataclass(frozen=True, slots=True)
class AurocEstimate:
    """AUROC with a percentile bootstrap 95% confidence interval."""

    auroc: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON and the model registry."""
        return {"auroc": self.auroc, "low": self.low, "high": self.high, "n": float(self.n)}


def auroc_with_ci(
    y_true: npt.ArrayLike,
    score: npt.ArrayLike,
    *,
    n_resamples: int = 200,
    random_state: int = 0,
) -> AurocEstimate:
    """AUROC and a percentile bootstrap 95% CI (resamples with one class are skipped).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels.
    score : array-like of shape (n_samples,)
        Any score that ranks risk (probability, logit, true risk).
    n_resamples : int, default=200
        Bootstrap resamples.
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    AurocEstimate

    Examples
    --------
    >>> auroc_with_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_resamples=50).auroc
    0.75
    """
    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and score {s.shape} must be 1-D of equal length.")
    if len(np.unique(y)) < 2:
        raise ValueError("AUROC needs both classes in y_true; this subset has only one.")
    point = float(roc_auc_score(y, s))
    rng = np.random.default_rng(random_state)
    stats = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            stats.append(roc_auc_score(y[idx], s[idx]))
    low, high = np.percentile(stats, [2.5, 97.5]) if stats else (np.nan, np.nan)
    return AurocEstimate(point, float(low), float(high), len(y))


def youden_threshold(y_true: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Risk threshold maximising sensitivity + specificity - 1 (chosen on validation data)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(y_true), np.asarray(risk, dtype=np.float64))
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))
