"""Researcher's performance view of one split: curves, calibration, confusion, ablation.

Owns the pure step from a frame of split predictions (one column of risk per model, as
:meth:`fusion.service.facade.RiskService.test_predictions` returns it) to a
:class:`PerformanceReport`, and the threshold a role may apply to it. No SQL, no streamlit;
must not import the per-group views (:mod:`fusion.evaluation.groups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import brier_score_loss

from fusion.admin.access import Role
from fusion.evaluation.complementary import Family
from fusion.evaluation.curves import coarse_pr, coarse_roc, curve_through
from fusion.evaluation.disclosure import ThresholdChoice, allowed_thresholds, choose_threshold
from fusion.evaluation.metrics import (
    ablation_table,
    calibration_bins,
    confusion_at,
)
from fusion.evaluation.suppression import confusion_table, rate_masks, suppress_confusion

__all__ = [
    "ABLATION_LABELS",
    "PerformanceReport",
    "available_risks",
    "evaluate_performance",
    "performance_threshold",
    "shown_ece",
]


# Risk columns of the split frame, in table order, with the names the pages show.
ABLATION_LABELS: dict[str, str] = {
    "risk_imaging": "Imaging only",
    "risk_ehr": "EHR only",
    "risk_genomics": "Genomics only",
    "risk_ehr_genomics": "EHR + genomics",
    "risk_logistic": "Logistic regression (all inputs)",
    "risk_lightgbm": "Fused LightGBM (not served)",
    "risk": "Fusion (all modalities)",
    "true_risk": "Oracle (true risk)",
}


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Test-split performance of the fusion model and its single-modality ablations.

    Attributes
    ----------
    model_version : str
        The fusion model version evaluated.
    threshold : float
        Decision threshold of the confusion matrix and the TPR/FPR columns.
    n : int
        Patients in the split.
    roc, pr : DataFrame
        Fusion ROC (``fpr, tpr, threshold``) and PR (``recall, precision, threshold``) points,
        at cuts between which at least ``min_cell`` events and non-events lie
        (:func:`fusion.evaluation.curves.coarse_curve`; exact when ``min_cell`` is 0).
    calibration : DataFrame
        ``low, high, n, mean_risk, observed, suppressed`` per risk bin (empty bins only when
        suppressed); bins whose size, events or non-events are under the smallest cell size
        (and their complements, so that no hidden bin's count nor the hidden bins' sum is under
        it: :class:`fusion.evaluation.complementary.Family`) hold NaN.
    brier, ece : float
        Brier score and expected calibration error of the fusion risk. The ECE is taken over
        the shown bins only (all bins when none is hidden): with the hidden bins in it, it
        would give ``sum |risk sum - events|`` of the hidden bins, which with their risk
        ranges can pin a small bin's size (docs/models.md, "What Brier and ECE give away").
    confusion : DataFrame
        Counts, rows actual, columns predicted, with a ``total`` row and column, after
        small-cell suppression (:func:`fusion.evaluation.suppression.suppress_confusion`):
        hidden cells hold NaN.
    ablation : DataFrame
        One row per available model (labels of :data:`ABLATION_LABELS`): AUROC, Brier, TPR,
        FPR, each with ``_low``/``_high`` bootstrap 95% bounds; TPR and FPR are NaN where the
        model's confusion matrix has a cell under ``min_cell`` (they would give it away).
    curves : DataFrame
        ROC points of every ablation model: ``model, fpr, tpr`` (coarse, as ``roc``).
    min_cell : int
        Smallest count shown or derivable anywhere in the report.
    """

    model_version: str
    threshold: float
    n: int
    roc: pd.DataFrame
    pr: pd.DataFrame
    calibration: pd.DataFrame
    brier: float
    ece: float
    confusion: pd.DataFrame
    ablation: pd.DataFrame
    curves: pd.DataFrame
    min_cell: int

    def confusion_table(self) -> pd.DataFrame:
        """The confusion matrix as text, hidden cells marked.

        See :func:`fusion.evaluation.suppression.confusion_table`.
        """
        return confusion_table(self.confusion, min_cell=self.min_cell)

    def through(self, frame: pd.DataFrame, cuts: Sequence[float]) -> PerformanceReport:
        """The report with every curve drawn through ``cuts`` only.

        Curves come from :func:`fusion.evaluation.curves.curve_through`.

        Parameters
        ----------
        frame : DataFrame
            The split frame the report was computed from.
        cuts : sequence of float
            Curve points, e.g. :attr:`fusion.evaluation.disclosure.ThresholdChoice.curve_cuts`.
        """
        y = frame["label"].to_numpy(dtype=np.int64)
        points = {
            label: curve_through(y, risk, cuts) for label, risk in available_risks(frame).items()
        }
        fusion = points[ABLATION_LABELS["risk"]]
        pr = fusion.loc[fusion["precision"].notna(), ["recall", "precision", "threshold"]]
        curves = pd.concat(
            [curve.assign(model=label) for label, curve in points.items() if not curve.empty]
            or [pd.DataFrame(columns=["model", "fpr", "tpr"])],
            ignore_index=True,
        )
        return replace(
            self,
            roc=fusion.loc[:, ["fpr", "tpr", "threshold"]],
            pr=pr.iloc[::-1].reset_index(drop=True),
            curves=curves.reindex(columns=["model", "fpr", "tpr"]),
        )


