"""Bias audit: group metrics with bootstrap CIs, disparities and small-cell suppression.

Owns the fairness maths on arrays and DataFrames: per-group confusion-matrix rates, AUROC, Brier
score and calibration-in-the-large, each with a percentile bootstrap 95% confidence interval,
disparities against a reference group and CMS-style small-cell suppression. No SQL, no
streamlit.

The bootstrap is vectorised: rows are sorted once by (group, risk); each chunk of resamples is
a matrix of per-row draw counts (shape ``(n_resamples, n_samples)``), and every group statistic,
AUROC included (Mann-Whitney U on the weighted, tie-blocked rows), is a ``np.add.reduceat`` over
that matrix. The point estimate is the same computation with all weights 1, so the numbers in
the table and their intervals come from one code path. A group that vanishes or has one class
in a resample contributes NaN to that resample, and NaNs are left out of the percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "METRICS",
    "SUPPRESSED",
    "FairnessReport",
    "audit",
    "calibration_by_group",
    "group_metrics",
    "group_table",
    "suppress_cells",
    "suppression_mask",
]

METRICS: tuple[str, ...] = (
    "prevalence",
    "auroc",
    "tpr",
    "fpr",
    "ppv",
    "npv",
    "selection_rate",
    "brier",
    "calibration_in_the_large",
)
"""Per-group metrics, in table order (``n`` comes first and has no interval)."""

SUPPRESSED = "suppressed (n < {min_cell})"
"""Marker shown instead of a suppressed cell, formatted with ``min_cell``."""

# Differences against the reference: rates whose gap is a disparity.
DISPARITY_METRICS: tuple[str, ...] = METRICS
# Cells of (resamples x rows) drawn per chunk: bounds memory to ~100 MB whatever the size.
_CHUNK_CELLS = 4_000_000
MAX_ATTRIBUTES = 3


@dataclass(frozen=True, slots=True)
class FairnessReport:
    """Outcome of :func:`audit`.

    Attributes
    ----------
    by_group : DataFrame
        One row per group (index: group label). Columns: the attribute values, ``n``, then for
        each metric in :data:`METRICS` the point estimate, ``<metric>_low`` and
        ``<metric>_high``, and ``suppressed`` (bool). Suppressed rows hold NaN in every
        numeric cell, ``n`` included.
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
        return out.reset_index(drop=True)


def _text(value: object, *, whole: bool = False) -> str:
    """One table cell as text: floats to 3 decimals (or whole), NaN empty, True ``yes``."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.0f}" if whole else f"{value:.3f}"
    return str(value)


def _as_arrays(
    y_true: npt.ArrayLike, risk: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    y = np.asarray(y_true, dtype=np.float64)
    r = np.asarray(risk, dtype=np.float64)
    if y.ndim != 1 or y.shape != r.shape:
        raise ValueError(f"y_true {y.shape} and risk {r.shape} must be 1-D of equal length.")
    if len(y) and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y_true must hold 0/1 labels; got values {np.unique(y)[:5].tolist()}.")
    if len(r) and (not np.isfinite(r).all() or r.min() < 0 or r.max() > 1):
        raise ValueError("risk must hold finite probabilities in [0, 1].")
    return y, r


def _divide(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], *, signed: bool = False
) -> npt.NDArray[np.float64]:
    """``num / den`` with NaN where the denominator is 0 (or, unless ``signed``, negative)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) if signed else (den > 0))
    return out


