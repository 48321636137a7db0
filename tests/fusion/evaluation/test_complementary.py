"""Complementary suppression across audits: no count under the floor follows from all of them.

A researcher can export the audit by every combination of up to three attributes (sex, age
band, ethnicity, site). The attacker here holds all fourteen CSVs plus the whole split's
confusion matrix, writes every shown number as a linear equation over the unknown confusion
cells of the finest groups (a rate with its denominator is a count), and solves them together.
No group's count, and no sum of a line's hidden groups, under the floor (0 included) may follow.
Suppressed one audit at a time (the rule before :mod:`fusion.evaluation.complementary`), the
same attacker does recover small counts.
"""

from __future__ import annotations

import io
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from fusion.evaluation.complementary import Family, attribute_sets
from fusion.evaluation.fairness import audit
from fusion.evaluation.groups import calibration_by_group, group_table
from fusion.evaluation.suppression import suppress_cells
from fusion.reports.audit_report import audit_csv

FLOOR = 11
ATTRIBUTES = ("sex", "age_band", "ethnicity", "site")
CELLS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (outcome, flagged): TN, FP, FN, TP
RATES = {  # metric: (numerator cells, other cells)
    "tpr": ([(1, 1)], [(1, 0)]),
    "fpr": ([(0, 1)], [(0, 0)]),
    "ppv": ([(1, 1)], [(0, 1)]),
    "npv": ([(0, 0)], [(1, 0)]),
}


def _cohort(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n, p=[0.45, 0.55]),
            "age_band": rng.choice(["<50", "50-64", "65-74", "75+"], n, p=[0.1, 0.3, 0.4, 0.2]),
            "ethnicity": rng.choice(["A", "B", "C", "D"], n, p=[0.7, 0.15, 0.1, 0.05]),
            "site": rng.choice(["s1", "s2", "s3"], n, p=[0.5, 0.3, 0.2]),
            "risk": rng.beta(2, 4, n),
        }
    )
    frame["label"] = (rng.uniform(size=n) < frame["risk"]).astype(int)
    return frame


class Equations:
    """Linear equations over the confusion cells of the finest groups; what they determine."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.finest = frame.groupby(list(ATTRIBUTES)).size().index
        self.columns = {
            (key, cell): j
            for j, (key, cell) in enumerate((k, c) for k in self.finest for c in CELLS)
        }
        self.rows: list[np.ndarray] = []
        self.rhs: list[float] = []

    def vector(self, by: tuple[str, ...], values: tuple[str, ...], cells) -> np.ndarray:
        out = np.zeros(len(self.columns))
        positions = [ATTRIBUTES.index(name) for name in by]
        for key in self.finest:
            if all(key[p] == v for p, v in zip(positions, values, strict=True)):
                for cell in cells:
                    out[self.columns[(key, cell)]] = 1.0
        return out

    def add(self, vector: np.ndarray, value: float) -> None:
        self.rows.append(vector)
        self.rhs.append(value)

    def solver(self):
        A, b = np.array(self.rows), np.array(self.rhs)
        _, singular, vt = np.linalg.svd(A, full_matrices=True)
        null = vt[int((singular > 1e-8 * singular[0]).sum()) :].T
        solution = np.linalg.lstsq(A, b, rcond=None)[0]

        def solve(target: np.ndarray) -> float | None:
            if np.abs(target @ null).max(initial=0.0) > 1e-7:
                return None
            return float(target @ solution)

        return solve


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _equations(frame: pd.DataFrame, tables: dict[tuple[str, ...], pd.DataFrame]) -> Equations:
    """Every number the researcher sees: the fourteen audit CSVs and the split's totals."""
    eq = Equations(frame)
    flagged = (frame["risk"] >= 0.5).astype(int)
    for outcome, flag in CELLS:  # the performance page's confusion matrix, at its worst
        count = int(((frame["label"] == outcome) & (flagged == flag)).sum())
        eq.add(eq.vector((), (), [(outcome, flag)]), count)
    for by, table in tables.items():
        for _, row in table.iterrows():
            values = tuple(str(row[name]) for name in by)
            n = _number(row["n"])
            if n is None:
                continue
            eq.add(eq.vector(by, values, CELLS), n)
            for metric, cells in (
                ("prevalence", [(1, 0), (1, 1)]),
                ("selection_rate", [(0, 1), (1, 1)]),
            ):
                rate = _number(row[metric])
                if rate is not None:
                    eq.add(eq.vector(by, values, cells), rate * n)
            for metric, (top, other) in RATES.items():
                rate = _number(row[metric])
                if rate is not None:  # top / (top + other) = rate
                    eq.add(
                        (1 - rate) * eq.vector(by, values, top)
                        - rate * eq.vector(by, values, other),
                        0.0,
                    )
    return eq


