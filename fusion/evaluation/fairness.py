"""Bias audit: group metrics with bootstrap CIs, signed disparities, honest flags, suppression.

Owns :func:`audit` and :class:`FairnessReport`: per-group confusion-matrix rates, AUROC, Brier
score and calibration-in-the-large, each with a percentile bootstrap 95% confidence interval
(:mod:`fusion.evaluation.bootstrap`), signed differences against a reference group with
multiplicity-adjusted flags and minimum detectable differences (:mod:`fusion.evaluation.flags`)
and CMS-style small-cell suppression (:mod:`fusion.evaluation.suppression`). The tables built from
a report live in :mod:`fusion.evaluation.audit_tables`. No SQL, no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation import audit_tables
from fusion.evaluation.bootstrap import (
    METRICS,
    check_outcomes,
    divide_or_nan,
    group_metrics,
    percentile_bounds,
)
from fusion.evaluation.complementary import audit_masks
from fusion.evaluation.flags import (
    DEFAULT_ALPHA,
    DEFAULT_FLAG_METHOD,
    DEFAULT_MARGIN,
    TESTED_METRICS,
    FlagMethod,
    adjust_pvalues,
    check_flag_settings,
    comparison_states,
    delong_variance,
    minimum_detectable,
    wald_differences,
)
from fusion.evaluation.groups import group_codes, group_table
from fusion.evaluation.suppression import SUPPRESSED

__all__ = [
    "DIFF_SUFFIXES",
    "FairnessReport",
    "audit",
]

DIFF_SUFFIXES: tuple[str, ...] = ("", "_low", "_high", "_flag", "_p", "_p_adjusted", "_mdd")
"""Columns of ``difference`` per metric (besides ``_state``), hidden together."""


@dataclass(frozen=True, slots=True)
class FairnessReport:
    """Outcome of :func:`audit`.

    Attributes
    ----------
    by_group : DataFrame
        One row per group (index: group label). Columns: the attribute values, ``n``, then
        for each metric in :data:`fusion.evaluation.bootstrap.METRICS` the point estimate,
        ``<metric>_low`` and ``<metric>_high``, and ``suppressed`` (bool). Suppressed rows
        hold NaN in every numeric cell, ``n`` included.
    difference : DataFrame
        Same index. For each metric the signed ``<metric> - reference``, its normal CI on the
        paired-bootstrap standard error (``_low``/``_high``, level ``1 - alpha``), the raw and
        adjusted two-sided p-values (``_p``, ``_p_adjusted``), the minimum detectable
        difference (``_mdd``), ``_flag`` (adjusted p < alpha) and ``_state`` (a key of
        :data:`fusion.evaluation.flags.STATES`); prevalence is shown but not tested. Plus
        ``equalized_odds`` = max(|dTPR|, |dFPR|) with its percentile CI and flag (TPR or FPR
        flagged), and ``suppressed``.
    ratio : DataFrame
        Same index: ``<metric> / reference`` with its percentile CI, and ``suppressed``.
    summary : DataFrame
        Rows ``demographic_parity_difference`` (selection rate) and
        ``equalized_odds_difference`` (TPR and FPR). ``value``: fairlearn's between-groups
        max - min over the shown groups (descriptive, no CI; NaN with fewer than two groups);
        ``group``, ``metric``, ``difference``, ``low``, ``high``, ``p_adjusted``, ``flagged``:
        the largest signed difference from the reference among those metrics, so the summary
        is one of the flagged-or-not comparisons of the table.
    attributes : tuple of str
        The sensitive attributes (one group per observed combination).
    threshold : float
        Risk at or above which a patient is flagged.
    reference : str
        Label of the reference group.
    n_resamples, random_state, min_cell : int
        Bootstrap resamples, their seed and the smallest group shown.
    n_total : int
        Patients in the audit.
    hidden : DataFrame of bool
        Same index; one column per column of :meth:`table` that a shown group may still hide
        (``<metric>``, ``<metric>_low``, ``<metric>_high`` and ``diff_<metric>`` with every
        suffix of :data:`DIFF_SUFFIXES`): True where the cell would give away a count under
        ``min_cell`` (:func:`fusion.evaluation.suppression.rate_masks`). Those cells hold NaN in
        ``by_group``, ``difference`` and ``ratio``.
    method : {"holm", "bh"}
        Multiplicity adjustment of the flags.
    alpha, margin : float
        Level of the flags and CIs; the smallest difference that matters.
    n_comparisons : int
        Tests adjusted together (shown, non-reference groups x tested metrics with a p-value).
    """

    by_group: pd.DataFrame
    difference: pd.DataFrame
    ratio: pd.DataFrame
    summary: pd.DataFrame
    attributes: tuple[str, ...]
    threshold: float
    reference: str
    n_resamples: int
    random_state: int
    min_cell: int
    n_total: int
    hidden: pd.DataFrame = field(default_factory=pd.DataFrame)
    method: FlagMethod = DEFAULT_FLAG_METHOD
    alpha: float = DEFAULT_ALPHA
    margin: float = DEFAULT_MARGIN
    n_comparisons: int = 0

    @property
    def marker(self) -> str:
        """The text shown in suppressed cells."""
        return SUPPRESSED.format(min_cell=self.min_cell)

    @property
    def n_flagged(self) -> int:
        """Comparisons flagged after adjustment."""
        return int(self.difference[[f"{m}_flag" for m in TESTED_METRICS]].to_numpy().sum())

    @property
    def nothing_compared(self) -> str | None:
        """Why no difference could be tested, or None when at least one was."""
        return audit_tables.nothing_compared(self)

    def table(self, *, as_text: bool = False) -> pd.DataFrame:
        """The metrics table, one row per group (:func:`audit_tables.metrics_table`)."""
        return audit_tables.metrics_table(self, as_text=as_text)

    def comparisons(self) -> pd.DataFrame:
        """One row per tested difference (:func:`audit_tables.comparisons_table`)."""
        return audit_tables.comparisons_table(self)

    def group_states(self) -> pd.DataFrame:
        """One row per group with its state (:func:`audit_tables.group_states`)."""
        return audit_tables.group_states(self)


def _spread(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Max - min over the last axis, NaNs left out; NaN where fewer than two values."""
    out = np.full(values.shape[:-1], np.nan)
    valid = (~np.isnan(values)).sum(axis=-1) >= 2
    if values.shape[-1] and valid.any():
        picked = values[valid]
        out[valid] = np.nanmax(picked, axis=-1) - np.nanmin(picked, axis=-1)
    return out


