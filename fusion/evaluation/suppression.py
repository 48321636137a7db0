"""Small-cell suppression (CMS practice) of every table a cohort view shows.

Owns the line rule (:func:`suppress_cells`: a cell under ``min_cell`` hides with a partner in
each line, so no hidden cell follows from a total), the masks of rates that would give away a
small count (:func:`rate_masks`, :func:`bin_mask`), the suppressed confusion matrix of the
performance page and the marker texts. Must not import the audit or the views built on it
(:mod:`fusion.evaluation.fairness`, :mod:`fusion.evaluation.groups`), SQL or streamlit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.bootstrap import METRICS

__all__ = [
    "CELL_METRICS",
    "FLAG_METRICS",
    "OUTCOME_METRICS",
    "SUPPRESSED",
    "SUPPRESSED_TILE",
    "bin_mask",
    "confusion_table",
    "line_mask",
    "rate_masks",
    "suppress_cells",
    "suppress_confusion",
    "suppression_mask",
]


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


def line_mask(
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
        Groups suppressed as a whole (:func:`fusion.evaluation.groups.group_table`).

    Returns
    -------
    DataFrame of bool
        Index of ``axes``; one column per metric of
        :data:`fusion.evaluation.bootstrap.METRICS`, True where hidden.

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
    outcome = line_mask(axes, counts.sum(axis=2), min_cell=min_cell, hidden=groups_hidden)
    flag = line_mask(axes, counts.sum(axis=1), min_cell=min_cell, hidden=groups_hidden)
    both = line_mask(axes, counts, min_cell=min_cell, hidden=groups_hidden | outcome | flag)
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


def suppress_confusion(counts: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """A confusion matrix with its totals, small cells and their complements hidden.

    The totals (events and non-events, patients flagged and not, the split's size) are
    shown, and follow from the page's other figures anyway, so the cells go through the line
    rule of :func:`fusion.evaluation.suppression.suppress_cells`, as every other table does: a cell
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
