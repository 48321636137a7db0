"""Complementary suppression across every table a reader can request, not one table at a time.

A researcher can audit by ``sex``, by ``site`` and by ``sex & site``: the group ``F`` of the
first table is the sum of the groups ``F & a``, ``F & b``, ... of the last, and the whole
cohort is the sum of either. A table suppressed on its own leaks through the others: a cell
hidden as a complement in ``sex`` follows from its shown subgroups in ``sex & site`` (and
with it the small cell it protected), and two hidden subgroups of 3 and 4 give away their sum
7 as the parent's ``n`` minus the shown ones. This module suppresses the whole family of
tables at once (every combination of up to three of the attributes a reader may request), so
the hidden cells of the table a view shows are the same whichever other tables the reader
also holds.

The rules, repeated over every table until none changes (:func:`protect`):

1. Primary: a cell under ``min_cell`` (empty ones too with ``protect_empty``) is hidden.
2. Lines: in each line (the cells of one table that differ in one attribute, whose sum is
   their parent cell in the table of one attribute fewer, or the whole cohort), a line whose
   parent is shown holds no hidden cell, or two or more whose sum is at least ``min_cell``;
   else the smallest shown cell of the line is hidden too.
3. Parents: a hidden cell keeps a hidden child in every table that refines it; else its
   smallest child is hidden too (its children's sum would give it back).

Cells carry one or more counts (e.g. events and non-events of a group): the rules run on each,
and a cell is hidden or shown as a whole. The attacker of
``tests/fusion/evaluation/test_complementary.py`` solves every table of the family at once
and finds no hidden count. Pure (numpy and pandas only); must not import the audit or the
views built on it, SQL or streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.bootstrap import METRICS
from fusion.evaluation.suppression import CELL_METRICS, FLAG_METRICS, OUTCOME_METRICS

__all__ = [
    "Family",
    "align",
    "attribute_sets",
    "audit_family",
    "audit_masks",
    "bin_hidden",
    "events_hidden",
    "rate_masks_across",
]

Table = tuple[str, ...]


def attribute_sets(attributes: Sequence[str], max_order: int = 3) -> list[Table]:
    """Every combination of 1 to ``max_order`` of ``attributes``, each in the given order.

    Examples
    --------
    >>> attribute_sets(["sex", "site"])
    [('sex',), ('site',), ('sex', 'site')]
    """
    names = list(dict.fromkeys(attributes))
    return [combo for order in range(1, max_order + 1) for combo in combinations(names, order)]


def _key(
    codes: Sequence[npt.NDArray[np.intp]], radix: Sequence[int], n: int
) -> npt.NDArray[np.int64]:
    """One integer per row of ``codes`` (mixed radix), ordered as the rows sort."""
    key = np.zeros(n, dtype=np.int64)
    for code, size in zip(codes, radix, strict=True):
        key = key * max(size, 1) + np.asarray(code, dtype=np.int64)
    return key


@dataclass(frozen=True)
class Family:
    """The cells of every table of a family of attribute sets, and the lines that tie them.

    Build with :meth:`from_units`; :meth:`counts` sums per-patient weights into the cells and
    :meth:`protect` suppresses them. A table's parent along a column is the table without it
    when it is in the family; the parent of a one-column table is the whole cohort, always
    shown (a parent outside the family is treated as shown too).

    Attributes
    ----------
    sets : tuple of tuple of str
        The tables, each named by its columns.
    cells : dict of tuple of str to DataFrame
        Each table's cells: one row per cell (sorted), one column per attribute.
    """

    sets: tuple[Table, ...]
    cells: dict[Table, pd.DataFrame]
    offsets: dict[Table, int]
    cell_of: dict[Table, npt.NDArray[np.intp]]
    lines: tuple[tuple[npt.NDArray[np.intp], int], ...]
    size: int

    @classmethod
    def from_units(
        cls,
        units: pd.DataFrame,
        sets: Sequence[Table],
        *,
        complete: Mapping[str, Sequence[object]] | None = None,
    ) -> Family:
        """The family of ``sets`` over ``units`` (one row per patient).

        Parameters
        ----------
        units : DataFrame of shape (n_units, n_columns)
            The attribute columns (and any inner axis such as a risk bin), one row per patient.
        sets : sequence of tuple of str
            The tables.
        complete : mapping of str to sequence, optional
            Columns whose every level is a cell under each observed combination of the others
            (an inner axis whose empty cells are shown, so they must be protected too).
        """
        complete = complete or {}
        frame = units.reset_index(drop=True)
        n_units = len(frame)
        levels, codes = {}, {}
        for name in dict.fromkeys(name for names in sets for name in names):
            if name in complete:
                uniques = pd.Index(list(complete[name]))
                found = uniques.get_indexer(pd.Index(frame[name]))
                if (found < 0).any():
                    raise ValueError(f"{name} holds values outside {list(complete[name])}.")
            else:
                found, uniques = pd.factorize(frame[name], sort=True)
            levels[name] = np.asarray(uniques, dtype=object)
            codes[name] = np.asarray(found, dtype=np.intp)
        keys: dict[Table, npt.NDArray[np.int64]] = {}
        cell_codes: dict[Table, dict[str, npt.NDArray[np.intp]]] = {}
        cell_of = {}
        for names in sets:
            radix = [len(levels[name]) for name in names]
            unit_key = _key([codes[name] for name in names], radix, n_units)
            outer = [name for name in names if name not in complete]
            inner = [name for name in names if name in complete]
            outer_radix = [len(levels[name]) for name in outer]
            seen = np.unique(_key([codes[name] for name in outer], outer_radix, n_units))
            outer_codes = np.unravel_index(seen, outer_radix) if outer else ()
            inner_codes = (
                np.indices([len(levels[name]) for name in inner]).reshape(len(inner), -1)
                if inner
                else np.zeros((0, 1), dtype=np.intp)
            )
            n_outer, n_inner = len(seen), inner_codes.shape[1]
            columns = {name: np.repeat(outer_codes[k], n_inner) for k, name in enumerate(outer)}
            columns |= {name: np.tile(inner_codes[k], n_outer) for k, name in enumerate(inner)}
            table_key = _key([columns[name] for name in names], radix, n_outer * n_inner)
            order = np.argsort(table_key)
            keys[names] = table_key[order]
            cell_codes[names] = {name: columns[name][order] for name in names}
            cell_of[names] = np.searchsorted(keys[names], unit_key)
        offsets, start = {}, 0
        for names in sets:
            offsets[names] = start
            start += len(keys[names])
        lines = []
        for names in sets:
            for dropped in names:
                rest = tuple(name for name in names if name != dropped)
                radix = [len(levels[name]) for name in rest]
                n_cells = len(keys[names])
                key = _key([cell_codes[names][name] for name in rest], radix, n_cells)
                parent_of = np.full(n_cells, -1, dtype=np.intp)
                if rest in keys:
                    parent_key = _key(
                        [cell_codes[rest][name] for name in rest], radix, len(keys[rest])
                    )
                    found = np.clip(np.searchsorted(parent_key, key), 0, len(parent_key) - 1)
                    hit = parent_key[found] == key
                    parent_of[hit] = offsets[rest] + found[hit]
                order = np.argsort(key, kind="stable")
                for cells in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
                    if len(cells):
                        lines.append((offsets[names] + cells, int(parent_of[cells[0]])))
        labels = {
            names: pd.DataFrame({name: levels[name][cell_codes[names][name]] for name in names})
            for names in sets
        }
        return cls(tuple(sets), labels, offsets, cell_of, tuple(lines), start)

    def counts(self, weights: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Sums of ``weights`` (``(n_units, n_counts)``) per cell: ``(n_cells, n_counts)``."""
        values = np.asarray(weights, dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        out = np.zeros((self.size, values.shape[1]))
        for names in self.sets:
            np.add.at(out, self.offsets[names] + self.cell_of[names], values)
        return out

    def table(self, values: npt.NDArray[np.generic], names: Table) -> npt.NDArray[np.generic]:
        """The rows of ``values`` (one per cell of the family) that belong to table ``names``."""
        start = self.offsets[names]
        return values[start : start + len(self.cells[names])]

    def spread(self, per_table: Mapping[Table, npt.ArrayLike]) -> npt.NDArray[np.bool_]:
        """One value per cell of the family from values per table (missing tables: False)."""
        out = np.zeros(self.size, dtype=bool)
        for names, values in per_table.items():
            start = self.offsets[names]
            out[start : start + len(self.cells[names])] = np.asarray(values, dtype=bool)
        return out

    def protect(
        self,
        counts: npt.NDArray[np.float64],
        *,
        min_cell: int,
        protect_empty: bool = False,
        hidden: npt.NDArray[np.bool_] | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Which cells to hide, so that no hidden count follows from the shown ones.

        Parameters
        ----------
        counts : ndarray of shape (n_cells, n_counts)
            Each cell's counts (:meth:`counts`); a cell is shown or hidden with all of them.
        min_cell : int
            Smallest count shown (0: hide only ``hidden``).
        protect_empty : bool, default=False
            Treat a count of 0 as small too ("no event in this group" is a disclosure).
        hidden : ndarray of bool of shape (n_cells,), optional
            Cells hidden for another reason (e.g. groups suppressed for their size).

        Returns
        -------
        ndarray of bool of shape (n_cells,)

        Examples
        --------
        >>> import pandas as pd
        >>> units = pd.DataFrame({"sex": ["F"] * 50 + ["M"] * 50,
        ...                       "site": ["a"] * 43 + ["b"] * 3 + ["c"] * 4 + ["a"] * 50})
        >>> family = Family.from_units(units, attribute_sets(["sex", "site"]))
        >>> mask = family.protect(family.counts(np.ones(100)), min_cell=11)
        >>> family.table(mask, ("sex", "site")).tolist()  # 3 + 4 = 7 would follow from F's 50
        [True, True, True, False]
        """
        mask = np.zeros(self.size, dtype=bool) if hidden is None else hidden.copy()
        if min_cell <= 0:
            return mask
        small = counts < min_cell
        if not protect_empty:
            small &= counts > 0
        mask |= small.any(axis=1)
        eligible = np.ones_like(counts, dtype=bool) if protect_empty else counts > 0
        changed = True
        while changed:
            changed = False
            for cells, parent in self.lines:
                for j in range(counts.shape[1]):
                    fit = cells[eligible[cells, j]]
                    if not len(fit):
                        continue
                    shut = fit[mask[fit]]
                    if parent >= 0 and mask[parent]:
                        unsafe = not len(shut)  # the parent would be its children's sum
                    else:
                        unsafe = len(shut) == 1 or (
                            len(shut) > 1 and counts[shut, j].sum() < min_cell
                        )
                    if not unsafe:
                        continue
                    open_ = fit[~mask[fit]]
                    if len(open_):
                        mask[open_[np.argmin(counts[open_, j])]] = True
                        changed = True
        return mask


def rate_masks_across(
    scope: pd.DataFrame,
    by: Sequence[str],
    y: npt.ArrayLike,
    flagged: npt.ArrayLike,
    *,
    min_cell: int,
    max_order: int = 3,
) -> tuple[pd.DataFrame, dict[str, npt.NDArray[np.bool_]]]:
    """Hidden groups and hidden counts of the audit by ``by``, across every audit of ``scope``.

    The same three tables as :func:`fusion.evaluation.suppression.rate_masks` (events and
    non-events, flagged and not, the four confusion cells; empty counts protected), each
    suppressed by :meth:`Family.protect` over every combination of the ``scope`` attributes,
    after the groups' sizes.

    Parameters
    ----------
    scope : DataFrame of shape (n_samples, n_attributes)
        Every attribute a reader may audit by (``by`` among them), one row per patient.
    by : sequence of str
        The attributes of the audit shown.
    y, flagged : array-like of shape (n_samples,)
        0/1 outcomes and 0/1 flags at the audit's threshold.
    min_cell : int
        Smallest count shown.
    max_order : int, default=3
        Most attributes per audit.

    Returns
    -------
    groups : DataFrame
        The groups of ``by`` (observed combinations, sorted): the attributes and ``n``.
    masks : dict of str to ndarray of bool
        Per group: ``size`` (suppressed), ``outcome`` (events hidden), ``flag`` (flagged
        hidden) and ``cells`` (confusion cells hidden).
    """
    family, key = audit_family(scope, by, max_order=max_order)
    outcome = np.asarray(y, dtype=np.float64)
    flag = np.asarray(flagged, dtype=np.float64)
    sizes = family.counts(np.ones(len(outcome)))
    size = family.protect(sizes, min_cell=min_cell)
    masks = {"size": size}
    for layer, values in (("outcome", outcome), ("flag", flag)):
        masks[layer] = _two_way(family, values, min_cell=min_cell, hidden=size)
    cells = np.stack([(outcome == a) & (flag == b) for a in (0, 1) for b in (0, 1)], axis=1).astype(
        np.float64
    )
    masks["cells"] = family.protect(
        family.counts(cells),
        min_cell=min_cell,
        protect_empty=True,
        hidden=size | masks["outcome"] | masks["flag"],
    )
    groups = family.cells[key].copy()
    groups["n"] = family.table(sizes[:, 0], key)
    order = [str(name) for name in by]
    return groups.loc[:, [*order, "n"]], {
        layer: np.asarray(family.table(mask, key), dtype=bool) for layer, mask in masks.items()
    }


def _two_way(
    family: Family, values: npt.NDArray[np.float64], *, min_cell: int, hidden: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Cells whose 0/1 ``values`` (both counts, 0 included) are hidden, after ``hidden``."""
    counts = family.counts(np.stack([1 - values, values], axis=1))
    return family.protect(counts, min_cell=min_cell, protect_empty=True, hidden=hidden)


def events_hidden(family: Family, y: npt.ArrayLike, *, min_cell: int) -> npt.NDArray[np.bool_]:
    """Cells of ``family`` whose size or events an audit hides (every table at once)."""
    outcome = np.asarray(y, dtype=np.float64)
    size = family.protect(family.counts(np.ones(len(outcome))), min_cell=min_cell)
    return size | _two_way(family, outcome, min_cell=min_cell, hidden=size)


def audit_family(
    scope: pd.DataFrame, by: Sequence[str], *, max_order: int = 3
) -> tuple[Family, Table]:
    """The family of every audit of ``scope`` (as text), and the name of the audit by ``by``."""
    names = [str(name) for name in by]
    missing = [name for name in names if name not in scope.columns]
    if missing:
        raise ValueError(
            f"The scope lacks the audit's attributes {missing}; pass every attribute a reader "
            "may audit by."
        )
    order = [str(name) for name in scope.columns]
    units = scope.reset_index(drop=True).astype(str)
    units.columns = pd.Index(order)
    sets = attribute_sets(order, max_order)
    key = tuple(sorted(names, key=order.index))
    if key not in sets:
        sets.append(key)
    return Family.from_units(units, sets), key


def align(
    cells: pd.DataFrame, values: npt.ArrayLike, rows: pd.DataFrame, *, fill: bool
) -> npt.NDArray[np.bool_]:
    """``values`` of the family's ``cells`` for ``rows`` (same columns, any order, as text)."""
    columns = list(cells.columns)
    index = pd.MultiIndex.from_frame(cells.astype(str))
    wanted = pd.MultiIndex.from_frame(rows.loc[:, columns].astype(str))
    found = pd.Series(np.asarray(values, dtype=bool), index=index).reindex(wanted)
    return found.fillna(fill).to_numpy(dtype=bool)


def audit_masks(
    groups: pd.DataFrame,
    scope: pd.DataFrame,
    y: npt.ArrayLike,
    flagged: npt.ArrayLike,
    *,
    min_cell: int,
) -> pd.DataFrame:
    """:func:`fusion.evaluation.suppression.rate_masks` across every audit of ``scope``.

    Parameters
    ----------
    groups : DataFrame of shape (n_groups, n_attributes)
        The audit's groups: their attribute values (any order of rows).
    scope : DataFrame of shape (n_samples, n_scope)
        Every attribute a reader may audit by, one row per patient.
    y, flagged : array-like of shape (n_samples,)
        0/1 outcomes and flags at the audit's threshold.
    min_cell : int
        Smallest count shown.

    Returns
    -------
    DataFrame of bool
        One row per group (in ``groups``' order), one column per metric of
        :data:`fusion.evaluation.bootstrap.METRICS`: True where hidden. A group absent from
        the data (no patient) is hidden.
    """
    shown, masks = rate_masks_across(scope, list(groups.columns), y, flagged, min_cell=min_cell)
    cells = shown.drop(columns="n")
    layers = {layer: align(cells, mask, groups, fill=True) for layer, mask in masks.items()}
    columns = {name: layers["outcome"] for name in OUTCOME_METRICS}
    columns.update({name: layers["flag"] for name in FLAG_METRICS})
    columns.update({name: layers["cells"] for name in CELL_METRICS})
    return pd.DataFrame({name: columns[name] for name in METRICS})


def bin_hidden(
    scope: pd.DataFrame,
    groups: pd.DataFrame,
    y: npt.NDArray[np.int64] | npt.NDArray[np.float64],
    bin_index: npt.NDArray[np.intp],
    *,
    n_bins: int,
    min_cell: int,
) -> npt.NDArray[np.bool_]:
    """Hidden (group, bin) points, group-major: across the bins of every audit of ``scope``.

    A group whose size or events the audit hides hides every bin (they add up to them); then
    :meth:`fusion.evaluation.complementary.Family.protect` hides every bin whose size, events
    or non-events are under ``min_cell`` (0 included), with its complements, over the
    (attributes, bin) tables of every audit (a bin's parent along the bin axis is the group,
    along an attribute the coarser group's bin, and over all patients the page's bin).
    """
    family, key = audit_family(scope, list(groups.columns))
    group_hidden = events_hidden(family, y, min_cell=min_cell)
    units = scope.reset_index(drop=True).astype(str).assign(_bin=bin_index)
    bins = Family.from_units(
        units, [(*names, "_bin") for names in family.sets], complete={"_bin": range(n_bins)}
    )
    start = bins.spread(
        {
            (*names, "_bin"): align(
                family.cells[names],
                family.table(group_hidden, names),
                bins.cells[(*names, "_bin")],
                fill=True,
            )
            for names in family.sets
        }
    )
    counts = bins.counts(np.stack([np.ones(len(y)), 1 - y, y], axis=1))
    mask = bins.protect(counts, min_cell=min_cell, protect_empty=True, hidden=start)
    points = groups.iloc[np.repeat(np.arange(len(groups)), n_bins)].reset_index(drop=True)
    points["_bin"] = np.tile(np.arange(n_bins), len(groups))
    table_key = (*key, "_bin")
    return align(bins.cells[table_key], bins.table(mask, table_key), points, fill=True)
