"""Compact sufficient statistics of a split's risks: events and non-events per fine risk bin.

Owns :class:`RiskHistograms` (per model, the events and non-events of every risk bin of width
0.001) and :func:`performance_at`, the performance view at another threshold computed from them
and a stored report at the default threshold, without the split's rows. Counts at a threshold
on the 0.001 grid (every slider step, every researcher cut point) are exact: a patient is
flagged at ``t = k / 1000`` exactly when its bin is ``k`` or higher. What does not depend on
the threshold (AUROC, Brier, calibration, their intervals) comes from the stored report; TPR
and FPR intervals are a percentile bootstrap of the four confusion cells (multinomial draws,
the same distribution as resampling patients); curves are drawn through the bin edges (a risk
is represented by its bin's lower edge), coarse as before. No SQL, no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.bootstrap import percentile_bounds
from fusion.evaluation.curves import coarse_pr, coarse_roc
from fusion.evaluation.performance import ABLATION_LABELS, PerformanceReport, available_risks
from fusion.evaluation.suppression import rate_masks, suppress_confusion

__all__ = ["BINS_PER_UNIT", "RISK_EDGES", "RiskHistograms", "performance_at"]


BINS_PER_UNIT = 1000
"""Risk bins per unit of risk: thresholds on this grid are exact."""

RISK_EDGES: npt.NDArray[np.float64] = np.arange(BINS_PER_UNIT + 1) / BINS_PER_UNIT
"""Lower edges of the bins; the last bin holds risk 1.0 exactly."""


@dataclass(frozen=True, slots=True)
class RiskHistograms:
    """Events and non-events per risk bin of every model of a split.

    Attributes
    ----------
    events, non_events : dict of str to list of int
        Per risk column of the split frame (``risk``, ``risk_imaging``, ...), counts per bin
        of :data:`RISK_EDGES` (``k``: ``RISK_EDGES[k] <= risk < RISK_EDGES[k + 1]``).
    """

    events: dict[str, list[int]]
    non_events: dict[str, list[int]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> RiskHistograms:
        """The histograms of every complete risk column of a split frame (``label`` 0/1)."""
        y = frame["label"].to_numpy(dtype=np.int64)
        events: dict[str, list[int]] = {}
        non_events: dict[str, list[int]] = {}
        labels = {label: column for column, label in ABLATION_LABELS.items()}
        for label, risk in available_risks(frame).items():
            bins = np.searchsorted(RISK_EDGES, risk, side="right") - 1
            counts = np.bincount(2 * bins + y, minlength=2 * len(RISK_EDGES))
            events[labels[label]] = counts[1::2].tolist()
            non_events[labels[label]] = counts[0::2].tolist()
        return cls(events=events, non_events=non_events)

    @staticmethod
    def exact_at(threshold: float) -> bool:
        """Whether counts at ``threshold`` are exact (it is a bin edge)."""
        return bool(np.isin(float(threshold), RISK_EDGES))

    def cells(self, column: str, threshold: float) -> npt.NDArray[np.int64]:
        """``[[TN, FP], [FN, TP]]`` of model ``column`` at a grid ``threshold``."""
        first = int(np.searchsorted(RISK_EDGES, threshold, side="left"))
        events = np.asarray(self.events[column], dtype=np.int64)
        non_events = np.asarray(self.non_events[column], dtype=np.int64)
        return np.array(
            [
                [non_events[:first].sum(), non_events[first:].sum()],
                [events[:first].sum(), events[first:].sum()],
            ]
        )

    def rows(self, column: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Outcomes and bin-edge risks, one per patient (for the curve builders)."""
        events = np.asarray(self.events[column], dtype=np.int64)
        non_events = np.asarray(self.non_events[column], dtype=np.int64)
        risk = np.concatenate([np.repeat(RISK_EDGES, events), np.repeat(RISK_EDGES, non_events)])
        y = np.concatenate(
            [np.ones(events.sum(), dtype=np.int64), np.zeros(non_events.sum(), dtype=np.int64)]
        )
        return y, risk


