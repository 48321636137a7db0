"""Validation of messy input files: chunked reading, header and row shape, non-finite numbers,
over-long values, and logs that carry counts and positions only (no ids, no values)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from data.cohort_import import import_cohort, validate_cohort
from data.cohort_import.problems import (
    P_DUPLICATE_COLUMN,
    P_DUPLICATE_ID,
    P_MISSING_COLUMN,
    P_MORE,
    P_NO_OUTCOME,
    P_NOT_A_NUMBER,
    P_NOT_FINITE,
    P_NOT_IN_PATIENTS,
    P_RAGGED,
    P_TOO_LONG,
)
from data.cohort_import.reading import TableReader
from data.errors import CohortValidationError
from data.store import CohortStore, make_engine
from fusion.admin.cohort_import import problem_summary, run_import
from fusion.settings import Settings

N = 30
SCHEMA = """
[cohort]
name = "tiny"

[columns.bmi]
role = "numeric"
unit = "kg/m2"
low = 15
high = 60

[columns.marker]
role = "numeric"

[columns."snp_*"]
role = "genotype"
"""


def _ids(n: int = N) -> list[str]:
    return [f"Q{i:04d}" for i in range(1, n + 1)]


def write_cohort(folder: Path, n: int = N) -> Path:
    """A small clean cohort (no images): patients, outcomes, genomics and a schema."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = _ids(n)
    pd.DataFrame(
        {
            "patient_id": ids,
            "age": [40 + i % 30 for i in range(n)],
            "sex": ["F" if i % 2 else "M" for i in range(n)],
            "site": ["north" if i % 3 else "south" for i in range(n)],
            "bmi": [f"{20 + i % 10}.5" for i in range(n)],
            "marker": [f"{i * 0.25:.2f}" for i in range(n)],
        }
    ).to_csv(folder / "patients.csv", index=False)
    pd.DataFrame(
        {
            "patient_id": ids,
            "label": [i % 2 for i in range(n)],
            "treatment": ["none"] * n,
        }
    ).to_csv(folder / "outcomes.csv", index=False)
    pd.DataFrame(
        {"patient_id": ids, "snp_001": [i % 3 for i in range(n)], "snp_002": [0] * n}
    ).to_csv(folder / "genomics.csv", index=False)
    (folder / "schema.toml").write_text(textwrap.dedent(SCHEMA), encoding="utf-8")
    return folder


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    return write_cohort(tmp_path / "cohort")


def lines(folder: Path, name: str) -> list[str]:
    return (folder / name).read_text(encoding="utf-8").splitlines()