def _stats(
    weights: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    risk: npt.NDArray[np.float64],
    flagged: npt.NDArray[np.float64],
    group_starts: npt.NDArray[np.intp],
    block_starts: npt.NDArray[np.intp],
    block_group: npt.NDArray[np.intp],
) -> dict[str, npt.NDArray[np.float64]]:
    """Every metric per (resample, group) from row weights of shape (R, N).

    Rows must be sorted by (group, risk); ``group_starts`` and ``block_starts`` (tie blocks
    of equal risk within a group) index the first row of each non-empty run.
    """

    def per_group(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        summed: npt.NDArray[np.float64] = np.add.reduceat(values, group_starts, axis=1)
        return summed

    n = per_group(weights)
    positive_w = weights * y
    negative_w = weights - positive_w
    pos = per_group(positive_w)
    pred = per_group(weights * flagged)
    tp = per_group(positive_w * flagged)
    neg = n - pos
    fp = pred - tp
    tn = neg - fp
    # AUROC: Mann-Whitney U over tie blocks; negatives strictly below + half the tied ones.
    block_pos = np.add.reduceat(positive_w, block_starts, axis=1)
    block_neg = np.add.reduceat(negative_w, block_starts, axis=1)
    cum_neg = np.cumsum(block_neg, axis=1)
    first_block = np.searchsorted(block_group, np.arange(len(group_starts)))
    before_group = np.where(first_block > 0, cum_neg[:, np.maximum(first_block - 1, 0)], 0.0)
    below = cum_neg - block_neg - before_group[:, block_group]
    u = np.add.reduceat(block_pos * (below + 0.5 * block_neg), first_block, axis=1)
    return {
        "n": n,
        "prevalence": _divide(pos, n),
        "auroc": _divide(u, pos * neg),
        "tpr": _divide(tp, pos),
        "fpr": _divide(fp, neg),
        "ppv": _divide(tp, pred),
        "npv": _divide(tn, n - pred),
        "selection_rate": _divide(pred, n),
        "brier": _divide(per_group(weights * (risk - y) ** 2), n),
        "calibration_in_the_large": _divide(per_group(weights * risk) - pos, n),
    }


def _percentiles(samples: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """2.5th and 97.5th percentiles per column, NaNs left out; all-NaN columns give NaN."""
    low = np.full(samples.shape[1:], np.nan)
    high = low.copy()
    valid = ~np.isnan(samples).all(axis=0)
    if valid.any():
        low[valid], high[valid] = np.nanpercentile(samples[:, valid], [2.5, 97.5], axis=0)
    return low, high


def _group_codes(
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
    labels = groups[columns].astype(str).agg(" & ".join, axis=1)
    groups.index = pd.Index(labels, name="group")
    return codes, groups


def group_metrics(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    threshold: float,
    n_groups: int | None = None,
    n_resamples: int = 0,
    random_state: int = 0,
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, npt.NDArray[np.float64]]]:
    """Point estimates and bootstrap draws of every metric for integer-coded groups.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    groups : array-like of int of shape (n_samples,)
        Group code per row, ``0 .. n_groups - 1``; codes without rows give NaN metrics.
    threshold : float
        Rows with ``risk >= threshold`` are flagged (predicted positive).
    n_groups : int, optional
        Number of groups (default ``max(groups) + 1``); codes without rows give ``n = 0``.
    n_resamples : int, default=0
        Bootstrap resamples of the whole population (groups vary in size, and may vanish).
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    point : dict of str to ndarray of shape (n_groups,)
        ``n`` and every metric in :data:`METRICS`.
    draws : dict of str to ndarray of shape (n_resamples, n_groups)
        The same per resample; NaN where a group vanished or lacks a class.

    Examples
    --------
    >>> point, _ = group_metrics([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4], [0, 0, 1, 1], threshold=0.5)
    >>> point["tpr"].tolist(), point["auroc"].tolist()
    ([1.0, 0.0], [1.0, 0.0])
    """
    y, r = _as_arrays(y_true, risk)
    codes = np.asarray(groups, dtype=np.intp)
    if codes.shape != y.shape:
        raise ValueError(f"groups {codes.shape} must match y_true {y.shape}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; pass a risk in [0, 1].")
    if n_resamples < 0:
        raise ValueError(f"n_resamples={n_resamples}; pass 0 (no CI) or more.")
    if n_groups is None:
        n_groups = int(codes.max()) + 1 if len(codes) else 0
    if len(codes) and (codes.min() < 0 or codes.max() >= n_groups):
        raise ValueError(
            f"groups must be codes in [0, {n_groups}); got {codes.min()}..{codes.max()}."
        )
    present = np.unique(codes)
    order = np.lexsort((r, codes))
    y, r, codes = y[order], r[order], codes[order]
    flagged = (r >= threshold).astype(np.float64)
    # Non-empty groups are compacted for reduceat, then put back at their codes.
    compact = np.searchsorted(present, codes)
    group_starts = np.flatnonzero(np.r_[True, compact[1:] != compact[:-1]]) if len(y) else None
    new_block = np.r_[True, (compact[1:] != compact[:-1]) | (r[1:] != r[:-1])]
    block_starts = np.flatnonzero(new_block)
    block_group = compact[block_starts]

    def expand(stats: dict[str, npt.NDArray[np.float64]]) -> dict[str, npt.NDArray[np.float64]]:
        out = {}
        for name, values in stats.items():
            full = np.full((values.shape[0], n_groups), 0.0 if name == "n" else np.nan)
            full[:, present] = values
            out[name] = full
        return out

    names = ("n", *METRICS)
    if group_starts is None:
        empty = {name: np.full(n_groups, np.nan) for name in names}
        return empty, {name: np.full((n_resamples, n_groups), np.nan) for name in names}
    args = (y, r, flagged, group_starts, block_starts, block_group)
    point = {k: v[0] for k, v in expand(_stats(np.ones((1, len(y))), *args)).items()}
    rng = np.random.default_rng(random_state)
    size = len(y)
    per_chunk = max(1, _CHUNK_CELLS // size)
    chunks: list[dict[str, npt.NDArray[np.float64]]] = []
    for start in range(0, n_resamples, per_chunk):
        count = min(per_chunk, n_resamples - start)
        draws = rng.integers(0, size, (count, size))
        draws += np.arange(count)[:, None] * size
        weights = np.bincount(draws.ravel(), minlength=count * size).reshape(count, size)
        chunks.append(expand(_stats(weights.astype(np.float64), *args)))
    samples = {
        name: (
            np.concatenate([c[name] for c in chunks]) if chunks else np.full((0, n_groups), np.nan)
        )
        for name in names
    }
    return point, samples


def _spread(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Max - min over the last axis, NaNs left out; NaN where every value is NaN."""
    out = np.full(values.shape[:-1], np.nan)
    valid = ~np.isnan(values).all(axis=-1)
    if values.shape[-1] and valid.any():
        picked = values[valid]
        out[valid] = np.nanmax(picked, axis=-1) - np.nanmin(picked, axis=-1)
    return out


def suppress_cells(
    counts: pd.Series,
    min_cell: int,
    *,
    hidden: npt.ArrayLike | None = None,
) -> npt.NDArray[np.bool_]:
    """Primary and complementary small-cell suppression of a table of counts (CMS practice).

    The table has one axis per index level (a plain index is one axis): e.g. sex x site, or
    group x risk bin. Its lines (the cells that differ in one level only) add up to counts that
    other tables show: the margins of a line along ``site`` are the rows of the audit by
    ``sex`` alone, the cells of a line along the risk bins add up to the group's ``n``. So:

    1. Primary: a cell with ``n < min_cell`` is hidden (and any cell ``hidden`` marks).
    2. Complementary: while some line holds exactly one hidden non-empty cell (its count would
       follow from the line's total minus the shown cells), the smallest shown non-empty cell
       of that line is hidden too. Repeated until every line is safe.

    Every margin is treated as known, whether or not another table shows it, so the result
    never depends on which tables a reader holds. Empty cells reveal nobody and need no
    complement. This is the standard line rule, not a full linear-programming audit: hidden
    cells that form no cycle across several lines can in rare patterns still be bounded.

    Parameters
    ----------
    counts : Series of int
        Cell counts; index levels are the table's axes (one row per non-empty or listed cell;
        absent cells are empty).
    min_cell : int
        Smallest count shown.
    hidden : array-like of bool of shape (n_cells,), optional
        Cells hidden for another reason (e.g. all bins of a suppressed group).

    Returns
    -------
    ndarray of bool of shape (n_cells,)
        True where the cell is not shown.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.Series(
    ...     [50, 5, 40, 30],
    ...     index=pd.MultiIndex.from_product([["F", "M"], ["a", "b"]], names=["sex", "site"]),
    ... )
    >>> suppress_cells(table, 11).tolist()  # (F, b) is small; its row and column need a partner
    [True, True, True, True]
    """
    values = counts.to_numpy(dtype=np.float64)
    mask = values < min_cell
    if hidden is not None:
        mask |= np.asarray(hidden, dtype=bool)
    index = counts.index
    levels = [index.get_level_values(k) for k in range(index.nlevels)]
    codes = [pd.factorize(level, sort=True)[0] for level in levels]
    nonempty = values > 0
    # Line id of each cell along each axis: the codes of every other level.
    lines = []
    for axis in range(len(codes)):
        others = [c for k, c in enumerate(codes) if k != axis]
        key = np.zeros(len(values), dtype=np.int64)
        for code in others:
            key = key * (int(code.max(initial=0)) + 1) + code
        lines.append(key)
    changed = True
    while changed:
        changed = False
        for key in lines:
            for line in np.unique(key):
                cells = key == line
                if (mask & nonempty & cells).sum() != 1:
                    continue
                candidates = np.flatnonzero(cells & nonempty & ~mask)
                if len(candidates):
                    mask[candidates[np.argmin(values[candidates])]] = True
                    changed = True
    return mask


def suppression_mask(sizes: pd.Series, min_cell: int) -> npt.NDArray[np.bool_]:
    """Suppression of a one-way table of group sizes: :func:`suppress_cells` with one axis.

    When exactly one non-empty group is below ``min_cell``, its size would follow from the
    total minus the shown sizes, so the next-smallest group is suppressed as well.
    """
    flat = pd.Series(sizes.to_numpy(), index=pd.RangeIndex(len(sizes)))
    return suppress_cells(flat, min_cell)


def group_table(sensitive_features: pd.DataFrame, *, min_cell: int) -> pd.DataFrame:
    """The groups of one to three attributes, their sizes and which are suppressed.

    The one place that decides which groups every table, figure and export shows: the audit,
    the reliance table and the curves by group call it, so they all hide the same groups.
    Suppression runs over the cross-table of the attributes (:func:`suppress_cells`), so no
    hidden size follows from the total, from the one-attribute tables of the same patients, or
    from any lower-order intersection.

    Parameters
    ----------
    sensitive_features : DataFrame of shape (n_samples, n_attributes)
        One to three attribute columns, no missing values.
    min_cell : int
        Smallest group shown.

    Returns
    -------
    DataFrame
        Index: group label (values joined by ``" & "``); the attribute columns, ``n`` and
        ``suppressed``.
    """
    _, groups = _group_codes(sensitive_features, len(sensitive_features))
    attributes = [str(c) for c in sensitive_features.columns]
    sizes = pd.Series(
        groups["n_rows"].to_numpy(), index=pd.MultiIndex.from_frame(groups[attributes])
    )
    table = groups[attributes].copy()
    table["n"] = groups["n_rows"].to_numpy()
    table["suppressed"] = suppress_cells(sizes, min_cell)
    return table


def calibration_by_group(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    sensitive_features: pd.DataFrame,
    *,
    min_cell: int = 11,
    n_bins: int = 5,
) -> pd.DataFrame:
    """Reliability-curve bins per group, with small bins suppressed across groups and bins.

    Bins are equal-width over [0, 1]. The (group, bin) counts form one table with an axis per
    attribute plus one for the bin; suppressed groups hide all their bins, then
    :func:`suppress_cells` hides every bin under ``min_cell`` and the complements that keep it
    from following from the group's ``n`` (shown in the audit) or from the bin's count over
    all patients (shown by the calibration of the whole split).

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

    Returns
    -------
    DataFrame
        One row per non-empty bin of each shown group: ``group, low, high, n, mean_risk,
        observed, suppressed``; suppressed bins hold NaN in ``n, mean_risk, observed``.

    Examples
    --------
    >>> import pandas as pd
    >>> bins = calibration_by_group([0, 1] * 20, [0.1, 0.9] * 20,
    ...                             pd.DataFrame({"sex": ["F", "M"] * 20}), min_cell=0)
    >>> bins[["group", "n", "observed"]].to_numpy().tolist()
    [['F', 20.0, 0.0], ['M', 20.0, 1.0]]
    """
    y, r = _as_arrays(y_true, risk)
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins}; pass 1 or more (e.g. 5).")
    groups = group_table(sensitive_features, min_cell=min_cell)
    codes, _ = _group_codes(sensitive_features, len(y))
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
    axes = groups.drop(columns=["n", "suppressed"]).iloc[group_of].reset_index(drop=True)
    axes["bin"] = bin_of
    counts = pd.Series(n, index=pd.MultiIndex.from_frame(axes))
    hidden = suppress_cells(counts, min_cell, hidden=groups["suppressed"].to_numpy()[group_of])
    keep = (n > 0) & ~groups["suppressed"].to_numpy()[group_of]
    table = pd.DataFrame(
        {
            "group": groups.index.to_numpy()[group_of],
            "low": edges[:-1][bin_of],
            "high": edges[1:][bin_of],
            "n": n,
            "mean_risk": _divide(risk_sum, n),
            "observed": _divide(events, n),
            "suppressed": hidden,
        }
    )
    table.loc[hidden, ["n", "mean_risk", "observed"]] = np.nan
    shown: pd.DataFrame = table.loc[keep].reset_index(drop=True)
    return shown


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

    Small-cell suppression (CMS practice, :func:`group_table`): a group with ``n < min_cell``
    is not shown, and complementary groups are suppressed too, so that no suppressed size
    follows from the total or from the audits of fewer of the same attributes (the line rule
    of :func:`suppress_cells` over the attributes' cross-table). Suppressed groups are left
    out of the summary.

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
    y, r = _as_arrays(y_true, risk)
    if min_cell < 0:
        raise ValueError(f"min_cell={min_cell}; pass 0 (no suppression) or a positive size.")
    codes, groups = _group_codes(sensitive_features, len(y))
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
    hidden = group_table(sensitive_features, min_cell=min_cell)["suppressed"].to_numpy()
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

    by_group = groups[list(attributes)].copy()
    by_group["n"] = point["n"]
    difference = pd.DataFrame(index=labels)
    ratio = pd.DataFrame(index=labels)
    for name in METRICS:
        by_group[name] = point[name]
        by_group[f"{name}_low"], by_group[f"{name}_high"] = _percentiles(draws[name])
        diff_draws = draws[name] - draws[name][:, [ref]]
        difference[name] = point[name] - point[name][ref]
        low, high = _percentiles(diff_draws)
        difference[f"{name}_low"], difference[f"{name}_high"] = low, high
        difference[f"{name}_flag"] = (low > 0) | (high < 0)
        ref_point = np.full_like(point[name], point[name][ref])
        ratio[name] = _divide(point[name], ref_point, signed=True)
        ref_draws = np.broadcast_to(draws[name][:, [ref]], diff_draws.shape)
        ratio_draws = _divide(draws[name], ref_draws, signed=True)
        ratio[f"{name}_low"], ratio[f"{name}_high"] = _percentiles(ratio_draws)

    def odds(values: dict[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        tpr, fpr = values["tpr"], values["fpr"]
        gap: npt.NDArray[np.float64] = np.fmax(
            np.abs(tpr - tpr[..., [ref]]), np.abs(fpr - fpr[..., [ref]])
        )
        return gap

    difference["equalized_odds"] = odds(point)
    low, high = _percentiles(odds(draws))
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
        low, high = _percentiles(samples[:, None])
        summary_rows[row] = {"value": float(value), "low": float(low[0]), "high": float(high[0])}
    summary = pd.DataFrame.from_dict(summary_rows, orient="index")

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
    )
