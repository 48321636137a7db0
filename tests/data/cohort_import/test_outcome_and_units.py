"""The schema's ``[outcome]`` (stored with the cohort) and the column-level unit check."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data.vocabulary
from data.cohort_import import checks as checks_module
from data.cohort_import import import_cohort, validate_cohort
from data.cohort_import.problems import P_MIXED_UNITS, P_SCHEMA, P_UNIT, ProblemLog
from data.cohort_import.schema import ColumnSpec, load_schema, read_schema
from data.cohort_import.units import UnitScan
from data.errors import ValidationReport
from data.store import CohortStore
from data.vocabulary import DEMO_OUTCOME, UNDECLARED_OUTCOME, OutcomeSpec
from tests.cohorts import UNLIKE_OUTCOME, write_unlike_cohort


def _schema(tmp_path: Path, outcome: str) -> Path:
    path = tmp_path / "schema.toml"
    path.write_text(f'[cohort]\nname = "x"\n\n{outcome}\n', encoding="utf-8")
    return path


def test_the_outcome_is_declared_with_a_horizon_only_if_it_has_one(tmp_path: Path) -> None:
    timed = load_schema(_schema(tmp_path, '[outcome]\nname = "Stroke"\nhorizon_years = 2'))
    assert timed.outcome == OutcomeSpec("Stroke", "", 2.0)
    now = load_schema(_schema(tmp_path, '[outcome]\nname = "Current diagnosis"'))
    assert now.outcome.horizon_years is None
    assert now.outcome.risk_label == "Fused risk (Current diagnosis)"
    assert now.outcome.outcome_text(1) == "Current diagnosis: yes"
    assert load_schema(_schema(tmp_path, "")).outcome == UNDECLARED_OUTCOME


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("[outcome]\ndescription = 'no name'", "outcome.name"),
        ("[outcome]\nname = 'x'\nhorizon_years = 0", "outcome.horizon_years"),
        ("[outcome]\nname = 'x'\nhorizon_years = 'five'", "outcome.horizon_years"),
        ("[outcome]\nname = 'x'\nhorizon = 5", "outcome.horizon"),
    ],
)
def test_an_invalid_outcome_names_the_key_and_the_fix(tmp_path: Path, entry: str, key: str) -> None:
    problems = ProblemLog()
    read_schema(_schema(tmp_path, entry), problems)
    table = problems.frame()
    assert list(table["problem"]) == [P_SCHEMA]
    assert list(table["column"]) == [key]


def test_the_outcome_is_stored_with_the_cohort_and_updated_alone(
    tmp_path: Path, memory_store: CohortStore
) -> None:
    assert memory_store.outcome_spec() == DEMO_OUTCOME  # an empty store: the demo's words
    cohort = write_unlike_cohort(tmp_path / "cohort", n_patients=40)
    import_cohort(
        cohort.folder,
        memory_store,
        artifacts_dir=tmp_path / "home",
        reader=None,  # type: ignore[arg-type]
    )
    spec = memory_store.outcome_spec()
    assert spec.name == UNLIKE_OUTCOME
    assert spec.horizon_years is None
    schema = cohort.folder / "schema.toml"
    schema.write_text(
        schema.read_text().replace(UNLIKE_OUTCOME, "Diagnosis at the visit"), encoding="utf-8"
    )
    counts = import_cohort(
        cohort.folder,
        memory_store,
        artifacts_dir=tmp_path / "home",
        reader=None,  # type: ignore[arg-type]
    ).counts
    assert counts is not None
    assert counts.added == counts.updated == 0  # the patients are untouched
    assert memory_store.outcome_spec().name == "Diagnosis at the visit"
    assert memory_store.outcome_counts() == {
        "patients": 40,
        "event_time": 0,
        "event": 0,
        "treatment": 0,
    }


def _unit_problems(values: list[float], spec: ColumnSpec) -> pd.DataFrame:
    problems = ProblemLog()
    scan = UnitScan("patients.csv", [(spec.name, spec)])
    typed = pd.DataFrame({spec.name: values}, index=range(2, 2 + len(values)))
    scan.add(typed.iloc[: len(values) // 2])  # two chunks
    scan.add(typed.iloc[len(values) // 2 :])
    scan.report(problems)
    return problems.frame()


VOLUME = ColumnSpec("brain_volume", "numeric", unit="mL", low=800.0, high=2000.0)


def test_two_groups_1000x_apart_are_one_column_problem() -> None:
    rng = np.random.default_rng(0)
    values = list(rng.normal(1150, 100, 13)) + list(rng.normal(1150, 100, 183) * 1000)
    table = _unit_problems(values, VOLUME)
    assert list(table["problem"]) == [P_MIXED_UNITS]
    assert table["value"].iloc[0].startswith("183 of 196 values")
    assert "convert the 183 values" in table["fix"].iloc[0]
    assert "rows 2, 3, 4, 5, 6" in table["fix"].iloc[0]  # where the other unit's values are


@pytest.mark.parametrize(
    "values",
    [
        list(np.random.default_rng(1).lognormal(1.0, 1.6, 500)),  # CRP-like: 4 decades, no gap
        [1150.0] * 50 + [1_150_000.0],  # one value 1000x off: a cell problem, not the column's
        [1150.0] * 50 + [11.5] * 10,  # two groups 100x apart: not a unit factor of 1000
    ],
)
def test_a_wide_column_or_a_single_outlier_is_not_a_mixed_unit(values: list[float]) -> None:
    spec = ColumnSpec("x", "numeric", low=None, high=None)
    assert _unit_problems(values, spec).empty


def test_the_column_problem_replaces_the_cell_problems(tmp_path: Path) -> None:
    cohort = write_unlike_cohort(tmp_path / "cohort", n_patients=60, mixed_units="tight")
    report = validate_cohort(cohort.folder)
    volume = report.problems[report.problems["column"] == "brain_volume"]
    assert list(volume["problem"]) == [P_MIXED_UNITS]
    assert P_UNIT not in set(report.problems["problem"])
    assert not report.ok  # still an error: nothing would be written


def test_the_terminal_table_cuts_nothing() -> None:
    fix = "convert " + "x" * 150 + " to mL"
    problems = ProblemLog()
    problems.add("patients.csv", P_MIXED_UNITS, fix, column="brain_volume", value="183 of 196")
    problems.add("patients.csv", "not a number", "use digits", row=5, column="bmi", value="abc")
    text = ValidationReport(problems.frame()).to_text()
    assert fix in text
    assert "patients.csv, row 5, column bmi: abc" in text
    assert "problem: not a number" in text


@pytest.mark.parametrize("module", [data.vocabulary, checks_module])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]
