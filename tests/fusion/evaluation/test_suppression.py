"""Small-cell suppression: the line rule and the performance page's confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from fusion.evaluation.metrics import confusion_at
from fusion.evaluation.performance import evaluate_performance
from fusion.evaluation.suppression import confusion_table, suppress_cells, suppress_confusion

LABELS = {"index": ["no event", "event"], "columns": ["below threshold", "at/above threshold"]}


def _bounds(table: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """Tightest bounds on each hidden cell from the shown cells and totals (an LP attack)."""
    cells = table.drop(index="total", columns="total")
    hidden = [(r, c) for r in cells.index for c in cells.columns if np.isnan(cells.loc[r, c])]
    rows, totals = [], []
    for axis, labels in ((0, cells.index), (1, cells.columns)):
        for label in labels:
            line = cells.loc[label] if axis == 0 else cells[label]
            total = table.loc[label, "total"] if axis == 0 else table.loc["total", label]
            rows.append([float((h[axis]) == label) for h in hidden])
            totals.append(total - line.sum(skipna=True))
    rows.append([1.0] * len(hidden))
    totals.append(table.loc["total", "total"] - np.nansum(cells.to_numpy()))
    bounds = {}
    for k, cell in enumerate(hidden):
        objective = np.eye(len(hidden))[k]
        low = linprog(objective, A_eq=rows, b_eq=totals, bounds=(0, None))
        high = linprog(-objective, A_eq=rows, b_eq=totals, bounds=(0, None))
        assert low.status == 0
        assert high.status == 0
        bounds[cell] = (low.fun, -high.fun)
    return bounds


@pytest.mark.parametrize(
    ("counts", "hidden"),
    [
        ([[120, 30], [5, 45]], 4),  # 5 missed events: every cell needs a partner
        ([[120, 30], [0, 50]], 4),  # "no event missed" is a disclosure too: all four hide
        ([[120, 30], [11, 39]], 0),  # at the threshold: shown
    ],
)
def test_small_cell_is_hidden_and_not_derivable_from_the_totals(counts, hidden: int) -> None:
    frame = pd.DataFrame(counts, **LABELS)
    table = suppress_confusion(frame, 11)
    assert int(table.isna().to_numpy().sum()) == hidden
    # Totals are always shown and are the true margins.
    assert table["total"].tolist() == [*frame.sum(axis=1), frame.to_numpy().sum()]
    assert table.loc["total"].tolist()[:2] == frame.sum(axis=0).tolist()
    shown = table.drop(index="total", columns="total").to_numpy().ravel()
    assert all(n >= 11 for n in shown if n > 0)  # NaN compares False: hidden cells pass
    for cell, (low, high) in _bounds(table).items():
        true = frame.loc[cell]
        assert low <= true <= high
        if true > 0:
            assert high - low >= 1, f"{cell} = {true} follows from the totals"


def test_text_table_marks_hidden_cells() -> None:
    frame = pd.DataFrame([[120, 30], [5, 45]], **LABELS)
    text = confusion_table(suppress_confusion(frame, 11), min_cell=11)
    assert text.loc["event", "below threshold"] == "suppressed (n < 11)"
    assert text.loc["event", "total"] == "50"
    assert "5" not in text.drop(columns="total").to_numpy().ravel().tolist()
    assert confusion_table(suppress_confusion(frame, 0), min_cell=0).loc["event"].tolist() == [
        "5",
        "45",
        "50",
    ]
    with pytest.raises(ValueError, match="min_cell=-1"):
        suppress_confusion(frame, -1)


def test_performance_report_suppresses_its_confusion_matrix() -> None:
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(150, dtype=int), np.ones(50, dtype=int)]
    # 5 of the 50 events fall below the threshold.
    risk = np.r_[rng.uniform(0, 0.7, 150), rng.uniform(0.0, 0.49, 5), rng.uniform(0.5, 1, 45)]
    frame = pd.DataFrame({"label": y, "risk": risk})
    report = evaluate_performance(frame, model_version="v", threshold=0.5, n_resamples=0)
    raw = confusion_at(y, risk, 0.5)
    assert raw.loc["event", "below threshold"] == 5
    assert report.confusion.drop(index="total", columns="total").isna().all().all()
    assert report.confusion.loc["total", "total"] == len(y)
    assert report.confusion_table().loc["event", "below threshold"] == "suppressed (n < 11)"
    shown = evaluate_performance(frame, model_version="v", threshold=0.5, n_resamples=0, min_cell=5)
    pd.testing.assert_frame_equal(
        shown.confusion.drop(index="total", columns="total"), raw.astype(np.float64)
    )


@pytest.mark.parametrize(
    ("cells", "min_cell", "hidden"),
    [
        # one axis: the old partition rule
        ({("a",): 50, ("b",): 30, ("c",): 12, ("d",): 5}, 11, {("c",), ("d",)}),
        ({("a",): 50, ("b",): 0, ("c",): 30}, 11, {("b",)}),  # empty: no complement
        ({("a",): 50, ("b",): 0, ("c",): 5, ("d",): 30}, 11, {("b",), ("c",), ("d",)}),
        # two axes: every row and column with a hidden cell gets a partner
        (
            {("F", "a"): 50, ("F", "b"): 5, ("M", "a"): 40, ("M", "b"): 30},
            11,
            {("F", "a"), ("F", "b"), ("M", "a"), ("M", "b")},
        ),
        (
            {("F", "a"): 50, ("F", "b"): 5, ("F", "c"): 4, ("M", "a"): 40, ("M", "b"): 30},
            11,
            # site c has no M cell to partner F & c (its column total, 4, is itself a small
            # cell of the audit by site); the chain b column -> M row -> a column hides the rest.
            {("F", "a"), ("F", "b"), ("F", "c"), ("M", "a"), ("M", "b")},
        ),
        ({("F", "a"): 50, ("F", "b"): 12, ("M", "a"): 40, ("M", "b"): 30}, 11, set()),
    ],
)
def test_line_rule(cells: dict, min_cell: int, hidden: set) -> None:
    counts = pd.Series(cells)
    mask = suppress_cells(counts, min_cell)
    assert set(counts.index[mask]) == hidden
    values = counts.to_numpy()
    for axis in range(counts.index.nlevels):  # no line holds exactly one hidden count...
        others = [k for k in range(counts.index.nlevels) if k != axis]
        keys = [counts.index.get_level_values(k) for k in others] or [np.zeros(len(values))]
        lines = pd.DataFrame({"hidden": mask & (values > 0), "filled": values > 0})
        per_line = lines.groupby(keys).sum()
        lonely = per_line.loc[per_line["hidden"] == 1]
        # ...unless it is the line's only count: then the line total is that small count,
        # which the table of the other attributes suppresses itself.
        assert (lonely["filled"] == 1).all()