def _rate_bounds(
    cells: npt.NDArray[np.int64], n_resamples: int, random_state: int
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap bounds of TPR and FPR from multinomial draws of the four cells."""
    n = int(cells.sum())
    draws = np.random.default_rng(random_state).multinomial(n, cells.ravel() / n, size=n_resamples)
    tn, fp, fn, tp = (draws[:, k].astype(np.float64) for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = np.stack([tp / (tp + fn), fp / (fp + tn)], axis=1)
    samples[~np.isfinite(samples)] = np.nan
    low, high = percentile_bounds(samples)
    return {"tpr": (float(low[0]), float(high[0])), "fpr": (float(low[1]), float(high[1]))}


def performance_at(
    report: PerformanceReport,
    histograms: RiskHistograms,
    threshold: float,
    *,
    n_resamples: int = 200,
    random_state: int = 0,
) -> PerformanceReport:
    """``report`` (computed at another threshold) moved to ``threshold``, from ``histograms``.

    Parameters
    ----------
    report : PerformanceReport
        The split's report at any threshold, with the suppression floor to keep.
    histograms : RiskHistograms
        The same split's histograms.
    threshold : float
        A threshold on the 0.001 grid (:meth:`RiskHistograms.exact_at`).
    n_resamples, random_state : int
        Bootstrap of the TPR and FPR intervals.

    Returns
    -------
    PerformanceReport
        Confusion matrix, TPR and FPR (with intervals and suppression) and the coarse curves
        at ``threshold``; everything else from ``report``.

    Raises
    ------
    ValueError
        If ``threshold`` is not on the grid (use the split's rows instead).
    """
    if not histograms.exact_at(threshold):
        raise ValueError(
            f"Threshold {threshold!r} is not a multiple of 1/{BINS_PER_UNIT}; the histograms "
            "give exact counts on that grid only. Compute from the split's rows instead."
        )
    min_cell = report.min_cell
    labels = {column: ABLATION_LABELS[column] for column in histograms.events}
    ablation = report.ablation.copy()
    one = pd.DataFrame({"all": ["all"]})
    curves = []
    for column, label in labels.items():
        cells = histograms.cells(column, threshold)
        (tn, fp), (fn, tp) = cells.tolist()
        bounds = _rate_bounds(cells, n_resamples, random_state)
        point = {"tpr": tp / max(tp + fn, 1), "fpr": fp / max(fp + tn, 1)}
        masks = rate_masks(one, cells.reshape(1, 2, 2), min_cell=min_cell).iloc[0]
        for metric in ("tpr", "fpr"):
            low, high = bounds[metric]
            ablation.loc[label, [metric, f"{metric}_low", f"{metric}_high"]] = (
                point[metric],
                low,
                high,
            )
        for metric in ("auroc", "brier", "tpr", "fpr"):
            if masks[metric]:
                ablation.loc[label, [metric, f"{metric}_low", f"{metric}_high"]] = np.nan
        y, risk = histograms.rows(column)
        roc = coarse_roc(y, risk, min_cell=min_cell, threshold=threshold)
        curves.append(roc.assign(model=label))
        if column == "risk":
            fusion_roc = roc
            fusion_pr = coarse_pr(y, risk, min_cell=min_cell, threshold=threshold)
            confusion = pd.DataFrame(
                cells,
                index=pd.Index(["no event", "event"], name="actual"),
                columns=pd.Index(["below threshold", "at/above threshold"], name="predicted"),
            )
    return replace(
        report,
        threshold=float(threshold),
        roc=fusion_roc,
        pr=fusion_pr,
        confusion=suppress_confusion(confusion, min_cell),
        ablation=ablation,
        curves=pd.concat(curves, ignore_index=True).reindex(columns=["model", "fpr", "tpr"]),
    )