def _leaks(frame: pd.DataFrame, tables: dict[tuple[str, ...], pd.DataFrame]) -> list[str]:
    """Every small count the attacker determines: per group, and per line of hidden groups."""
    eq = _equations(frame, tables)
    solve = eq.solver()
    counts = {
        "n": CELLS,
        "events": [(1, 0), (1, 1)],
        "non-events": [(0, 0), (0, 1)],
        "flagged": [(0, 1), (1, 1)],
        "not flagged": [(0, 0), (1, 0)],
    } | {f"cell {cell}": [cell] for cell in CELLS}
    found = []
    for by, table in tables.items():
        groups = [tuple(str(row[name]) for name in by) for _, row in table.iterrows()]
        hidden = [_number(row["n"]) is None for _, row in table.iterrows()]
        for name, cells in counts.items():
            vectors = {values: eq.vector(by, values, cells) for values in groups}
            for values, vector in vectors.items():
                value = solve(vector)
                if value is not None and round(value) < FLOOR:
                    found.append(f"{by}={values} {name}={value:.0f}")
            # Sums of a line's groups whose n is hidden (the parent minus the shown ones).
            for dropped in by:
                rest = [k for k, name_ in enumerate(by) if name_ != dropped]
                lines: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
                for values, is_hidden in zip(groups, hidden, strict=True):
                    if is_hidden:
                        lines.setdefault(tuple(values[k] for k in rest), []).append(values)
                for members in lines.values():
                    if len(members) < 2:
                        continue
                    value = solve(sum(vectors[values] for values in members))
                    if value is not None and round(value) < FLOOR:
                        found.append(f"{by} line {members} {name}={value:.0f}")
    return found


def _all_audits(frame: pd.DataFrame, *, shared: bool) -> dict[tuple[str, ...], pd.DataFrame]:
    tables = {}
    for order in (1, 2, 3):
        for by in combinations(ATTRIBUTES, order):
            report = audit(
                frame["label"],
                frame["risk"],
                frame[list(by)],
                threshold=0.5,
                n_resamples=0,
                min_cell=FLOOR,
                scope=frame[list(ATTRIBUTES)] if shared else None,
            )
            tables[by] = pd.read_csv(io.StringIO(audit_csv(report)), dtype=str)
    return tables


@pytest.mark.parametrize("seed", [3, 11])
def test_no_small_count_follows_from_every_audit_a_researcher_can_export(seed) -> None:
    frame = _cohort(seed)
    tables = _all_audits(frame, shared=True)
    assert _leaks(frame, tables) == []
    # Not all-or-nothing: single-attribute audits still show groups and rates.
    shown = [_number(v) is not None for v in tables[("sex",)]["prevalence"]]
    assert any(shown)


