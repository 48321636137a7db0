"""Property-based test (hypothesis) of the importer: a random damaged cell in any table gets a
problem report naming that file, row and column, or imports correctly; never a crash, never a
partial write."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.cohort_import import import_cohort
from data.errors import CohortValidationError
from data.store import CohortStore, make_engine
from models.scans import read_scan

EXAMPLE = Path(__file__).resolve().parents[3] / "data" / "examples" / "cohort"
TABLES = ("patients.csv", "genomics.csv", "outcomes.csv")
N_EXAMPLE = sum(1 for _ in (EXAMPLE / "patients.csv").open()) - 1
"""Patients in the shipped example (one per data row of ``patients.csv``)."""

cell_values = st.one_of(
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**9), max_value=10**9).map(str),
    st.sampled_from(["", "NA", "1e400", "-0", "P0000001", "site_z", "unknown"]),
)


def _rewrite_cell(path: Path, row: int, column: int, value: str) -> tuple[int, str]:
    """Replace one cell; returns the 1-based data row and the column name."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    r = row % len(body)
    c = column % len(header)
    body[r][c] = value
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *body])
    return r + 1, header[c]


@settings(
    max_examples=30,
    derandomize=True,  # the same examples on every run: CI cannot flake
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    table=st.sampled_from(TABLES),
    row=st.integers(min_value=0, max_value=10_000),
    column=st.integers(min_value=0, max_value=10_000),
    value=cell_values,
)
def test_a_damaged_cell_is_reported_or_imported_never_half_written(
    tmp_path_factory: pytest.TempPathFactory, table: str, row: int, column: int, value: str
) -> None:
    work = tmp_path_factory.mktemp("cohort")
    folder = work / "cohort"
    shutil.copytree(EXAMPLE, folder)
    data_row, name = _rewrite_cell(folder / table, row, column, value)
    store = CohortStore(make_engine("sqlite://"))
    artifacts = work / "artifacts"
    try:
        result = import_cohort(folder, store, artifacts_dir=artifacts, reader=read_scan)
    except CohortValidationError as err:
        problems = err.report.problems
        assert not problems.empty
        assert {"file", "row", "column", "problem", "fix"} <= set(problems.columns)
        assert problems["fix"].astype(str).str.len().gt(0).all()
        # Nothing of the refused import stays: no rows, no scan files.
        assert store.count_patients() == 0
        assert not list(artifacts.rglob("*.npy")) if artifacts.exists() else True
        mentions = problems[problems["file"].astype(str).str.endswith(table)]
        assert not mentions.empty, (table, data_row, name, value, problems)
    else:
        assert result.counts is not None
        assert store.count_patients() == N_EXAMPLE
    finally:
        store.engine.dispose()
