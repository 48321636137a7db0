"""Model evaluation: AUROC with bootstrap CIs, threshold choice, curves, calibration, ablation.

Owns metric maths on arrays; no SQL, no streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from fusion.evaluation.bootstrap import group_metrics, percentile_bounds

__all__ = [
    "AurocEstimate",
    "ablation_table",
    "auroc_with_ci",
    "calibration_bins",
    "confusion_at",
    "expected_calibration_error",
    "pr_points",
    "roc_points",
    "youden_threshold",
]


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
    """AUROC (sklearn's) and a percentile bootstrap 95% CI from the vectorised engine.

    The interval comes from :func:`fusion.evaluation.bootstrap.group_metrics` with one group:
    resamples with one class give NaN and are left out of the percentiles.

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
    if not np.isfinite(s).all():
        raise ValueError("score must be finite; drop or impute the rows without a score.")
    point = float(roc_auc_score(y, s))
    # The engine takes probabilities; AUROC depends on the order only, so dense ranks in
    # (0, 1] stand in for any score, ties kept.
    ranks = rankdata(s, method="dense")
    _, draws = group_metrics(
        y,
        ranks / ranks.max(),
        np.zeros(len(y), dtype=np.intp),
        threshold=0.5,
        n_groups=1,
        n_resamples=n_resamples,
        random_state=random_state,
    )
    low, high = percentile_bounds(draws["auroc"])
    return AurocEstimate(point, float(low[0]), float(high[0]), len(y))


def youden_threshold(y_true: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Risk threshold maximising sensitivity + specificity - 1 (chosen on validation data)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(y_true), np.asarray(risk, dtype=np.float64))
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))


def _checked(
    y_true: npt.ArrayLike, risk: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(y_true).astype(np.int64)
    r = np.asarray(risk, dtype=np.float64)
    if y.shape != r.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and risk {r.shape} must be 1-D of equal length.")
    return y, r


def roc_points(y_true: npt.ArrayLike, risk: npt.ArrayLike) -> pd.DataFrame:
    """ROC curve points: ``fpr, tpr, threshold`` (sklearn's, thresholds clipped to [0, 1])."""
    y, r = _checked(y_true, risk)
    fpr, tpr, thresholds = roc_curve(y, r)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.clip(thresholds, 0.0, 1.0)})


def pr_points(y_true: npt.ArrayLike, risk: npt.ArrayLike) -> pd.DataFrame:
    """Precision-recall curve points: ``recall, precision, threshold`` (last point: recall 0)."""
    y, r = _checked(y_true, risk)
    precision, recall, thresholds = precision_recall_curve(y, r)
    return pd.DataFrame(
        {"recall": recall, "precision": precision, "threshold": np.r_[thresholds, np.nan]}
    )


def calibration_bins(
    y_true: npt.ArrayLike, risk: npt.ArrayLike, *, n_bins: int = 10
) -> pd.DataFrame:
    """Reliability diagram data over equal-width risk bins; empty bins are left out.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    n_bins : int, default=10
        Equal-width bins over [0, 1] (the last one includes 1).

    Returns
    -------
    DataFrame
        ``low, high, n, mean_risk, observed`` per non-empty bin.

    Examples
    --------
    >>> calibration_bins([0, 1, 1, 1], [0.1, 0.2, 0.9, 0.95], n_bins=2)[["n", "observed"]]
       n  observed
    0  2       0.5
    1  2       1.0
    """
    y, r = _checked(y_true, risk)
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}; pass 1 or more.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(r, edges[1:-1], right=False), 0, n_bins - 1)
    n = np.bincount(index, minlength=n_bins)
    mean_risk = np.bincount(index, weights=r, minlength=n_bins)
    observed = np.bincount(index, weights=y, minlength=n_bins)
    keep = n > 0
    return pd.DataFrame(
        {
            "low": edges[:-1][keep],
            "high": edges[1:][keep],
            "n": n[keep],
            "mean_risk": mean_risk[keep] / n[keep],
            "observed": observed[keep] / n[keep],
        }
    )


def expected_calibration_error(
    y_true: npt.ArrayLike, risk: npt.ArrayLike, *, n_bins: int = 10
) -> float:
    """Expected calibration error: ``sum_b n_b / n * |observed_b - mean_risk_b|``.

    Examples
    --------
    >>> round(expected_calibration_error([0, 1, 1, 1], [0.1, 0.2, 0.9, 0.95], n_bins=2), 4)
    0.2125
    """
    bins = calibration_bins(y_true, risk, n_bins=n_bins)
    weights = bins["n"] / bins["n"].sum()
    return float((weights * (bins["observed"] - bins["mean_risk"]).abs()).sum())


def confusion_at(y_true: npt.ArrayLike, risk: npt.ArrayLike, threshold: float) -> pd.DataFrame:
    """Confusion matrix at ``risk >= threshold``: rows actual, columns predicted.

    Examples
    --------
    >>> confusion_at([0, 1, 1, 0], [0.2, 0.8, 0.4, 0.6], 0.5).to_numpy().tolist()
    [[1, 1], [1, 1]]
    """
    y, r = _checked(y_true, risk)
    flagged = (r >= threshold).astype(np.int64)
    counts = np.bincount(2 * y + flagged, minlength=4).reshape(2, 2)
    return pd.DataFrame(
        counts,
        index=pd.Index(["no event", "event"], name="actual"),
        columns=pd.Index(["below threshold", "at/above threshold"], name="predicted"),
    )


def ablation_table(
    y_true: npt.ArrayLike,
    risks: Mapping[str, npt.ArrayLike],
    *,
    threshold: float = 0.5,
    n_resamples: int = 200,
    random_state: int = 0,
) -> pd.DataFrame:
    """AUROC, Brier score, TPR and FPR of several models on the same patients, with 95% CIs.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risks : mapping of str to array-like of shape (n_samples,)
        Risk of each model (e.g. ``imaging``, ``ehr``, ``fusion``, ``oracle``), same rows.
    threshold : float, default=0.5
        Flags ``risk >= threshold`` for TPR and FPR.
    n_resamples : int, default=200
        Percentile bootstrap resamples (the same draws for every model, so rows compare).
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    DataFrame
        Index: model name, in ``risks`` order. Columns ``auroc, auroc_low, auroc_high``, and
        the same for ``brier``, ``tpr`` and ``fpr``.
    """
    y = np.asarray(y_true)
    rows = {}
    for name, risk in risks.items():
        point, draws = group_metrics(
            y,
            risk,
            np.zeros(len(y), dtype=np.intp),
            threshold=threshold,
            n_groups=1,
            n_resamples=n_resamples,
            random_state=random_state,
        )
        row: dict[str, float] = {}
        for metric in ("auroc", "brier", "tpr", "fpr"):
            low, high = percentile_bounds(draws[metric])
            row.update(
                {
                    metric: float(point[metric][0]),
                    f"{metric}_low": float(low[0]),
                    f"{metric}_high": float(high[0]),
                }
            )
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
