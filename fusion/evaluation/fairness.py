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

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "METRICS",
    "SUPPRESSED",
    "SUPPRESSED_TILE",
    "FairnessReport",
    "audit",
    "bin_mask",
    "calibration_by_group",
    "group_metrics",
    "group_table",
    "rate_masks",
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

SUPPRESSED_TILE = "suppressed"
"""The marker in a metric tile, whose help gives the floor (the full marker is cut off there)."""

OUTCOME_METRICS: tuple[str, ...] = ("prevalence", "auroc", "brier", "calibration_in_the_large")
"""Metrics that give away a group's events and non-events (with its ``n``)."""
FLAG_METRICS: tuple[str, ...] = ("selection_rate",)
"""Metrics that give away how many of a group are flagged and not."""
CELL_METRICS: tuple[str, ...] = ("tpr", "fpr", "ppv", "npv")
"""Rates over one margin that, with the margins shown, give every confusion-matrix cell."""

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
    hidden : DataFrame of bool
        Same index; one column per column of :meth:`table` that a shown group may still hide
        (``<metric>``, ``<metric>_low``, ``<metric>_high`` and ``diff_`` of each, with the
        flag): True where the cell would give away a count under ``min_cell``
        (:func:`rate_masks`). Those cells hold NaN in ``by_group``, ``difference`` and
        ``ratio``.
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
    protect_empty: bool = False,
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
    protect_empty : bool, default=False
        Protect empty cells too: a hidden empty cell alone in its line gets a partner, so no
        count of 0 follows either. Used for the outcome tables (events and non-events, flagged
        and not) of the shown groups, where "no event in this group" is itself a disclosure.

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
    nonempty = np.ones(len(values), dtype=bool) if protect_empty else values > 0
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