def write_lines(folder: Path, name: str, rows: list[str]) -> None:
    (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


def problems_of(folder: Path) -> pd.DataFrame:
    return validate_cohort(folder).problems


def test_the_tiny_cohort_is_clean(cohort: Path) -> None:
    report = validate_cohort(cohort)
    assert report.problems.empty, report.problems.to_string()
    assert report.n_patients == N


# ------------------------------------------------------------------ header: duplicates, delimiter
def test_a_duplicated_genotype_column_is_named_not_imported_as_a_new_feature(
    cohort: Path, tmp_path: Path
) -> None:
    rows = lines(cohort, "genomics.csv")
    write_lines(cohort, "genomics.csv", [f"{row},{row.split(',')[1]}" for row in rows])
    problems = problems_of(cohort)
    hit = problems[problems["problem"] == P_DUPLICATE_COLUMN]
    assert hit[["file", "column"]].values.tolist() == [["genomics.csv", "snp_001"]]
    assert "columns 2 and 4" in hit["fix"].iloc[0]
    assert not problems["column"].astype(str).str.contains(r"\.1$").any(), problems
    store = CohortStore(make_engine("sqlite://"))
    with pytest.raises(CohortValidationError):
        import_cohort(cohort, store, artifacts_dir=tmp_path / "a", reader=lambda p, s: None)  # type: ignore[arg-type,return-value]
    assert store.count_patients() == 0


def test_a_duplicated_described_column_is_one_problem_not_an_undescribed_copy(
    cohort: Path,
) -> None:
    rows = lines(cohort, "patients.csv")
    write_lines(cohort, "patients.csv", [f"{row},{row.split(',')[4]}" for row in rows])
    problems = problems_of(cohort)
    assert problems[["file", "column", "problem"]].values.tolist() == [
        ["patients.csv", "bmi", P_DUPLICATE_COLUMN]
    ]


@pytest.mark.parametrize(("delimiter", "word"), [(";", "semicolon"), ("\t", "tab")])
def test_a_file_with_another_delimiter_is_named_as_such(
    cohort: Path, delimiter: str, word: str
) -> None:
    rows = lines(cohort, "patients.csv")
    write_lines(cohort, "patients.csv", [row.replace(",", delimiter) for row in rows])
    problems = problems_of(cohort)
    mine = problems[problems["file"] == "patients.csv"]
    assert mine["problem"].tolist() == [f"this file is {word}-delimited, not comma-separated"]
    assert "save it as comma-separated" in mine["fix"].iloc[0]
    assert P_MISSING_COLUMN not in set(problems["problem"])


# ------------------------------------------------------------------ ragged rows
def test_a_row_with_an_unquoted_decimal_comma_is_one_message(cohort: Path) -> None:
    rows = lines(cohort, "patients.csv")
    rows[7] = rows[7].replace(".25", ",25").replace(".5,", ",5,")  # spreadsheet row 8
    assert rows[7].count(",") > rows[0].count(",")
    write_lines(cohort, "patients.csv", rows)
    problems = problems_of(cohort)
    mine = problems[problems["file"] == "patients.csv"]
    assert len(mine) == 1, mine.to_string()
    problem = mine.iloc[0]
    assert problem["problem"] == P_RAGGED
    assert problem["row"] == 8
    fields = rows[7].count(",") + 1
    assert problem["value"] == f"1 row(s): 8 ({fields} fields)"
    assert "the header has 6 fields" in problem["fix"]
    assert "decimal comma" in problem["fix"]


def test_many_ragged_rows_are_still_one_message_with_their_count(cohort: Path) -> None:
    rows = lines(cohort, "patients.csv")
    for i in range(1, len(rows), 2):
        rows[i] += ",extra"
    write_lines(cohort, "patients.csv", rows)
    mine = problems_of(cohort).query("file == 'patients.csv'")
    assert mine["problem"].tolist() == [P_RAGGED]
    assert mine["row"].iloc[0] == 2
    assert mine["value"].iloc[0].startswith(f"{N // 2} row(s): 2 (7 fields), 4 (7 fields)")


def test_a_short_row_is_named_too(cohort: Path) -> None:
    rows = lines(cohort, "patients.csv")
    rows[4] = ",".join(rows[4].split(",")[:3])
    write_lines(cohort, "patients.csv", rows)
    mine = problems_of(cohort).query("file == 'patients.csv'")
    assert mine["problem"].tolist() == [P_RAGGED]
    assert mine["value"].iloc[0] == "1 row(s): 5 (3 fields)"
    assert "cut short" in mine["fix"].iloc[0]


# ------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("column", ["marker", "bmi"])
def test_non_finite_numbers_are_refused_with_or_without_a_range(
    cohort: Path, value: str, column: str
) -> None:
    frame = pd.read_csv(cohort / "patients.csv", dtype=str)
    frame.loc[3, column] = value  # spreadsheet row 5
    frame.to_csv(cohort / "patients.csv", index=False)
    problems = problems_of(cohort)
    assert problems[["file", "row", "column", "problem"]].values.tolist() == [
        ["patients.csv", 5, column, P_NOT_FINITE]
    ]
    assert problems["value"].iloc[0] == value


# ------------------------------------------------------------------ over-long values
def test_an_over_long_text_value_is_a_validation_problem(cohort: Path) -> None:
    long_site = "s" * 40  # demographics.site holds 32 characters
    frame = pd.read_csv(cohort / "patients.csv", dtype=str)
    frame.loc[9, "site"] = long_site
    frame.to_csv(cohort / "patients.csv", index=False)
    outcomes = pd.read_csv(cohort / "outcomes.csv", dtype=str)
    outcomes.loc[2, "treatment"] = "t" * 33
    outcomes.to_csv(cohort / "outcomes.csv", index=False)
    problems = problems_of(cohort)
    assert sorted(problems[["file", "row", "column", "problem"]].values.tolist()) == [
        ["outcomes.csv", 4, "treatment", P_TOO_LONG],
        ["patients.csv", 11, "site", P_TOO_LONG],
    ]
    assert "at most 32 characters" in problems["fix"].iloc[0]


def test_an_over_long_value_never_reaches_postgresql(
    cohort: Path, tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    frame = pd.read_csv(cohort / "patients.csv", dtype=str)
    frame.loc[9, "site"] = "s" * 40
    frame.to_csv(cohort / "patients.csv", index=False)
    store = CohortStore(make_engine(postgres_database()))
    try:
        with pytest.raises(CohortValidationError) as caught:
            import_cohort(cohort, store, artifacts_dir=tmp_path / "a", reader=lambda p, s: None)  # type: ignore[arg-type,return-value]
        assert caught.value.report.errors["problem"].tolist() == [P_TOO_LONG]
        assert store.count_patients() == 0
    finally:
        store.engine.dispose()


# ------------------------------------------------------------------ chunks and caps
def test_chunked_validation_finds_what_one_chunk_finds(
    cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patients = pd.read_csv(cohort / "patients.csv", dtype=str)
    patients.loc[25, "patient_id"] = patients.loc[1, "patient_id"].lower()  # duplicate, far apart
    patients.loc[12, "bmi"] = "twenty"
    patients.to_csv(cohort / "patients.csv", index=False)
    outcomes = pd.read_csv(cohort / "outcomes.csv", dtype=str)
    outcomes.loc[20, "patient_id"] = "NOBODY"
    outcomes.to_csv(cohort / "outcomes.csv", index=False)
    whole = problems_of(cohort)
    seen: list[int] = []
    real_frame = TableReader._frame

    def small(block: list[object], labels: list[int], columns: list[str]) -> pd.DataFrame:
        seen.append(len(block))
        return real_frame(block, labels, columns)

    monkeypatch.setattr("data.cohort_import.reading.chunk_rows", lambda n_columns: 4)
    monkeypatch.setattr(TableReader, "_frame", staticmethod(small))
    chunked = problems_of(cohort)
    assert max(seen) == 4
    assert len(seen) >= 3 * (N // 4)  # three tables, each in chunks of four rows
    pd.testing.assert_frame_equal(chunked, whole)
    duplicate = chunked[chunked["problem"] == P_DUPLICATE_ID]
    assert duplicate["row"].tolist() == [3, 27]
    assert {P_NOT_IN_PATIENTS, P_NO_OUTCOME, P_NOT_A_NUMBER} <= set(chunked["problem"])


def test_problem_rows_are_capped_per_kind_and_the_rest_counted(
    cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("data.cohort_import.problems.MAX_LISTED", 5)
    frame = pd.read_csv(cohort / "patients.csv", dtype=str)
    frame["bmi"] = "heavy"
    frame.to_csv(cohort / "patients.csv", index=False)
    problems = problems_of(cohort)
    bmi = problems[problems["column"] == "bmi"]
    assert len(bmi) == 6
    assert bmi["row"].dropna().tolist() == [2, 3, 4, 5, 6]
    summary = bmi[bmi["row"].isna()].iloc[0]
    assert summary["problem"] == f"{P_NOT_A_NUMBER}: {N - 5} {P_MORE}"
    assert summary["value"] == f"{N - 5} more from row 7"


# ------------------------------------------------------------------ logs
def test_import_logs_carry_counts_and_positions_never_ids_or_values(
    cohort: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    patients = pd.read_csv(cohort / "patients.csv", dtype=str)
    patients.loc[3, "bmi"] = "twenty"
    patients.loc[4, "site"] = "x" * 40
    patients.loc[6, "patient_id"] = patients.loc[5, "patient_id"]
    patients.to_csv(cohort / "patients.csv", index=False)
    settings = Settings.from_env({"RISKFUSION_HOME": str(tmp_path / "home")})
    caplog.set_level(logging.DEBUG)
    status = run_import(settings, cohort, progress=False, report_path=tmp_path / "problems.csv")
    assert status == 2
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "patients.csv, column bmi: 1 x not a number (rows 5)" in text
    assert "duplicate patient id (rows 7, 8)" in text
    for secret in [*_ids(), "twenty", "x" * 40]:
        assert secret not in text, secret
    written = pd.read_csv(tmp_path / "problems.csv", dtype=str)
    assert "twenty" in set(written["value"])  # the report file keeps the values

    # A clean import logs counts only, too.
    caplog.clear()
    clean = write_cohort(tmp_path / "clean")
    assert run_import(settings, clean, progress=False) == 0
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert f"{N} patients added" in text
    for pid in _ids():
        assert pid not in text


def test_problem_summary_hides_scan_file_names() -> None:
    problems = pd.DataFrame(
        {
            "severity": ["error", "error"],
            "file": ["images/Q0001.png", "images/Q0002.npy"],
            "row": pd.array([None, None], dtype="Int64"),
            "column": ["", ""],
            "value": ["Q0001", ""],
            "problem": [
                "the file cannot be read as an image (cannot identify image file "
                "'/data/images/Q0001.png')",
                "the file cannot be read as an image (broken)",
            ],
            "fix": ["replace it", "replace it"],
        }
    )
    text = problem_summary(problems)
    assert text == "error: images/: 2 x the file cannot be read as an image"


def test_a_database_error_does_not_print_patient_rows() -> None:
    store = CohortStore(make_engine("sqlite://"))
    store.create_schema()
    insert = text("INSERT INTO patients (patient_id, split, source) VALUES (:p, 'train', 's')")
    with store.engine.begin() as conn:
        conn.execute(insert, {"p": "Q0001"})
    with pytest.raises(IntegrityError) as caught, store.engine.begin() as conn:
        conn.execute(insert, {"p": "Q0001"})
    assert "Q0001" not in str(caught.value)
    assert "parameters hidden" in str(caught.value)
