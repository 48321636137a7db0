"""Researcher's views on one split: performance with modality ablation, and audit inputs.

Owns the pure step from a frame of split predictions (one column of risk per model, as
:meth:`fusion.service.facade.RiskService.test_predictions` returns it) to a
:class:`PerformanceReport`, and the derived sensitive attributes (age band). No SQL, no
streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import brier_score_loss

from fusion.admin.access import Role
from fusion.evaluation.disclosure import (
    ThresholdChoice,
    allowed_thresholds,
    choose_threshold,
    coarse_curve,
    curve_through,
)
from fusion.evaluation.fairness import (
    SUPPRESSED,
    bin_mask,
    calibration_by_group,
    group_table,
    rate_masks,
    suppress_cells,
)
from fusion.evaluation.metrics import (
    ablation_table,
    calibration_bins,
    confusion_at,
    expected_calibration_error,
    pr_points,
    roc_points,
)

__all__ = [
    "ABLATION_LABELS",
    "AGE_BANDS",
    "AUDIT_ATTRIBUTES",
    "PerformanceReport",
    "ShapSummary",
    "add_age_band",
    "audit_threshold",
    "check_attributes",
    "confusion_table",
    "evaluate_performance",
    "group_curves",
    "modality_reliance",
    "performance_threshold",
    "summarise_shap",
    "suppress_confusion",
]

# Risk columns of the split frame, in table order, with the names the pages show.
ABLATION_LABELS: dict[str, str] = {
    "risk_imaging": "Imaging only",
    "risk_ehr": "EHR only",
    "risk_genomics": "Genomics only",
    "risk_ehr_genomics": "EHR + genomics",
    "risk": "Fusion (all modalities)",
    "true_risk": "Oracle (true risk)",
}
AUDIT_ATTRIBUTES: tuple[str, ...] = ("sex", "age_band", "ethnicity", "site")
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<50", 0.0, 50.0),
    ("50-64", 50.0, 65.0),
    ("65-74", 65.0, 75.0),
    ("75+", 75.0, np.inf),
)


def add_age_band(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with ``age_band`` (ordered categorical) cut from ``age`` in years."""
    edges = [low for _, low, _ in AGE_BANDS] + [np.inf]
    bands = pd.cut(
        frame["age"], edges, right=False, labels=[name for name, _, _ in AGE_BANDS]
    ).astype(str)
    return frame.assign(age_band=bands)


def check_attributes(by: Sequence[str]) -> tuple[str, ...]:
    """Validate audit attributes: 1-3 distinct names from :data:`AUDIT_ATTRIBUTES`."""
    names = tuple(by)
    unknown = [name for name in names if name not in AUDIT_ATTRIBUTES]
    if unknown or not names:
        raise ValueError(
            f"Unknown sensitive attributes {unknown or names!r}; choose 1 to 3 of "
            f"{list(AUDIT_ATTRIBUTES)}."
        )
    if len(set(names)) != len(names) or len(names) > 3:
        raise ValueError(f"Got attributes {list(names)}; pass 1 to 3 distinct names.")
    return names


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
        (:func:`fusion.evaluation.disclosure.coarse_curve`; exact when ``min_cell`` is 0).
    calibration : DataFrame
        ``low, high, n, mean_risk, observed, suppressed`` per risk bin (empty bins only when
        suppressed); bins whose size, events or non-events are under the smallest cell size
        (and their complements) hold NaN (:func:`fusion.evaluation.fairness.bin_mask`).
    brier, ece : float
        Brier score and expected calibration error of the fusion risk.
    confusion : DataFrame
        Counts, rows actual, columns predicted, with a ``total`` row and column, after
        small-cell suppression (:func:`suppress_confusion`): hidden cells hold NaN.
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
        """The confusion matrix as text, hidden cells marked (:func:`confusion_table`)."""
        return confusion_table(self.confusion, min_cell=self.min_cell)

    def through(self, frame: pd.DataFrame, cuts: Sequence[float]) -> PerformanceReport:
        """The report with every curve drawn through ``cuts`` only (:func:`curve_through`).

        Parameters
        ----------
        frame : DataFrame
            The split frame the report was computed from.
        cuts : sequence of float
            Curve points, e.g. :attr:`fusion.evaluation.disclosure.ThresholdChoice.curve_cuts`.
        """
        y = frame["label"].to_numpy(dtype=np.int64)
        points = {label: curve_through(y, risk, cuts) for label, risk in _available(frame).items()}
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