def _line_mask(
    axes: pd.DataFrame,
    values: npt.NDArray[np.float64],
    *,
    min_cell: int,
    hidden: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Groups whose cells of ``values`` (shape ``(n_groups, ...)``) are hidden, all together.

    The table has the attribute axes of ``axes`` plus one axis per trailing dimension of
    ``values``; :func:`suppress_cells` (empty cells protected) runs over it, and a group with
    one hidden cell hides all its cells (the rates shown give each from the others), until no
    line changes.
    """
    n_groups = values.shape[0]
    inner = values.shape[1:]
    size = int(np.prod(inner))
    frame = axes.iloc[np.repeat(np.arange(n_groups), size)].reset_index(drop=True)
    for depth, positions in enumerate(np.indices(inner).reshape(len(inner), -1)):
        frame[f"_cell{depth}"] = np.tile(positions, n_groups)
    counts = pd.Series(values.reshape(-1), index=pd.MultiIndex.from_frame(frame))
    groups_hidden = np.asarray(hidden, dtype=bool).copy()
    while True:
        mask = suppress_cells(
            counts, min_cell, hidden=np.repeat(groups_hidden, size), protect_empty=True
        )
        grown = groups_hidden | mask.reshape(n_groups, size).any(axis=1)
        if (grown == groups_hidden).all():
            return grown
        groups_hidden = grown


def rate_masks(
    axes: pd.DataFrame,
    cells: npt.ArrayLike,
    *,
    min_cell: int,
    hidden: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Which metrics of which groups would give away a count under ``min_cell``.

    A rate shown with its denominator is a count: prevalence x n gives a group's events,
    TPR x events its true positives, and so on. So every metric is hidden unless every count
    it (with the other shown numbers) gives away is at least ``min_cell`` (0 included: "no
    event in this group" is a disclosure too). Three tables of counts decide, each through the
    line rule of :func:`suppress_cells` over the attributes' cross-table, so no hidden count
    follows from another group's shown one and a total either:

    * events and non-events per group: :data:`OUTCOME_METRICS` (AUROC, Brier and
      calibration-in-the-large rest on them too);
    * flagged and not flagged per group: :data:`FLAG_METRICS`;
    * the four confusion-matrix cells per group: :data:`CELL_METRICS` (hidden as well where
      either table above is, since the cells add up to both).

    Parameters
    ----------
    axes : DataFrame of shape (n_groups, n_attributes)
        Attribute values of each group.
    cells : array-like of shape (n_groups, 2, 2)
        Counts per group, ``[outcome, flagged]`` (``[1, 1]`` are the true positives).
    min_cell : int
        Smallest count shown (0: hide nothing for size).
    hidden : array-like of bool of shape (n_groups,), optional
        Groups suppressed as a whole (:func:`group_table`).

    Returns
    -------
    DataFrame of bool
        Index of ``axes``; one column per metric of :data:`METRICS`, True where hidden.

    Examples
    --------
    >>> import pandas as pd
    >>> cells = [[[20, 15], [3, 30]], [[40, 12], [14, 25]]]  # F has 3 false negatives
    >>> masks = rate_masks(pd.DataFrame({"sex": ["F", "M"]}), cells, min_cell=11)
    >>> masks.loc[:, ["prevalence", "selection_rate", "tpr"]].to_numpy().tolist()
    [[False, False, True], [False, False, True]]
    """
    counts = np.asarray(cells, dtype=np.float64)
    if counts.ndim != 3 or counts.shape[1:] != (2, 2) or counts.shape[0] != len(axes):
        raise ValueError(
            f"cells has shape {counts.shape}; pass (n_groups={len(axes)}, 2, 2) counts "
            "indexed [outcome, flagged]."
        )
    groups_hidden = (
        np.zeros(len(axes), dtype=bool) if hidden is None else np.asarray(hidden, dtype=bool)
    )
    axes = axes.reset_index(drop=True)
    outcome = _line_mask(axes, counts.sum(axis=2), min_cell=min_cell, hidden=groups_hidden)
    flag = _line_mask(axes, counts.sum(axis=1), min_cell=min_cell, hidden=groups_hidden)
    both = _line_mask(axes, counts, min_cell=min_cell, hidden=groups_hidden | outcome | flag)
    masks = {name: outcome for name in OUTCOME_METRICS}
    masks.update({name: flag for name in FLAG_METRICS})
    masks.update({name: both for name in CELL_METRICS})
    return pd.DataFrame({name: masks[name] for name in METRICS})


def bin_mask(
    axes: pd.DataFrame,
    n: npt.ArrayLike,
    events: npt.ArrayLike,
    *,
    min_cell: int,
    hidden: npt.ArrayLike | None = None,
) -> npt.NDArray[np.bool_]:
    """Which calibration points to hide: a point shows ``n`` and ``events / n`` of one bin.

    Two tables of counts decide, both through :func:`suppress_cells` with empty cells
    protected: the bins' sizes (axes of ``axes``) and their events and non-events (one more
    axis). A point is hidden where either table hides one of its counts, and the two are
    repeated until neither changes, so no bin's size, events or non-events under
    ``min_cell`` (0 included) follows from the shown points and the totals.

    Parameters
    ----------
    axes : DataFrame of shape (n_points, n_axes)
        The table's axes per point (e.g. attribute values and the bin index).
    n, events : array-like of shape (n_points,)
        Patients and events per point.
    min_cell : int
        Smallest count shown.
    hidden : array-like of bool of shape (n_points,), optional
        Points hidden for another reason (e.g. every bin of a suppressed group).

    Returns
    -------
    ndarray of bool of shape (n_points,)

    Examples
    --------
    >>> import pandas as pd
    >>> bin_mask(pd.DataFrame({"bin": [0, 1, 2]}), [40, 30, 25], [2, 15, 12], min_cell=11).tolist()
    [True, False, True]
    """
    sizes = np.asarray(n, dtype=np.float64)
    positives = np.asarray(events, dtype=np.float64)
    frame = axes.reset_index(drop=True)
    points_hidden = (
        np.zeros(len(frame), dtype=bool) if hidden is None else np.asarray(hidden, dtype=bool)
    ).copy()
    size_table = pd.Series(sizes, index=pd.MultiIndex.from_frame(frame))
    outcome_axes = frame.iloc[np.repeat(np.arange(len(frame)), 2)].reset_index(drop=True)
    outcome_axes["_outcome"] = np.tile([0, 1], len(frame))
    outcome_table = pd.Series(
        np.stack([sizes - positives, positives], axis=1).reshape(-1),
        index=pd.MultiIndex.from_frame(outcome_axes),
    )
    while True:
        by_size = suppress_cells(size_table, min_cell, hidden=points_hidden, protect_empty=True)
        by_outcome = suppress_cells(
            outcome_table,
            min_cell,
            hidden=np.repeat(points_hidden | by_size, 2),
            protect_empty=True,
        ).reshape(-1, 2)
        grown = points_hidden | by_size | by_outcome.any(axis=1)
        if (grown == points_hidden).all():
            return grown
        points_hidden = grown


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
    attribute plus one for the bin, and their events and non-events one more; suppressed
    groups, and groups whose events the audit hides, hide all their bins, then
    :func:`bin_mask` hides every bin whose size, events or non-events are under ``min_cell``
    (0 included), with the complements that keep them from following from the group's ``n``
    and events (shown in the audit) or from the bin's counts over all patients. Empty bins of
    a shown group are listed as suppressed, so they cannot be told from small ones.

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
    attributes = groups.drop(columns=["n", "suppressed"])
    group_events = np.bincount(codes, weights=y, minlength=len(groups))
    outcome = np.stack([groups["n"].to_numpy() - group_events, group_events], axis=1)
    # A group whose events are hidden in the audit hides every bin: they add up to them.
    group_hidden = _line_mask(
        attributes, outcome, min_cell=min_cell, hidden=groups["suppressed"].to_numpy()
    )
    axes = attributes.iloc[group_of].reset_index(drop=True)
    axes["bin"] = bin_of
    hidden = bin_mask(axes, n, events, min_cell=min_cell, hidden=group_hidden[group_of])
    keep = ~groups["suppressed"].to_numpy()[group_of] & ((n > 0) | hidden)
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

    flagged = (r >= threshold).astype(np.intp)
    cells = np.bincount(
        codes * 4 + 2 * y.astype(np.intp) + flagged, minlength=4 * len(groups)
    ).reshape(len(groups), 2, 2)
    metric_hidden = rate_masks(groups[list(attributes)], cells, min_cell=min_cell, hidden=hidden)
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
