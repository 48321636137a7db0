"""``riskfusion audit`` and the exports it writes (CSV table, self-contained HTML)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from fusion.cli import main
from fusion.fairness import audit
from fusion.report import audit_csv, audit_html


@pytest.fixture
def report():
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"site": np.repeat(["a", "b", "c", "d"], [200, 150, 40, 6])})
    y = rng.integers(0, 2, len(groups))
    return audit(y, rng.uniform(size=len(groups)), groups, threshold=0.5, n_resamples=20)


def test_csv_and_html_mark_suppressed_cells(report) -> None:
    rows = list(csv.DictReader(audit_csv(report).splitlines()))
    assert [row["group"] for row in rows] == ["a", "b", "c", "d"]
    assert rows[3]["n"] == rows[2]["n"] == "suppressed (n < 11)"  # d, and c to protect d
    assert float(rows[0]["n"]) == 200
    page = audit_html(
        report,
        model_version="fusion-x",
        created=datetime(2026, 11, 29, tzinfo=UTC),
        figures={"One": go.Figure(go.Bar(y=[1])), "Two": go.Figure(go.Bar(y=[2]))},
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "fusion-x" in page
    assert "2026-11-29T00:00:00+00:00" in page
    assert page.count("suppressed (n &lt; 11)") > 10
    assert page.count("plotly.js v") == 1  # inlined once, so the file works offline
    assert "<script src=" not in page


@pytest.mark.parametrize("suffix", [".csv", ".html"])
def test_audit_command_writes_the_report(home_env, tmp_path, suffix: str) -> None:
    out = tmp_path / f"audit{suffix}"
    args = ["audit", "--by", "sex", "--min-cell", "2", "--resamples", "20", "--out", str(out)]
    assert main(args) == 0
    text = out.read_text()
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        assert {row["sex"] for row in rows} <= {"F", "M"}
        assert sum(float(row["n"]) for row in rows) > 0
    else:
        assert "Bias audit of fusion-" in text


def test_audit_command_rejects_bad_arguments(home_env, tmp_path, caplog) -> None:
    assert main(["audit", "--by", "zip", "--out", str(tmp_path / "a.csv")]) == 2
    assert "Unknown sensitive attributes" in caplog.text
    assert main(["audit", "--by", "sex", "--out", str(tmp_path / "a.txt")]) == 2
    assert "must end in .html" in caplog.text
