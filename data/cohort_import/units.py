"""Column-level unit check: a numeric column whose values fall into two groups 1000x apart.

Owns :class:`UnitScan`. A cell 1000x off its declared range is a cell problem
(:data:`~data.cohort_import.problems.P_UNIT`); a column where many values sit about 1000x from
the others (mL and mm³, g/dL and mg/dL) is one problem of the column, found whether or not the
declared range is tight: the values' orders of magnitude form two groups about three decades
apart with nothing between them. Kept across chunks: a histogram of log10 values in quarter
decades and the first rows of each bin, per numeric column (a few kB whatever the size).
Imports numpy, pandas and the sibling ``problems`` and ``schema`` only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from data.cohort_import.problems import P_MIXED_UNITS, ProblemLog
from data.cohort_import.schema import UNIT_FACTOR, ColumnSpec

__all__ = ["UnitScan"]

_PER_DECADE: Final[int] = 4  # bins per decade of the histogram
_SPAN: Final[int] = 12 * _PER_DECADE  # bins from 1e-12 to 1e12
_GAP: Final[int] = 6  # empty bins (1.5 decades) that separate two groups
_MIN_GROUP: Final[int] = 3  # a smaller group is a column problem from this many values on
_ROWS_KEPT: Final[int] = 5


class UnitScan:
    """Orders of magnitude of each numeric column, chunk by chunk.

    Parameters
    ----------
    file : str
        The file's name (for the problem rows).
    columns : sequence of (str, ColumnSpec)
        The file's matched columns; only ``numeric`` ones are watched.
    """

    def __init__(self, file: str, columns: Sequence[tuple[str, ColumnSpec]]) -> None:
        self.file = file
        self.specs = {column: spec for column, spec in columns if spec.role == "numeric"}
        self.counts = {column: np.zeros(2 * _SPAN + 1, np.int64) for column in self.specs}
        self.rows: dict[str, dict[int, list[int]]] = {column: {} for column in self.specs}

    def add(self, typed: pd.DataFrame) -> None:
        """Count one chunk's values (typed: float columns, NaN where missing or invalid)."""
        for column in self.specs:
            if column not in typed.columns:
                continue
            values = typed[column].to_numpy(dtype=np.float64, na_value=np.nan)
            keep = np.isfinite(values) & (values != 0)
            if not keep.any():
                continue
            bins = np.clip(
                np.floor(np.log10(np.abs(values[keep])) * _PER_DECADE).astype(np.int64),
                -_SPAN,
                _SPAN,
            )
            np.add.at(self.counts[column], bins + _SPAN, 1)
            kept_rows = self.rows[column]
            for row, index in zip(typed.index[keep], bins, strict=True):
                listed = kept_rows.setdefault(int(index), [])
                if len(listed) < _ROWS_KEPT:
                    listed.append(int(row))

    def report(self, problems: ProblemLog) -> None:
        """One problem per column whose values form two groups about 1000x apart.

        The column's cell-level unit problems are then left out of the table
        (:meth:`ProblemLog.summarise_column`): the column problem says it once.
        """
        for column, counts in self.counts.items():
            groups = _groups(counts)
            if len(groups) < 2:
                continue
            big, small = sorted(groups, key=lambda g: -int(counts[g[0] : g[1]].sum()))[:2]
            centre = [_centre(counts, g) for g in (big, small)]
            decades = abs(centre[0] - centre[1])
            n_small = int(counts[small[0] : small[1]].sum())
            if n_small < _MIN_GROUP or not 2.4 <= decades <= 3.6:
                continue
            n_big, total = int(counts[big[0] : big[1]].sum()), int(counts.sum())
            spec = self.specs[column]
            rows = sorted(
                row
                for index in range(small[0], small[1])
                for row in self.rows[column].get(index - _SPAN, [])
            )[:_ROWS_KEPT]
            typical = [10**c for c in centre]
            problems.add(
                self.file,
                P_MIXED_UNITS,
                _fix(spec, typical, n_big, n_small, rows),
                column=column,
                value=f"{n_big} of {total} values near {typical[0]:.3g}, "
                f"{n_small} near {typical[1]:.3g}",
            )
            problems.summarise_column(self.file, column)


def _groups(counts: np.ndarray) -> list[tuple[int, int]]:
    """Runs of occupied bins separated by at least :data:`_GAP` empty ones, as [start, end)."""
    occupied = np.flatnonzero(counts)
    if len(occupied) == 0:
        return []
    groups, start = [], int(occupied[0])
    for previous, current in itertools.pairwise(occupied):
        if current - previous > _GAP:
            groups.append((start, int(previous) + 1))
            start = int(current)
    groups.append((start, int(occupied[-1]) + 1))
    return groups


def _centre(counts: np.ndarray, group: tuple[int, int]) -> float:
    """The count-weighted mean log10 of a group of bins (bin middles)."""
    index = np.arange(group[0], group[1])
    weights = counts[group[0] : group[1]]
    return float(((index - _SPAN + 0.5) / _PER_DECADE * weights).sum() / weights.sum())


def _fix(
    spec: ColumnSpec, typical: Sequence[float], n_big: int, n_small: int, rows: Sequence[int]
) -> str:
    """Which group to convert, when the declared range tells; else how to decide."""
    unit = f" {spec.unit}" if spec.unit else ""
    low = -math.inf if spec.low is None else spec.low
    high = math.inf if spec.high is None else spec.high
    inside = [low <= value <= high for value in typical]
    where = f" (rows {', '.join(map(str, rows))}{' ...' if n_small > len(rows) else ''})"
    declared = f"the schema declares{unit or ' no unit'}, {low:g}..{high:g}"
    ratio = typical[0] / typical[1]
    factor = f"{UNIT_FACTOR:g}x" if ratio > 1 else f"1/{UNIT_FACTOR:g}"
    if inside[1] and not inside[0]:
        return (
            f"convert the {n_big} values near {typical[0]:.3g} ({factor} the others) to{unit}; "
            f"{declared}; the {n_small} values near {typical[1]:.3g} already fit{where}"
        )
    if inside[0] and not inside[1]:
        return (
            f"convert the {n_small} values near {typical[1]:.3g}{where} to{unit} "
            f"(the rest is {factor} them); {declared}"
        )
    return (
        f"store the column in one unit: {n_big} values are about {factor} the other "
        f"{n_small}{where}; {declared} (tighten the range so it tells the units apart)"
    )
