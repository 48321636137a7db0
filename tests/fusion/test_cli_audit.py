"""``riskfusion audit`` and the exports it writes (CSV table, self-contained HTML)."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from fusion.cli import main
from fusion.evaluation.fairness import audit
from fusion.reports.audit_report import audit_csv, audit_figures, audit_html, demo_bias_note


@pytest.fixture
def report():
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"site": np.repeat(["a", "b", "c", "d"], [200, 150, 40, 6])})
    y = rng.integers(0, 2, len(groups))
    return audit(y, rng.uniform(size=len(groups)), groups, threshold=0.5, n_resamples=20)


def test_csv_and_html_mark_suppressed_cells(report) -> None:
    rows = list(csv.DictReader(audit_csv(report).splitlines()))
    assert [row["group"] for row in rows] == ["a", "b", "c", "d"]
    # d, and c to protect d: empty numeric cells, the reason in its own column.
    assert rows[3]["n"] == rows[2]["n"] == ""
    assert rows[3]["suppressed"] == rows[2]["suppressed"] == "True"
    assert rows[2]["suppressed_reason"].startswith("group suppressed: fewer than 11")
    assert rows[0]["n"] == "200"  # an integer, not 200.0
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


def test_audit_html_is_self_contained_with_every_figure(home_env, tmp_path) -> None:
    out = tmp_path / "report.html"
    args = ["audit", "--by", "sex", "--min-cell", "2", "--resamples", "20", "--out", str(out)]
    assert main(args) == 0
    page = out.read_text()
    assert page.count("plotly.js v") == 1  # the library, inlined once
    assert "<script src=" not in page  # nothing fetched: opens offline
    assert 'src="http' not in page  # no remote image or frame either
    assert "<link" not in page  # no remote stylesheet
    for title in ("Disparity: auroc by group", "ROC by group", "Calibration by group"):
        assert f"<h2>{title}</h2>" in page
    # 4 forest plots, ROC and calibration by group, decision curve and smoothed calibration
    assert page.count('class="plotly-graph-div"') == 8
    assert "deliberately injected bias" in page  # the tiny demo is built with the bias on


def test_audit_command_bands_ages_adjusts_flags_and_writes_the_compact_table(
    home_env, tmp_path, caplog, capsys
) -> None:
    caplog.set_level(logging.INFO)  # the summary line is INFO
    out, compact = tmp_path / "age.csv", tmp_path / "compact.csv"
    args = ["audit", "--by", "age_band", "--min-cell", "2", "--resamples", "20"]
    args += ["--bins", "age=40,60,75", "--method", "bh", "--out", str(out)]
    assert main([*args, "--comparisons", str(compact)]) == 0
    table = pd.read_csv(out)
    assert set(table["age_band"]) <= {"<40", "40-59", "60-74", "75+"}
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert all(n.isdigit() for n in raw["n"] if n), raw["n"].tolist()  # "18", never "18.0"
    rows = pd.read_csv(compact)
    assert set(rows["group"]) < set(table["group"])  # the reference is not compared
    assert rows["p_adjusted"].dtype.kind == "f"
    summary = capsys.readouterr().out  # the summary line is a result: stdout
    assert "Benjamini-Hochberg-adjusted" in summary or "nothing compared" in summary
    caplog.clear()
    assert main(["audit", "--by", "age_band", "--bins", "age=60,40", "--out", str(out)]) == 2
    assert "40,60,75" in caplog.text  # the message shows a valid example


def test_audit_figures_follow_the_report(report) -> None:
    roc = pd.DataFrame({"group": ["a", "a"], "fpr": [0, 1], "tpr": [0, 1]})
    calibration = pd.DataFrame(
        {
            "group": ["a", "a", "b"],
            "mean_risk": [0.2, np.nan, 0.5],
            "observed": [0.3, np.nan, 0.4],
            "n": [40, np.nan, 30],
            "suppressed": [False, True, False],
        }
    )
    figures = audit_figures(report, roc_by_group=roc, calibration_by_group=calibration)
    assert list(figures)[-2:] == ["ROC by group", "Calibration by group"]
    forest = figures["Disparity: auroc by group"]
    assert list(forest.data[0].y) == ["a", "b"]  # c and d are suppressed
    drawn = figures["Calibration by group"]
    assert [trace.name for trace in drawn.data][1:] == ["a", "b"]
    assert list(drawn.data[1].customdata) == [40]  # the suppressed bin is not drawn
    assert "1 small bin(s) suppressed" in drawn.layout.title.text


def test_demo_bias_note_names_the_switch() -> None:
    assert "--no-bias" in str(demo_bias_note({"bias": True}))
    assert "without injected bias" in str(demo_bias_note({"bias": False}))
    assert demo_bias_note({}) is None


def test_audit_command_rejects_bad_arguments(home_env, tmp_path, caplog) -> None:
    assert main(["audit", "--by", "zip", "--out", str(tmp_path / "a.csv")]) == 2
    assert "Unknown sensitive attributes" in caplog.text
    assert main(["audit", "--by", "sex", "--out", str(tmp_path / "a.txt")]) == 2
    assert "must end in .html" in caplog.text


def test_the_demo_bias_switch_reaches_the_build_config() -> None:
    from fusion.cli.parser import build_parser
    from fusion.settings import Settings

    assert build_parser().parse_args(["demo", "--no-bias"]).bias is False
    assert build_parser().parse_args(["demo"]).bias is None  # then the setting decides
    assert Settings.from_env({}).demo_bias is True
    assert Settings.from_env({"RISKFUSION_DEMO_BIAS": "0"}).demo_bias is False
    with pytest.raises(ValueError, match=r"RISKFUSION_DEMO_BIAS='maybe' is not a switch"):
        Settings.from_env({"RISKFUSION_DEMO_BIAS": "maybe"})
