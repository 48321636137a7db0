"""Per-group views of a split: attributes, group sizes, calibration, ROC and modality reliance.

Owns the sensitive attributes of an audit (:data:`AUDIT_ATTRIBUTES`, the derived age band),
group codes and sizes with suppression (:func:`group_table`), and the views the bias audit
page shows beside the metrics table: calibration and ROC per group, mean |SHAP| per modality
per group, and a researcher's audit threshold. Must not import :mod:`fusion.evaluation.fairness`
(which imports this module), SQL or streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.admin.access import Role
from fusion.evaluation.age_bands import (
    AGE_BANDS,
    DEFAULT_AGE_CUTS,
    add_age_band,
    age_bands,
    parse_bins,
)
from fusion.evaluation.bootstrap import check_outcomes, divide_or_nan
from fusion.evaluation.complementary import align, audit_family, audit_masks, bin_hidden
from fusion.evaluation.curves import coarse_roc, curve_through
from fusion.evaluation.disclosure import ThresholdChoice, allowed_thresholds, choose_threshold
from fusion.evaluation.performance import performance_threshold

__all__ = [
    "AGE_BANDS",
    "AUDIT_ATTRIBUTES",
    "DEFAULT_AGE_CUTS",
    "MAX_ATTRIBUTES",
    "MISSING_ATTRIBUTE",
    "UNRECORDED",
    "add_age_band",
    "age_bands",
    "audit_scope",
    "audit_threshold",
    "calibration_by_group",
    "check_attributes",
    "group_codes",
    "group_curves",
    "group_labels",
    "group_table",
    "modality_reliance",
    "parse_bins",
]


AUDIT_ATTRIBUTES: tuple[str, ...] = ("sex", "age_band", "ethnicity", "site")


MAX_ATTRIBUTES = 3


UNRECORDED: frozenset[str] = frozenset({"not recorded", "unknown", ""})
"""Values that say an attribute was not recorded (the importer writes ``not recorded``)."""


MISSING_ATTRIBUTE = (
    "The cohort has no {attributes} recorded: every patient of the audit reads 'not recorded' "
    "(or is empty), so there are no groups to compare. Audit another attribute ({others}), or "
    'add the column to patients.csv (declared role = "sensitive" in schema.toml) and run '
    "riskfusion import again."
)
"""Message of an audit by an attribute the cohort lacks (tests match it)."""


def group_labels(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Each row's group label: its values of ``columns`` as text, joined by ``" & "``.

    One string operation per column, not one join per row; the same strings as
    ``frame[columns].astype(str).agg(" & ".join, axis=1)`` on rows without a missing value.
    A row with a missing value has a missing label (the row-by-row join fails on it).

    Examples
    --------
    >>> frame = pd.DataFrame({"sex": ["F", "M"], "site": ["A", None]})
    >>> group_labels(frame, ["sex", "site"]).tolist()
    ['F & A', nan]
    """
    if not columns:
        raise ValueError("group_labels needs one or more columns; pass the audit's attributes.")
    texts = [frame[column].astype(str) for column in columns]
    labels = texts[0]
    for text in texts[1:]:
        labels = labels + " & " + text
    return labels.rename(None)


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