def _summary(
    point: dict[str, npt.NDArray[np.float64]],
    difference: pd.DataFrame,
    shown: npt.NDArray[np.bool_],
    *,
    ref: int,
) -> pd.DataFrame:
    """Between-group spreads and the largest signed difference behind each (see the report)."""
    rows = {}
    for row, parts in (
        ("demographic_parity_difference", ("selection_rate",)),
        ("equalized_odds_difference", ("tpr", "fpr")),
    ):
        value = np.fmax.reduce([_spread(point[m][shown]) for m in parts])
        entry: dict[str, object] = {"value": float(value), "group": "", "metric": ""}
        entry |= dict.fromkeys(("difference", "low", "high", "p_adjusted"), np.nan)
        entry["flagged"] = False
        best = -1.0
        for metric in parts:
            gaps = difference[metric].to_numpy(dtype=np.float64).copy()
            gaps[~shown] = np.nan
            gaps[ref] = np.nan
            if np.isnan(gaps).all():
                continue
            k = int(np.nanargmax(np.abs(gaps)))
            if abs(gaps[k]) > best:
                best = abs(gaps[k])
                entry |= {
                    "group": str(difference.index[k]),
                    "metric": metric,
                    "difference": float(gaps[k]),
                    "low": float(difference[f"{metric}_low"].iloc[k]),
                    "high": float(difference[f"{metric}_high"].iloc[k]),
                    "p_adjusted": float(difference[f"{metric}_p_adjusted"].iloc[k]),
                    "flagged": bool(difference[f"{metric}_flag"].iloc[k]),
                }
        rows[row] = entry
    return pd.DataFrame.from_dict(rows, orient="index")


