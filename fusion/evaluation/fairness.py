"""Bias audit: group metrics with bootstrap CIs, disparities and small-cell suppression.

Owns :func:`audit` and :class:`FairnessReport`: per-group confusion-matrix rates, AUROC, Brier
score and calibration-in-the-large, each with a percentile bootstrap 95% confidence interval
(:mod:`fusion.evaluation.bootstrap`), disparities against a reference group and CMS-style
small-cell suppression (:mod:`fusion.evaluation.suppression`). No SQL, no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.bootstrap import (
    METRICS,
    check_outcomes,
    divide_or_nan,
    group_metrics,
    percentile_bounds,
)
from fusion.evaluation.complementary import audit_masks
from fusion.evaluation.groups import group_codes, group_table
from fusion.evaluation.suppression import SUPPRESSED

__all__ = [
    "FairnessReport",
    "audit",
]


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
        Same index. For each metric ``<metric> - reference``, its paired-bootstrap CI
        (``_low``/``_high``) and ``<metric>_flag`` (True where the CI excludes 0), plus the
        same four columns for ``equalized_odds`` = max(|dTPR|, |dFPR|) and ``suppressed``.
    ratio : DataFrame
        Same index: ``<metric> / reference`` with its CI, and ``suppressed``.
    summary : DataFrame
        Rows ``demographic_parity_difference`` (max - min selection rate) and
        ``equalized_odds_difference`` (the larger of max - min TPR and max - min FPR) over the
        shown groups; columns ``value, low, high``.
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
        (``<metric>``, ``<metric>_low``, ``<metric>_high`` and ``diff_`` of each, with the
        flag): True where the cell would give away a count under ``min_cell``
        (:func:`fusion.evaluation.suppression.rate_masks`). Those cells hold NaN in
        ``by_group``, ``difference`` and ``ratio``.
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

    @property
    def marker(self) -> str:
        """The text shown in suppressed cells."""
        return SUPPRESSED.format(min_cell=self.min_cell)

    def table(self, *, as_text: bool = False) -> pd.DataFrame:
        """The metrics table for display and export: suppressed cells carry the marker.

        One row per group: attribute values, ``n``, each metric with its CI, the difference
        from the reference with its CI and flag, and ``equalized_odds``. Numeric cells of
        suppressed groups are replaced by :attr:`marker`, so no exported cell shows them.

        Parameters
        ----------
        as_text : bool, default=False
            Format every cell as text (3 decimals, ``n`` whole, NaN empty, flags ``yes``),
            for tables whose columns must have one type.
        """
        diff = self.difference.drop(columns="suppressed").add_prefix("diff_")
        frame = self.by_group.drop(columns="suppressed").join(diff)
        frame.insert(0, "group", frame.index)
        frame.insert(1, "reference", frame.index == self.reference)
        out = frame.astype(object)
        hidden = [c for c in out.columns if c not in ("group", "reference", *self.attributes)]
        if as_text:
            for column in out.columns:
                out[column] = [_text(value, whole=column == "n") for value in out[column]]
        out.loc[self.by_group["suppressed"].to_numpy(), hidden] = self.marker
        for column in self.hidden.columns:
            if column in out.columns:
                out.loc[self.hidden[column].to_numpy(dtype=bool), column] = self.marker
        return out.reset_index(drop=True)


def _text(value: object, *, whole: bool = False) -> str:
    """One table cell as text: floats to 3 decimals (or whole), NaN empty, True ``yes``."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.0f}" if whole else f"{value:.3f}"
    return str(value)