def _size_tables(frame: pd.DataFrame, *, shared: bool) -> dict[tuple[str, ...], pd.DataFrame]:
    """Group sizes of every audit, hidden by the family rule or by each table's own line rule."""
    tables = {}
    for by in attribute_sets(ATTRIBUTES):
        sizes = frame.groupby(list(by)).size()
        if shared:
            scope = frame[list(ATTRIBUTES)]
            hidden = group_table(frame[list(by)], min_cell=FLOOR, scope=scope)["suppressed"]
        else:  # the rule before: each audit's cross-table on its own (its margins known)
            hidden = suppress_cells(sizes, FLOOR)
        table = sizes.reset_index(name="n")
        table["n"] = np.where(np.asarray(hidden, dtype=bool), np.nan, table["n"])
        tables[by] = table.assign(**{name: np.nan for name in ("prevalence", "selection_rate")})
    for table in tables.values():
        for name in RATES:
            table[name] = np.nan
    return tables


def test_sizes_suppressed_one_audit_at_a_time_give_small_counts_away() -> None:
    """Each audit's own line rule (the rule before): subtracting across audits finds n = 7."""
    frame = _cohort(3)
    leaks = _leaks(frame, _size_tables(frame, shared=False))
    assert "('ethnicity', 'site')=('C', 's3') n=7" in leaks
    assert _leaks(frame, _size_tables(frame, shared=True)) == []


def test_the_line_rule_alone_leaks_a_sum_and_the_family_rule_does_not() -> None:
    """F = 50 shown; F & b = 3 and F & c = 4 hidden: 50 - 43 = 7 patients in them."""
    units = pd.DataFrame(
        {
            "sex": ["F"] * 50 + ["M"] * 50,
            "site": ["a"] * 43 + ["b"] * 3 + ["c"] * 4 + ["a"] * 50,
        }
    )
    sizes = units.groupby(["sex", "site"]).size()
    per_table = suppress_cells(sizes, FLOOR)  # the rule of one table: b and c hide, a shows
    assert per_table.tolist() == [False, True, True, False]
    family = Family.from_units(units, attribute_sets(["sex", "site"]))
    mask = family.protect(family.counts(np.ones(len(units))), min_cell=FLOOR)
    assert family.table(mask, ("sex", "site")).tolist() == [True, True, True, False]
    table = group_table(units[["sex", "site"]], min_cell=FLOOR)
    assert table["suppressed"].tolist() == [True, True, True, False]


def test_a_complement_hidden_in_one_audit_is_hidden_in_the_audits_that_refine_it() -> None:
    """A hidden group keeps a hidden subgroup in every finer audit (else it is their sum)."""
    frame = _cohort(3)
    scope = frame[list(ATTRIBUTES)].astype(str)
    sets = attribute_sets(ATTRIBUTES)
    hidden = {
        by: group_table(scope[list(by)], min_cell=FLOOR, scope=scope).assign(
            key=lambda t, by=by: [tuple(str(t[c].iloc[i]) for c in by) for i in range(len(t))]
        )
        for by in sets
    }
    for by in sets:
        for finer in sets:
            if len(finer) != len(by) + 1 or not set(by) <= set(finer):
                continue
            positions = [finer.index(name) for name in by]
            coarse = hidden[by].set_index("key")["suppressed"]
            fine = hidden[finer]
            for key, is_hidden in coarse.items():
                if not is_hidden:
                    continue
                children = fine.loc[
                    [tuple(k[p] for p in positions) == key for k in fine["key"]], "suppressed"
                ]
                assert children.any(), f"{by}={key} is the sum of its shown {finer} groups"


def test_calibration_bins_are_suppressed_across_audits() -> None:
    """The sex x bin points are hidden as the family of every audit's bins hides them."""
    frame = _cohort(11)
    scope = frame[list(ATTRIBUTES)]
    alone = calibration_by_group(frame["label"], frame["risk"], frame[["sex"]], min_cell=FLOOR)
    shared = calibration_by_group(
        frame["label"], frame["risk"], frame[["sex"]], min_cell=FLOOR, scope=scope
    )
    assert shared["suppressed"].sum() >= alone["suppressed"].sum()
    assert not shared["suppressed"].all()