def group_codes(
    sensitive_features: pd.DataFrame, n_samples: int
) -> tuple[npt.NDArray[np.intp], pd.DataFrame]:
    """Group code per row and one row per group (attribute values, label index)."""
    if not isinstance(sensitive_features, pd.DataFrame):
        raise TypeError(
            "sensitive_features must be a DataFrame with one column per attribute, got "
            f"{type(sensitive_features).__name__}; wrap a Series with .to_frame()."
        )
    columns = [str(c) for c in sensitive_features.columns]
    if not 1 <= len(columns) <= MAX_ATTRIBUTES:
        raise ValueError(
            f"Got {len(columns)} sensitive attributes {columns}; pass 1 to {MAX_ATTRIBUTES} "
            "(more than three-way intersections leave too few patients per group)."
        )
    if len(sensitive_features) != n_samples:
        raise ValueError(
            f"sensitive_features has {len(sensitive_features)} rows but y_true has "
            f"{n_samples}; pass one row per patient."
        )
    absent = [
        column
        for column in sensitive_features.columns
        if len(sensitive_features)
        and (
            sensitive_features[column].isna()
            | sensitive_features[column].astype(str).str.strip().str.lower().isin(UNRECORDED)
        ).all()
    ]
    if absent:
        others = [name for name in AUDIT_ATTRIBUTES if name not in absent]
        raise ValueError(
            MISSING_ATTRIBUTE.format(attributes=" or ".join(map(str, absent)), others=others)
        )
    if sensitive_features.isna().any().any():
        missing = sensitive_features.columns[sensitive_features.isna().any()].tolist()
        raise ValueError(
            f"Sensitive attributes {missing} have missing values; fill them with an explicit "
            "category such as 'unknown'."
        )
    frame = sensitive_features.reset_index(drop=True)
    frame.columns = pd.Index(columns)
    grouped = frame.groupby(columns, observed=False, sort=True)
    groups = grouped.size().rename("n_rows").reset_index()
    codes: npt.NDArray[np.intp] = np.asarray(grouped.ngroup(), dtype=np.intp)
    labels = group_labels(groups, columns)
    groups.index = pd.Index(labels, name="group")
    return codes, groups