def audit(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    sensitive_features: pd.DataFrame,
    *,
    threshold: float,
    reference: str | None = None,
    n_resamples: int = 200,
    random_state: int = 0,
    min_cell: int = 11,
    scope: pd.DataFrame | None = None,
    method: str = DEFAULT_FLAG_METHOD,
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
) -> FairnessReport:
    """Audit a risk model's performance per group of one to three sensitive attributes.

    Groups are the observed combinations of the attributes (their intersection when there
    are several; unused categories of a categorical column appear with ``n = 0``). For each
    group: n, prevalence, AUROC, TPR, FPR, PPV, NPV, selection rate, Brier score and
    calibration-in-the-large (mean risk - prevalence), each with a percentile bootstrap 95% CI
    over resamples of the whole population. Disparities are the signed ``metric(group) -
    metric(reference)`` and ``metric(group) / metric(reference)``, from paired resamples. Each
    difference of a tested metric (all but prevalence) gets a two-sided Wald p-value on its
    bootstrap standard error and the matching ``1 - alpha`` CI (raw p < alpha exactly when the CI
    excludes 0); the p-values of every shown comparison are adjusted together (``method``), a
    difference is flagged when its adjusted p-value is below ``alpha``, and an unflagged one
    whose minimum detectable difference (80% power at ``alpha / m``) exceeds ``margin`` is
    "insufficient evidence" (:mod:`fusion.evaluation.flags`). The equalized-odds difference of
    a group is ``max(|TPR_g - TPR_ref|, |FPR_g - FPR_ref|)``, flagged where TPR or FPR is; the
    summary gives fairlearn's between-groups demographic-parity and equalized-odds differences
    over the shown groups and, beside each, the largest signed difference behind it.

    Small-cell suppression (CMS practice, :func:`fusion.evaluation.groups.group_table`): a group
    with ``n < min_cell`` is not shown, and complementary groups are suppressed too, so that no
    suppressed size follows from the total or from any other audit of the ``scope``
    attributes (:mod:`fusion.evaluation.complementary`). Suppressed groups are left out of
    the summary.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    sensitive_features : DataFrame of shape (n_samples, n_attributes)
        One to three attribute columns (e.g. ``sex``, ``ethnicity``), no missing values.
    threshold : float
        Rows with ``risk >= threshold`` are flagged.
    reference : str, optional
        Label of the reference group (attribute values joined by ``" & "``, e.g.
        ``"F & White"``); default the largest shown group.
    n_resamples : int, default=200
        Bootstrap resamples (0: no intervals).
    random_state : int, default=0
        Seed of the resampling; equal seeds give equal reports.
    min_cell : int, default=11
        Smallest group size shown individually.
    scope : DataFrame of shape (n_samples, n_scope), optional
        Every attribute a reader may audit by (``sensitive_features``' among them): groups and
        rates are suppressed across every audit of them at once
        (:mod:`fusion.evaluation.complementary`); default ``sensitive_features``.
    method : {"holm", "bh"}, default="holm"
        Multiplicity adjustment across every comparison shown: Holm (family-wise error) or
        Benjamini-Hochberg (false discovery rate).
    alpha : float, default=0.05
        Level of the flags (after adjustment) and of the difference CIs.
    margin : float, default=0.05
        Smallest difference that matters, on each metric's scale: an unflagged comparison whose
        minimum detectable difference exceeds it is "insufficient evidence".

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValueError
        If the inputs disagree in length, labels are not 0/1, risks are not probabilities,
        ``reference`` is unknown or suppressed, every group is suppressed, an attribute is
        not recorded for anyone, or a flag setting is invalid.
    TypeError
        If ``sensitive_features`` is not a DataFrame.

    Examples
    --------
    >>> import pandas as pd
    >>> report = audit([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4],
    ...                pd.DataFrame({"sex": ["F", "F", "M", "M"]}),
    ...                threshold=0.5, n_resamples=0, min_cell=0)
    >>> report.by_group["tpr"].tolist(), report.difference.loc["M", "tpr"]
    ([1.0, 0.0], np.float64(-1.0))
    """
    y, r = check_outcomes(y_true, risk)
    method = check_flag_settings(method, alpha, margin)
    if min_cell < 0:
        raise ValueError(f"min_cell={min_cell}; pass 0 (no suppression) or a positive size.")
    codes, groups = group_codes(sensitive_features, len(y))
    attributes = tuple(str(c) for c in sensitive_features.columns)
    point, draws = group_metrics(
        y,
        r,
        codes,
        threshold=threshold,
        n_groups=len(groups),
        n_resamples=n_resamples,
        random_state=random_state,
    )
    labels = groups.index
    scope = sensitive_features if scope is None else scope
    table = group_table(sensitive_features, min_cell=min_cell, scope=scope)
    hidden: npt.NDArray[np.bool_] = table["suppressed"].to_numpy(dtype=bool)
    if hidden.all():
        raise ValueError(
            f"Every group has fewer than {min_cell} patients (or is suppressed to protect "
            "one that has); audit fewer attributes or lower min_cell."
        )
    if reference is None:
        sizes = np.where(hidden, -1, groups["n_rows"].to_numpy())
        ref = int(np.argmax(sizes))
    else:
        if reference not in labels:
            raise ValueError(
                f"Unknown reference group {reference!r}; groups are {labels.tolist()}."
            )
        ref = labels.tolist().index(reference)
        if hidden[ref]:
            raise ValueError(
                f"Reference group {reference!r} is suppressed (n < {min_cell}); choose "
                "a larger group."
            )

    flagged = (r >= threshold).astype(np.intp)
    metric_hidden = audit_masks(groups[list(attributes)], scope, y, flagged, min_cell=min_cell)
    for name in METRICS:
        mask = metric_hidden[name].to_numpy()
        point[name] = np.where(mask, np.nan, point[name])
        draws[name] = np.where(mask, np.nan, draws[name])

    # A difference or ratio gives the group's metric back from the reference's (and the
    # reference's from the group's): hide it where either is hidden, and never test it.
    shown = ~hidden
    paired: dict[str, npt.NDArray[np.bool_]] = {}
    for name in METRICS:
        own = metric_hidden[name].to_numpy()
        paired[name] = own | own[ref] | hidden
    # Columns are gathered as arrays and framed once (column-by-column inserts into a frame
    # with a string index cost about a second per audit).
    group_cols: dict[str, npt.NDArray[np.generic]] = {"n": point["n"]}
    diff_cols: dict[str, npt.NDArray[np.generic]] = {}
    ratio_cols: dict[str, npt.NDArray[np.generic]] = {}
    tests = {}
    auroc_var = delong_variance(y, r, codes, len(groups))
    for name in METRICS:
        group_cols[name] = point[name]
        group_cols[f"{name}_low"], group_cols[f"{name}_high"] = percentile_bounds(draws[name])
        diff_draws = draws[name] - draws[name][:, [ref]]
        diff = np.where(paired[name], np.nan, point[name] - point[name][ref])
        # AUROC: never below DeLong's error of the difference of two independent groups.
        floor = np.sqrt(auroc_var + auroc_var[ref]) if name == "auroc" else None
        tested = diff.copy()
        tested[ref] = np.nan  # the reference is not compared with itself
        se, low, high, p = wald_differences(tested, diff_draws, alpha=alpha, min_se=floor)
        if name not in TESTED_METRICS:
            p = np.full_like(p, np.nan)
        tests[name] = (se, p)
        diff_cols[name] = diff
        diff_cols[f"{name}_low"], diff_cols[f"{name}_high"] = low, high
        ref_point = np.full_like(point[name], point[name][ref])
        ratio_cols[name] = divide_or_nan(point[name], ref_point, signed=True)
        ref_draws = np.broadcast_to(draws[name][:, [ref]], diff_draws.shape)
        ratio_draws = divide_or_nan(draws[name], ref_draws, signed=True)
        ratio_cols[f"{name}_low"], ratio_cols[f"{name}_high"] = percentile_bounds(ratio_draws)
        for suffix in ("", "_low", "_high"):
            column = f"{name}{suffix}"
            ratio_cols[column] = np.where(paired[name], np.nan, ratio_cols[column])

    # Every test shown is one family: adjust across all of them at once.
    raw = np.stack([tests[name][1] for name in METRICS], axis=1)
    adjusted = adjust_pvalues(raw, method)
    n_comparisons = int(np.isfinite(raw).sum())
    for k, name in enumerate(METRICS):
        se, p = tests[name]
        mdd = minimum_detectable(se, alpha=alpha, n_comparisons=n_comparisons)
        flag = adjusted[:, k] < alpha
        diff_cols[f"{name}_flag"] = flag
        diff_cols[f"{name}_p"] = p
        diff_cols[f"{name}_p_adjusted"] = adjusted[:, k]
        diff_cols[f"{name}_mdd"] = np.where(np.isfinite(p), mdd, np.nan)
        diff_cols[f"{name}_state"] = comparison_states(
            flag, diff_cols[f"{name}_mdd"], adjusted[:, k], margin=margin
        )

    def odds(values: dict[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        tpr, fpr = values["tpr"], values["fpr"]
        gap: npt.NDArray[np.float64] = np.fmax(
            np.abs(tpr - tpr[..., [ref]]), np.abs(fpr - fpr[..., [ref]])
        )
        return gap

    odds_hidden = paired["tpr"] | paired["fpr"]
    diff_cols["equalized_odds"] = np.where(odds_hidden, np.nan, odds(point))
    low, high = percentile_bounds(odds(draws))
    diff_cols["equalized_odds_low"] = np.where(odds_hidden, np.nan, low)
    diff_cols["equalized_odds_high"] = np.where(odds_hidden, np.nan, high)
    # |gap| is never below 0, so its own CI cannot test parity: flag through TPR and FPR.
    diff_cols["equalized_odds_flag"] = np.logical_or(diff_cols["tpr_flag"], diff_cols["fpr_flag"])

    difference = pd.DataFrame(diff_cols, index=labels)
    summary = _summary(point, difference, shown, ref=ref)

    cell_hidden: dict[str, npt.NDArray[np.bool_]] = {}
    for name in METRICS:
        own = metric_hidden[name].to_numpy()
        for suffix in ("", "_low", "_high"):
            cell_hidden[f"{name}{suffix}"] = own & shown
        for suffix in DIFF_SUFFIXES:
            cell_hidden[f"diff_{name}{suffix}"] = paired[name] & shown
    for suffix in ("", "_low", "_high", "_flag"):
        cell_hidden[f"diff_equalized_odds{suffix}"] = odds_hidden & shown

    frames = []
    for columns in (group_cols, diff_cols, ratio_cols):
        for column, values in columns.items():
            if column.endswith("_flag"):
                columns[column] = np.where(hidden, False, values)
            elif not column.endswith("_state"):
                columns[column] = np.where(hidden, np.nan, values)
        columns["suppressed"] = hidden
        frames.append(pd.DataFrame(columns, index=labels))
    by_group = pd.concat([groups[list(attributes)], frames[0]], axis=1)
    difference, ratio = frames[1], frames[2]
    return FairnessReport(
        by_group=by_group,
        difference=difference,
        ratio=ratio,
        summary=summary,
        attributes=attributes,
        threshold=float(threshold),
        reference=str(labels[ref]),
        n_resamples=n_resamples,
        random_state=random_state,
        min_cell=min_cell,
        n_total=len(y),
        hidden=pd.DataFrame(cell_hidden, index=labels),
        method=method,
        alpha=float(alpha),
        margin=float(margin),
        n_comparisons=n_comparisons,
    )