def _available(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.float64]]:
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
        list(_available(frame).values()),
        min_cell=min_cell,
        threshold=default,
    )
    return choose_threshold(requested, cuts, default=default, min_cell=min_cell)


def audit_threshold(
    frame: pd.DataFrame,
    by: Sequence[str],
    requested: float,
    *,
    role: Role,
    default: float,
    min_cell: int,
) -> ThresholdChoice:
    """The threshold the bias audit applies for ``role``, as :func:`performance_threshold`.

    A researcher's cut points are those of the performance view between which every group of
    ``by`` (suppressed ones included) has no or at least ``min_cell`` events and non-events,
    so neither a group's nor the whole split's counts at two allowed thresholds differ by a
    small count. Pass :attr:`ThresholdChoice.curve_cuts` to :func:`group_curves`.

    Parameters
    ----------
    frame : DataFrame
        The split frame (``label``, risk columns and the attributes ``by``).
    by : sequence of str
        The audit's attributes.
    requested, role, default, min_cell
        As :func:`performance_threshold`.

    Returns
    -------
    ThresholdChoice
    """
    if role != "researcher":
        return choose_threshold(requested, None, default=default, min_cell=min_cell)
    overall = performance_threshold(frame, requested, role=role, default=default, min_cell=min_cell)
    codes = frame[list(by)].astype(str).agg(" & ".join, axis=1).factorize()[0]
    cuts = allowed_thresholds(
        frame["label"].to_numpy(dtype=np.int64),
        [frame["risk"].to_numpy(dtype=np.float64)],
        min_cell=min_cell,
        threshold=default,
        groups=codes,
        candidates=overall.curve_cuts or (),
    )
    return choose_threshold(requested, cuts, default=default, min_cell=min_cell)