def available_risks(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
    """Risk of every model with a complete column in ``frame``, by ablation label."""
    return {
        label: frame[column].to_numpy(dtype=np.float64)
        for column, label in ABLATION_LABELS.items()
        if column in frame and frame[column].notna().all()
    }


def performance_threshold(
    frame: pd.DataFrame, requested: float, *, role: Role, default: float, min_cell: int
) -> ThresholdChoice:
    """The threshold the performance view applies for ``role``.

    A researcher's threshold snaps to the cut points of
    :func:`fusion.evaluation.disclosure.allowed_thresholds` over every model the page shows,
    so the shown counts at two thresholds never differ by a small count; other roles get
    ``requested``. Draw a researcher's curves with :meth:`PerformanceReport.through`.

    Parameters
    ----------
    frame : DataFrame
        The split frame (``label`` and the risk columns).
    requested : float
        The threshold asked for.
    role : {"clinician", "researcher", "admin"}
        The viewer's role.
    default : float
        The model's threshold (always allowed).
    min_cell : int
        The suppression floor.

    Returns
    -------
    ThresholdChoice
    """
    if role != "researcher":
        return choose_threshold(requested, None, default=default, min_cell=min_cell)
    cuts = allowed_thresholds(
        frame["label"].to_numpy(dtype=np.int64),
        list(available_risks(frame).values()),
        min_cell=min_cell,
        threshold=default,
    )
    return choose_threshold(requested, cuts, default=default, min_cell=min_cell)


def evaluate_performance(
    frame: pd.DataFrame,
    *,
    model_version: str,
    threshold: float,
    n_bins: int = 10,
    n_resamples: int = 200,
    random_state: int = 0,
    min_cell: int = 11,
) -> PerformanceReport:
    """Performance of every risk column of a split frame against its ``label``.

    Parameters
    ----------
    frame : DataFrame
        ``label``, ``risk`` (fusion) and any of the other :data:`ABLATION_LABELS` columns;
        an all-NaN column (e.g. ``true_risk`` of an imported cohort) is left out.
    model_version : str
        Recorded in the report.
    threshold : float
        Decision threshold.
    n_bins : int, default=10
        Calibration bins.
    n_resamples : int, default=200
        Bootstrap resamples of the ablation table.
    random_state : int, default=0
        Seed of the resampling.
    min_cell : int, default=11
        Calibration bins and confusion-matrix cells with fewer patients are suppressed (with
        complements, since they add up to totals the page shows), as in the bias audit.

    Returns
    -------
    PerformanceReport

    Raises
    ------
    ValueError
        If the frame is empty or has one class only.
    """
    if frame.empty or frame["label"].nunique() < 2:
        raise ValueError(
            "Performance needs test patients with both outcomes; the split holds "
            f"{len(frame)} patients and labels {sorted(frame['label'].unique().tolist())}."
        )
    y = frame["label"].to_numpy(dtype=np.int64)
    risk = frame["risk"].to_numpy(dtype=np.float64)
    available = available_risks(frame)
    if min_cell < 0:
        raise ValueError(f"min_cell={min_cell}; pass 0 (no suppression) or a positive size.")
    curves = pd.concat(
        [
            coarse_roc(y, values, min_cell=min_cell, threshold=threshold).assign(model=label)
            for label, values in available.items()
        ],
        ignore_index=True,
    )
    calibration = _calibration(y, risk, n_bins=n_bins, min_cell=min_cell)
    return PerformanceReport(
        model_version=model_version,
        threshold=float(threshold),
        n=len(frame),
        roc=coarse_roc(y, risk, min_cell=min_cell, threshold=threshold),
        pr=coarse_pr(y, risk, min_cell=min_cell, threshold=threshold),
        calibration=calibration,
        brier=float(brier_score_loss(y, risk)),
        ece=shown_ece(calibration),
        confusion=suppress_confusion(confusion_at(y, risk, threshold), min_cell),
        ablation=_suppress_ablation(
            ablation_table(
                y,
                available,
                threshold=threshold,
                n_resamples=n_resamples,
                random_state=random_state,
            ),
            y,
            available,
            threshold=threshold,
            min_cell=min_cell,
        ),
        curves=curves.reindex(columns=["model", "fpr", "tpr"]),
        min_cell=min_cell,
    )


def shown_ece(calibration: pd.DataFrame) -> float:
    """Expected calibration error over the shown bins of a suppressed calibration table.

    ``sum_b n_b |observed_b - mean_risk_b| / sum_b n_b`` over the bins not suppressed: a
    number the shown bins give anyway, so it tells nothing of the hidden ones. With no bin
    hidden it is :func:`fusion.evaluation.metrics.expected_calibration_error`.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"n": [20.0, None], "mean_risk": [0.1, None],
    ...                       "observed": [0.15, None], "suppressed": [False, True]})
    >>> round(shown_ece(table), 3)
    0.05
    """
    shown = calibration.loc[~calibration["suppressed"].astype(bool)]
    if shown.empty or shown["n"].sum() == 0:
        return float("nan")
    gap = (shown["observed"] - shown["mean_risk"]).abs()
    return float((shown["n"] * gap).sum() / shown["n"].sum())


def _calibration(
    y: npt.NDArray[np.int64], risk: npt.NDArray[np.float64], *, n_bins: int, min_cell: int
) -> pd.DataFrame:
    """Every risk bin, with small ones (events and non-events too) and complements hidden."""
    shown = calibration_bins(y, risk, n_bins=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    calibration = (
        pd.DataFrame({"low": edges[:-1], "high": edges[1:]})
        .merge(shown, on=["low", "high"], how="left")
        .astype({"n": np.float64})
    )
    calibration["n"] = calibration["n"].fillna(0.0)
    edge_index = np.clip(np.digitize(risk, edges[1:-1]), 0, n_bins - 1)
    bins = Family.from_units(
        pd.DataFrame({"_bin": edge_index}), [("_bin",)], complete={"_bin": range(n_bins)}
    )
    counts = bins.counts(np.stack([np.ones(len(y)), 1 - y, y], axis=1))
    small = bins.protect(counts, min_cell=min_cell, protect_empty=True)
    calibration.loc[small, ["n", "mean_risk", "observed"]] = np.nan
    calibration["suppressed"] = small
    kept: pd.DataFrame = calibration.loc[small | (calibration["n"] > 0)].reset_index(drop=True)
    return kept


def _suppress_ablation(
    table: pd.DataFrame,
    y: npt.NDArray[np.int64],
    risks: dict[str, npt.NDArray[np.float64]],
    *,
    threshold: float,
    min_cell: int,
) -> pd.DataFrame:
    """Hide each model's TPR/FPR where its confusion matrix has a cell under ``min_cell``.

    A model's TPR and FPR with the events and non-events the page shows give its four cells
    (:func:`fusion.evaluation.suppression.rate_masks`); AUROC and Brier are hidden only when the
    events or
    non-events themselves are small.
    """
    out = table.copy()
    one = pd.DataFrame({"all": ["all"]})
    for name, risk in risks.items():
        flagged = (risk >= threshold).astype(np.intp)
        cells = np.bincount(2 * y.astype(np.intp) + flagged, minlength=4).reshape(1, 2, 2)
        masks = rate_masks(one, cells, min_cell=min_cell).iloc[0]
        for metric in ("auroc", "brier", "tpr", "fpr"):
            if masks[metric]:
                out.loc[name, [metric, f"{metric}_low", f"{metric}_high"]] = np.nan
    return out