def audit_scope(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` a reader may audit by (:data:`AUDIT_ATTRIBUTES` it holds)."""
    return frame.loc[:, [name for name in AUDIT_ATTRIBUTES if name in frame.columns]]


def group_table(
    sensitive_features: pd.DataFrame, *, min_cell: int, scope: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The groups of one to three attributes, their sizes and which are suppressed.

    The one place that decides which groups every table, figure and export shows: the audit, the
    reliance table and the curves by group call it, so they all hide the same groups.
    Suppression runs over every audit a reader may request at once
    (:mod:`fusion.evaluation.complementary`: each combination of up to three attributes of
    ``scope``), so no hidden size follows from the total, from the audits of fewer, other or
    more of the attributes, or from a sum of hidden groups under ``min_cell``.

    Parameters
    ----------
    sensitive_features : DataFrame of shape (n_samples, n_attributes)
        One to three attribute columns, no missing values.
    min_cell : int
        Smallest group shown.
    scope : DataFrame of shape (n_samples, n_scope), optional
        Every attribute a reader may audit by (:func:`audit_scope`), same rows; default the
        attributes of ``sensitive_features``.

    Returns
    -------
    DataFrame
        Index: group label (values joined by ``" & "``); the attribute columns, ``n`` and
        ``suppressed``.
    """
    _, groups = group_codes(sensitive_features, len(sensitive_features))
    attributes = [str(c) for c in sensitive_features.columns]
    table = groups[attributes].copy()
    table["n"] = groups["n_rows"].to_numpy()
    family, key = audit_family(sensitive_features if scope is None else scope, attributes)
    mask = family.protect(family.counts(np.ones(len(sensitive_features))), min_cell=min_cell)
    table["suppressed"] = align(
        family.cells[key], family.table(mask, key), table, fill=min_cell > 0
    )
    return table


def calibration_by_group(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    sensitive_features: pd.DataFrame,
    *,
    min_cell: int = 11,
    n_bins: int = 5,
    scope: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Reliability-curve bins per group, with small bins suppressed across groups and bins.

    Bins are equal-width over [0, 1]. The (group, bin) counts form one table with an axis per
    attribute plus one for the bin, and their events and non-events one more; suppressed groups,
    and groups whose events the audit hides, hide all their bins, then
    :func:`fusion.evaluation.suppression.bin_mask` hides every bin whose size, events or
    non-events are under ``min_cell`` (0 included), with the complements that keep them from
    following from the group's ``n`` and events (shown in the audit) or from the bin's counts
    over all patients. Empty bins of a shown group are listed as suppressed, so they cannot be
    told from small ones.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    sensitive_features : DataFrame of shape (n_samples, n_attributes)
        One to three attribute columns.
    min_cell : int, default=11
        Smallest group and bin shown.
    n_bins : int, default=5
        Risk bins per group.
    scope : DataFrame, optional
        Every attribute a reader may audit by (as :func:`group_table`): the bins are
        suppressed across the bins of every audit of them.

    Returns
    -------
    DataFrame
        One row per bin of each shown group (empty bins only when suppressed): ``group,
        low, high, n, mean_risk, observed, suppressed``; suppressed bins hold NaN in ``n,
        mean_risk, observed``.

    Examples
    --------
    >>> import pandas as pd
    >>> bins = calibration_by_group([0, 1] * 20, [0.1, 0.9] * 20,
    ...                             pd.DataFrame({"sex": ["F", "M"] * 20}), min_cell=0)
    >>> bins[["group", "n", "observed"]].to_numpy().tolist()
    [['F', 20.0, 0.0], ['M', 20.0, 1.0]]
    """
    y, r = check_outcomes(y_true, risk)
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}; pass 1 or more (e.g. 5).")
    groups = group_table(sensitive_features, min_cell=min_cell, scope=scope)
    codes, _ = group_codes(sensitive_features, len(y))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.digitize(r, edges[1:-1]), 0, n_bins - 1)
    cell = codes * n_bins + bin_index
    size = len(groups) * n_bins
    n: npt.NDArray[np.float64] = np.bincount(cell, minlength=size).astype(np.float64)
    events: npt.NDArray[np.float64] = np.bincount(cell, weights=y, minlength=size).astype(
        np.float64
    )
    risk_sum: npt.NDArray[np.float64] = np.bincount(cell, weights=r, minlength=size).astype(
        np.float64
    )
    group_of = np.repeat(np.arange(len(groups)), n_bins)
    bin_of = np.tile(np.arange(n_bins), len(groups))
    hidden = bin_hidden(
        sensitive_features if scope is None else scope,
        groups.drop(columns=["n", "suppressed"]),
        y,
        bin_index,
        n_bins=n_bins,
        min_cell=min_cell,
    )
    keep = ~groups["suppressed"].to_numpy()[group_of] & ((n > 0) | hidden)
    table = pd.DataFrame(
        {
            "group": groups.index.to_numpy()[group_of],
            "low": edges[:-1][bin_of],
            "high": edges[1:][bin_of],
            "n": n,
            "mean_risk": divide_or_nan(risk_sum, n),
            "observed": divide_or_nan(events, n),
            "suppressed": hidden,
        }
    )
    table.loc[hidden, ["n", "mean_risk", "observed"]] = np.nan
    shown: pd.DataFrame = table.loc[keep].reset_index(drop=True)
    return shown


def modality_reliance(
    per_patient: pd.DataFrame,
    attributes: pd.DataFrame,
    *,
    min_cell: int = 11,
    scope: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Mean |SHAP| per modality by group: how much the model relies on each modality.

    Parameters
    ----------
    per_patient : DataFrame
        |SHAP| per modality per patient
        (:attr:`fusion.evaluation.importance.ShapSummary.per_patient`).
    attributes : DataFrame
        Sensitive attributes on the same index; groups are their combinations.
    min_cell : int, default=11
        Groups below this size are suppressed (with complementary suppression), exactly as in
        :func:`fusion.evaluation.fairness.audit` (:func:`fusion.evaluation.groups.group_table`).
    scope : DataFrame, optional
        Every attribute a reader may audit by, on the same index (:func:`group_table`).

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
    rows = None if scope is None else scope.loc[joined.index]
    groups = group_table(joined[columns], min_cell=min_cell, scope=rows)
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
    (:func:`fusion.evaluation.groups.calibration_by_group`), so no plotted count is a small cell.
    A
    group's ROC is drawn only where the audit shows its events (its AUROC), at cuts that leave
    at least ``min_cell`` events and non-events between points
    (:func:`fusion.evaluation.curves.coarse_curve`, exact when ``min_cell`` is 0).

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
    labels = group_labels(frame, columns)
    # Every audit of the frame's attributes a reader may request, the shown one included.
    scope = frame.loc[:, list(dict.fromkeys([*audit_scope(frame).columns, *columns]))]
    groups = group_table(frame[columns], min_cell=min_cell, scope=scope)
    y_all = frame["label"].to_numpy(dtype=np.int64)
    shown = ~audit_masks(groups[columns], scope, y_all, np.zeros(len(frame)), min_cell=min_cell)[
        "prevalence"
    ].to_numpy()
    rocs = []
    for group in groups.index[shown]:
        rows = frame.loc[labels == group]
        y = rows["label"].to_numpy(dtype=np.int64)
        risk = rows["risk"].to_numpy(dtype=np.float64)
        if len(np.unique(y)) < 2:
            continue
        if cut_points is None:
            rocs.append(
                coarse_roc(y, risk, min_cell=min_cell, threshold=threshold).assign(group=group)
            )
        else:
            rocs.append(curve_through(y, risk, cut_points).assign(group=group))
    roc = pd.concat(rocs, ignore_index=True) if rocs else pd.DataFrame(columns=["fpr", "tpr"])
    calibration = calibration_by_group(
        frame["label"].to_numpy(),
        frame["risk"].to_numpy(),
        frame[columns],
        min_cell=min_cell,
        n_bins=n_bins,
        scope=scope,
    )
    return roc.reindex(columns=["group", "fpr", "tpr"]), calibration


def audit_threshold(
    frame: pd.DataFrame,
    by: Sequence[str],
    requested: float,
    *,
    role: Role,
    default: float,
    min_cell: int,
) -> ThresholdChoice:
    """The threshold the bias audit applies for ``role``.

    As :func:`fusion.evaluation.performance.performance_threshold`, for the groups of ``by``.

    A researcher's cut points are those of the performance view between which every group of
    ``by`` (suppressed ones included) has no or at least ``min_cell`` events and non-events,
    so neither a group's nor the whole split's counts at two allowed thresholds differ by a
    small count. They are nested: the cut points of ``by`` are among those of every audit of
    fewer of its attributes, so two audits of different attributes at two thresholds give away
    no more than one audit at both. Pass
    :attr:`fusion.evaluation.disclosure.ThresholdChoice.curve_cuts` to :func:`group_curves`.

    Parameters
    ----------
    frame : DataFrame
        The split frame (``label``, risk columns and the attributes ``by``).
    by : sequence of str
        The audit's attributes.
    requested, role, default, min_cell
        As :func:`fusion.evaluation.performance.performance_threshold`.

    Returns
    -------
    ThresholdChoice
    """
    if role != "researcher":
        return choose_threshold(requested, None, default=default, min_cell=min_cell)
    overall = performance_threshold(frame, requested, role=role, default=default, min_cell=min_cell)
    cuts = _audit_cuts(
        frame, tuple(by), overall.curve_cuts or (), default=default, min_cell=min_cell
    )
    return choose_threshold(requested, cuts, default=default, min_cell=min_cell)


def _audit_cuts(
    frame: pd.DataFrame,
    by: tuple[str, ...],
    overall: Sequence[float],
    *,
    default: float,
    min_cell: int,
) -> tuple[float, ...]:
    """Cut points of the audit by ``by``, among those of each audit of one attribute fewer."""
    if not by:
        return tuple(overall)
    candidates = set(overall)
    for dropped in by:
        fewer = tuple(name for name in by if name != dropped)
        candidates &= set(_audit_cuts(frame, fewer, overall, default=default, min_cell=min_cell))
    codes = group_labels(frame, by).factorize()[0]
    cuts = allowed_thresholds(
        frame["label"].to_numpy(dtype=np.int64),
        [frame["risk"].to_numpy(dtype=np.float64)],
        min_cell=min_cell,
        threshold=default,
        groups=codes,
        candidates=sorted(candidates),
    )
    return tuple(float(cut) for cut in cuts)