def suppress_confusion(counts: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """A confusion matrix with its totals, small cells and their complements hidden.

    The totals (events and non-events, patients flagged and not, the split's size) are
    shown, and follow from the page's other figures anyway, so the cells go through the line
    rule of :func:`fusion.evaluation.fairness.suppress_cells`, as every other table does: a cell
    under
    ``min_cell`` hides, and so does a partner in its row and in its column, so that no hidden
    cell follows from a total minus the shown cells. In a 2x2 matrix one small cell therefore
    hides all four; an empty cell counts as small ("nobody flagged had no event" is a
    disclosure too). A pair of totals with one under ``min_cell`` hides as well.

    Parameters
    ----------
    counts : DataFrame of int
        Counts, rows actual, columns predicted (as :func:`fusion.evaluation.metrics.confusion_at`).
    min_cell : int
        Smallest count shown (0: no suppression).

    Returns
    -------
    DataFrame of float
        The counts plus a ``total`` row and column; hidden cells hold NaN (the grand total
        is never hidden).

    Raises
    ------
    ValueError
        If ``min_cell`` is negative.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame([[120, 30], [5, 45]], index=["no", "yes"], columns=["<", ">="])
    >>> suppress_confusion(counts, 11).to_numpy().tolist()
    [[nan, nan, 150.0], [nan, nan, 50.0], [125.0, 75.0, 200.0]]
    >>> suppress_confusion(counts, 5).loc["yes"].tolist()
    [5.0, 45.0, 50.0]
    """
    if min_cell < 0:
        raise ValueError(f"min_cell={min_cell}; pass 0 (no suppression) or a positive size.")
    values = counts.to_numpy(dtype=np.float64)
    rows, columns = np.indices(values.shape)
    flat = pd.Series(
        values.ravel(), index=pd.MultiIndex.from_arrays([rows.ravel(), columns.ravel()])
    )
    hidden = suppress_cells(flat, min_cell, protect_empty=True).reshape(values.shape)
    table = pd.DataFrame(
        np.where(hidden, np.nan, values), index=counts.index.copy(), columns=counts.columns.copy()
    )
    rows, columns = values.sum(axis=1), values.sum(axis=0)
    table["total"] = np.where(rows.min() < min_cell, np.nan, rows)
    table.loc["total"] = [*np.where(columns.min() < min_cell, np.nan, columns), values.sum()]
    return table


def confusion_table(confusion: pd.DataFrame, *, min_cell: int) -> pd.DataFrame:
    """A suppressed confusion matrix as text: counts whole, hidden cells with the marker.

    Parameters
    ----------
    confusion : DataFrame
        Output of :func:`suppress_confusion` (NaN = hidden).
    min_cell : int
        The threshold it was suppressed with (for the marker text).

    Returns
    -------
    DataFrame of str
        Same shape and labels.

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame([[120, 30], [5, 45]], index=["no", "yes"], columns=["<", ">="])
    >>> confusion_table(suppress_confusion(counts, 11), min_cell=11).loc["yes"].tolist()
    ['suppressed (n < 11)', 'suppressed (n < 11)', '50']
    """
    marker = SUPPRESSED.format(min_cell=min_cell)
    text: pd.DataFrame = confusion.astype(object).map(
        lambda value: marker if np.isnan(value) else f"{value:.0f}"
    )
    return text


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
    available = _available(frame)
    if min_cell < 0:
        raise ValueError(f"min_cell={min_cell}; pass 0 (no suppression) or a positive size.")
    curves = pd.concat(
        [
            _roc(y, values, min_cell=min_cell, threshold=threshold).assign(model=label)
            for label, values in available.items()
        ],
        ignore_index=True,
    )
    return PerformanceReport(
        model_version=model_version,
        threshold=float(threshold),
        n=len(frame),
        roc=_roc(y, risk, min_cell=min_cell, threshold=threshold),
        pr=_pr(y, risk, min_cell=min_cell, threshold=threshold),
        calibration=_calibration(y, risk, n_bins=n_bins, min_cell=min_cell),
        brier=float(brier_score_loss(y, risk)),
        ece=expected_calibration_error(y, risk, n_bins=n_bins),
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


def _roc(
    y: npt.NDArray[np.int64],
    risk: npt.NDArray[np.float64],
    *,
    min_cell: int,
    threshold: float | None,
) -> pd.DataFrame:
    """ROC points (``fpr, tpr, threshold``), coarse enough that no step is a small count."""
    if min_cell == 0:
        return roc_points(y, risk)
    curve = coarse_curve(y, risk, min_cell=min_cell, threshold=threshold)
    return curve.loc[:, ["fpr", "tpr", "threshold"]]


def _pr(
    y: npt.NDArray[np.int64], risk: npt.NDArray[np.float64], *, min_cell: int, threshold: float
) -> pd.DataFrame:
    """PR points (``recall, precision, threshold``) from everyone flagged to the fewest."""
    if min_cell == 0:
        return pr_points(y, risk)
    curve = coarse_curve(y, risk, min_cell=min_cell, threshold=threshold)
    points = curve.loc[curve["precision"].notna(), ["recall", "precision", "threshold"]]
    return points.iloc[::-1].reset_index(drop=True)


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
    events = (calibration["observed"].fillna(0.0) * calibration["n"]).round()
    small = bin_mask(
        pd.DataFrame({"bin": np.arange(n_bins)}), calibration["n"], events, min_cell=min_cell
    )
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
    (:func:`fusion.evaluation.fairness.rate_masks`); AUROC and Brier are hidden only when the
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


@dataclass(frozen=True, slots=True)
class ShapSummary:
    """Global TreeSHAP importance of the fusion model over the test split (log-odds).

    Attributes
    ----------
    features : DataFrame
        ``feature, label, modality, mean_abs_shap`` sorted by importance, descending.
    modalities : Series
        Mean |SHAP| summed over each modality's features, indexed by modality.
    beeswarm : DataFrame
        The ``top_n`` features, one row per (patient, feature): ``label, modality, shap,
        value, value_rank`` (the value's rank within its feature in [0, 1], for colour).
    per_patient : DataFrame
        |SHAP| summed per modality for each test patient (index ``patient_id``).
    bins : DataFrame
        The aggregate beeswarm for roles that see aggregates only: the ``top_n`` features,
        one row per value bin (quintiles of the value's rank; fewer for features with few
        distinct values): ``label, modality, bin, n, mean_shap, value_rank, suppressed``.
        Bins under ``min_cell`` patients (and a complement) hold NaN.
    """

    features: pd.DataFrame
    modalities: pd.Series
    beeswarm: pd.DataFrame
    per_patient: pd.DataFrame
    bins: pd.DataFrame = field(default_factory=pd.DataFrame)

    def aggregates_only(self) -> ShapSummary:
        """The summary without any per-patient row (``beeswarm`` and ``per_patient`` empty).

        What a researcher's page receives: importance and :attr:`bins` only.
        """
        return ShapSummary(
            features=self.features,
            modalities=self.modalities,
            beeswarm=self.beeswarm.iloc[0:0],
            per_patient=self.per_patient.iloc[0:0],
            bins=self.bins,
        )


def summarise_shap(
    values: npt.NDArray[np.float64],
    X: pd.DataFrame,
    *,
    labels: Sequence[str],
    modalities: Sequence[str],
    order: Sequence[str],
    top_n: int = 10,
    min_cell: int = 11,
    n_value_bins: int = 5,
) -> ShapSummary:
    """Global importance (mean |SHAP| per feature and per modality) and beeswarm data.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        SHAP values of the rows of ``X``.
    X : DataFrame of shape (n_samples, n_features)
        Model inputs, indexed by ``patient_id``.
    labels, modalities : sequence of str, length n_features
        Readable name and modality of each feature.
    order : sequence of str
        Modalities in display order.
    top_n : int, default=10
        Features in the beeswarm.
    min_cell : int, default=11
        Smallest value bin shown in :attr:`ShapSummary.bins`.
    n_value_bins : int, default=5
        Value bins per feature in :attr:`ShapSummary.bins` (by the value's rank).

    Returns
    -------
    ShapSummary
    """
    magnitude = np.abs(values)
    features = pd.DataFrame(
        {
            "feature": list(X.columns),
            "label": list(labels),
            "modality": list(modalities),
            "mean_abs_shap": magnitude.mean(axis=0) if len(X) else np.zeros(X.shape[1]),
        }
    ).sort_values("mean_abs_shap", ascending=False, kind="stable")
    by_modality = features.groupby("modality")["mean_abs_shap"].sum().reindex(list(order))
    per_patient = pd.DataFrame(
        {m: magnitude[:, np.asarray(modalities) == m].sum(axis=1) for m in order},
        index=X.index,
    )
    rows = []
    for _, feature in features.head(top_n).iterrows():
        column = X.columns.get_loc(feature["feature"])
        ranks = X[feature["feature"]].rank(pct=True)
        rows.append(
            pd.DataFrame(
                {
                    "label": feature["label"],
                    "modality": feature["modality"],
                    "shap": values[:, column],
                    "value": X[feature["feature"]].to_numpy(),
                    "value_rank": ranks.to_numpy(),
                }
            )
        )
    beeswarm = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ShapSummary(
        features=features.reset_index(drop=True),
        modalities=by_modality.fillna(0.0),
        beeswarm=beeswarm,
        per_patient=per_patient,
        bins=_value_bins(beeswarm, min_cell=min_cell, n_bins=n_value_bins),
    )


def _value_bins(beeswarm: pd.DataFrame, *, min_cell: int, n_bins: int) -> pd.DataFrame:
    """Mean SHAP per (feature, value-rank bin), small bins and a complement hidden."""
    columns = ["label", "modality", "bin", "n", "mean_shap", "value_rank", "suppressed"]
    if beeswarm.empty:
        return pd.DataFrame(columns=columns)
    # Quintiles of the value's rank; a missing value has a bin of its own (-1).
    frame = beeswarm.assign(
        bin=np.minimum(np.floor(beeswarm["value_rank"] * n_bins), n_bins - 1)
        .fillna(-1)
        .astype(np.int64)
    )
    grouped = frame.groupby(["label", "bin"], sort=False)
    table = grouped.agg(
        modality=("modality", "first"),
        n=("shap", "size"),
        mean_shap=("shap", "mean"),
        value_rank=("value_rank", "mean"),
    ).reset_index()
    table["n"] = table["n"].astype(np.float64)
    # Each feature's bins add up to the split's size: one line per feature.
    hidden = np.zeros(len(table), dtype=bool)
    for label in table["label"].unique():
        rows = (table["label"] == label).to_numpy()
        sizes = pd.Series(table.loc[rows, "n"].to_numpy())
        hidden[rows] = suppress_cells(sizes, min_cell)
    table.loc[hidden, ["n", "mean_shap", "value_rank"]] = np.nan
    table["suppressed"] = hidden
    order = {label: position for position, label in enumerate(dict.fromkeys(beeswarm["label"]))}
    table = table.assign(_order=table["label"].map(order)).sort_values(["_order", "bin"])
    return table.reindex(columns=columns).reset_index(drop=True)


def modality_reliance(
    per_patient: pd.DataFrame, attributes: pd.DataFrame, *, min_cell: int = 11
) -> pd.DataFrame:
    """Mean |SHAP| per modality by group: how much the model relies on each modality.

    Parameters
    ----------
    per_patient : DataFrame
        |SHAP| per modality per patient (:attr:`ShapSummary.per_patient`).
    attributes : DataFrame
        Sensitive attributes on the same index; groups are their combinations.
    min_cell : int, default=11
        Groups below this size are suppressed (with complementary suppression), exactly as in
        :func:`fusion.evaluation.fairness.audit` (:func:`fusion.evaluation.fairness.group_table`).

    Returns
    -------
    DataFrame
        Index: group label (values joined by ``" & "``); ``n``, one column per modality, and
        ``suppressed``; suppressed rows hold NaN.
    """
    joined = per_patient.join(attributes, how="inner")
    columns = list(attributes.columns)
    grouped = joined.groupby(columns, sort=True)
    table = grouped[list(per_patient.columns)].mean()
    table.insert(0, "n", grouped.size().astype(np.float64))
    table.index = pd.Index(
        [" & ".join(map(str, key if isinstance(key, tuple) else (key,))) for key in table.index],
        name="group",
    )
    groups = group_table(joined[columns], min_cell=min_cell)
    hidden = groups["suppressed"].reindex(table.index).to_numpy(dtype=bool)
    table.loc[hidden, :] = np.nan
    table["suppressed"] = hidden
    return table


def group_curves(
    frame: pd.DataFrame,
    by: Sequence[str],
    *,
    min_cell: int = 11,
    n_bins: int = 5,
    threshold: float | None = None,
    cut_points: Sequence[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC points and calibration bins per group, for the groups an audit shows.

    Groups are suppressed as in :func:`fusion.evaluation.fairness.audit` (with complementary
    suppression); within a shown group, calibration bins under ``min_cell`` patients, and the
    bins that would give them away, are suppressed too
    (:func:`fusion.evaluation.fairness.calibration_by_group`), so no plotted count is a small cell.
    A
    group's ROC is drawn only where the audit shows its events (its AUROC), at cuts that leave
    at least ``min_cell`` events and non-events between points
    (:func:`fusion.evaluation.disclosure.coarse_curve`, exact when ``min_cell`` is 0).

    Parameters
    ----------
    frame : DataFrame
        ``label``, ``risk`` and the attribute columns ``by``.
    by : sequence of str
        One to three attribute columns (groups are their combinations).
    min_cell : int, default=11
        Smallest group (and calibration bin) shown.
    n_bins : int, default=5
        Equal-width risk bins of each group's calibration curve.
    threshold : float, optional
        The audit's decision threshold, a boundary of the coarse ROC (its column totals
        follow from the audit's selection rates).
    cut_points : sequence of float, optional
        Draw each ROC through these cuts only (a researcher's
        :attr:`fusion.evaluation.disclosure.ThresholdChoice.curve_cuts`) instead of coarse cuts.

    Returns
    -------
    roc : DataFrame
        ``group, fpr, tpr`` rows.
    calibration : DataFrame
        ``group, low, high, n, mean_risk, observed, suppressed`` rows; suppressed bins hold
        NaN values.
    """
    columns = list(by)
    labels = frame[columns].astype(str).agg(" & ".join, axis=1)
    groups = group_table(frame[columns], min_cell=min_cell)
    events = frame.groupby(labels)["label"].sum().reindex(groups.index).to_numpy()
    outcome = np.stack([groups["n"].to_numpy() - events, events], axis=1)
    cells = np.zeros((len(groups), 2, 2))
    cells[:, :, 1] = outcome  # the flag does not matter for the events' own mask
    shown = ~rate_masks(
        groups[columns], cells, min_cell=min_cell, hidden=groups["suppressed"].to_numpy()
    )["prevalence"].to_numpy()
    rocs = []
    for group in groups.index[shown]:
        rows = frame.loc[labels == group]
        y = rows["label"].to_numpy(dtype=np.int64)
        risk = rows["risk"].to_numpy(dtype=np.float64)
        if len(np.unique(y)) < 2:
            continue
        if cut_points is None:
            rocs.append(_roc(y, risk, min_cell=min_cell, threshold=threshold).assign(group=group))
        else:
            rocs.append(curve_through(y, risk, cut_points).assign(group=group))
    roc = pd.concat(rocs, ignore_index=True) if rocs else pd.DataFrame(columns=["fpr", "tpr"])
    calibration = calibration_by_group(
        frame["label"].to_numpy(),
        frame["risk"].to_numpy(),
        frame[columns],
        min_cell=min_cell,
        n_bins=n_bins,
    )
    return roc.reindex(columns=["group", "fpr", "tpr"]), calibration