def _spread(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Max - min over the last axis, NaNs left out; NaN where every value is NaN."""
    out = np.full(values.shape[:-1], np.nan)
    valid = ~np.isnan(values).all(axis=-1)
    if values.shape[-1] and valid.any():
        picked = values[valid]
        out[valid] = np.nanmax(picked, axis=-1) - np.nanmin(picked, axis=-1)
    return out


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
) -> FairnessReport:
    """Audit a risk model's performance per group of one to three sensitive attributes.

    Groups are the observed combinations of the attributes (their intersection when there
    are several; unused categories of a categorical column appear with ``n = 0``). For each
    group: n, prevalence, AUROC, TPR, FPR, PPV, NPV, selection rate, Brier score and
    calibration-in-the-large (mean risk - prevalence), each with a percentile bootstrap 95% CI
    over resamples of the whole population. Disparities are ``metric(group) -
    metric(reference)`` and ``metric(group) / metric(reference)`` with paired-bootstrap CIs;
    a difference is flagged when its CI excludes 0. The equalized-odds difference of a group
    is ``max(|TPR_g - TPR_ref|, |FPR_g - FPR_ref|)``; the summary gives fairlearn's
    between-groups demographic-parity and equalized-odds differences over the shown groups.

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

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValueError
        If the inputs disagree in length, labels are not 0/1, risks are not probabilities,
        ``reference`` is unknown or suppressed, or every group is suppressed.
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
    hidden = table["suppressed"].to_numpy()
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

    by_group = groups[list(attributes)].copy()
    by_group["n"] = point["n"]
    difference = pd.DataFrame(index=labels)
    ratio = pd.DataFrame(index=labels)
    for name in METRICS:
        by_group[name] = point[name]
        by_group[f"{name}_low"], by_group[f"{name}_high"] = percentile_bounds(draws[name])
        diff_draws = draws[name] - draws[name][:, [ref]]
        difference[name] = point[name] - point[name][ref]
        low, high = percentile_bounds(diff_draws)
        difference[f"{name}_low"], difference[f"{name}_high"] = low, high
        difference[f"{name}_flag"] = (low > 0) | (high < 0)
        ref_point = np.full_like(point[name], point[name][ref])
        ratio[name] = divide_or_nan(point[name], ref_point, signed=True)
        ref_draws = np.broadcast_to(draws[name][:, [ref]], diff_draws.shape)
        ratio_draws = divide_or_nan(draws[name], ref_draws, signed=True)
        ratio[f"{name}_low"], ratio[f"{name}_high"] = percentile_bounds(ratio_draws)

    def odds(values: dict[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        tpr, fpr = values["tpr"], values["fpr"]
        gap: npt.NDArray[np.float64] = np.fmax(
            np.abs(tpr - tpr[..., [ref]]), np.abs(fpr - fpr[..., [ref]])
        )
        return gap

    difference["equalized_odds"] = odds(point)
    low, high = percentile_bounds(odds(draws))
    difference["equalized_odds_low"], difference["equalized_odds_high"] = low, high
    # |gap| is never below 0, so its own CI cannot test parity: flag through TPR and FPR.
    difference["equalized_odds_flag"] = difference["tpr_flag"] | difference["fpr_flag"]

    shown = ~hidden
    summary_rows = {}
    for row, parts in (
        ("demographic_parity_difference", ("selection_rate",)),
        ("equalized_odds_difference", ("tpr", "fpr")),
    ):
        value = np.fmax.reduce([_spread(point[m][shown]) for m in parts])
        samples = np.fmax.reduce([_spread(draws[m][:, shown]) for m in parts])
        low, high = percentile_bounds(samples[:, None])
        summary_rows[row] = {"value": float(value), "low": float(low[0]), "high": float(high[0])}
    summary = pd.DataFrame.from_dict(summary_rows, orient="index")

    # A difference or ratio gives the group's metric back from the reference's (and the
    # reference's from the group's): hide it where either is hidden.
    cell_hidden: dict[str, npt.NDArray[np.bool_]] = {}
    for name in METRICS:
        own = metric_hidden[name].to_numpy()
        paired = own | own[ref]
        for suffix in ("", "_low", "_high"):
            cell_hidden[f"{name}{suffix}"] = own & ~hidden
            cell_hidden[f"diff_{name}{suffix}"] = paired & ~hidden
            for frame in (difference, ratio):
                frame.loc[paired, f"{name}{suffix}"] = np.nan
        difference.loc[paired, f"{name}_flag"] = False
        cell_hidden[f"diff_{name}_flag"] = paired & ~hidden
    odds_hidden = cell_hidden["diff_tpr"] | cell_hidden["diff_fpr"]
    for suffix in ("", "_low", "_high", "_flag"):
        column = f"equalized_odds{suffix}"
        difference.loc[odds_hidden, column] = False if suffix == "_flag" else np.nan
        cell_hidden[f"diff_{column}"] = odds_hidden

    for frame in (by_group, difference, ratio):
        numeric = [c for c in frame.columns if c not in attributes and not c.endswith("_flag")]
        frame.loc[hidden, numeric] = np.nan
        flags = [c for c in frame.columns if c.endswith("_flag")]
        frame.loc[hidden, flags] = False
        frame["suppressed"] = hidden
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
    )
