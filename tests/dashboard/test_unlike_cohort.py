"""A cohort unlike the demo, from import to the pages: its own words and modalities only.

The cohort (:func:`tests.cohorts.write_unlike_cohort`): 200 patients with lower-case ids, noise
scans for some, no genomics, a cross-sectional outcome "Current diagnosis" (no event times, no
treatments), one strong tabular predictor. It goes through the command line as a user would
(import -> train -> export -> explain -> forecast -> audit), then every page through AppTest,
and nothing may speak of the demo world: no "5-year", no genomics, no "rebuild the demo", no
oracle, no demo ids; the training split's risks are marked in-sample.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from streamlit.testing.v1 import AppTest

from fusion.cli import main
from fusion.cli.cohort import REFUSED_DRY_RUN
from fusion.service.cohort_words import cohort_words
from fusion.service.facade import RiskService
from fusion.settings import Settings
from tests.cohorts import UNLIKE_OUTCOME, UnlikeCohort, write_unlike_cohort

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

APP = str(Path(__file__).resolve().parents[2] / "app.py")
DEMO_WORDS = (
    "5-year",
    "within 5 years",
    "rebuild the demo",
    "P00001",
    "oracle",
    "true lesion outline",
    "genomics",
    "nvimagecodec",
)


@pytest.fixture(scope="module")
def unlike(tmp_path_factory: pytest.TempPathFactory) -> tuple[UnlikeCohort, Path]:
    """The cohort imported and trained through the command line (home folder)."""
    root = tmp_path_factory.mktemp("unlike")
    cohort = write_unlike_cohort(root / "cohort")
    home = root / "home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RISKFUSION_HOME", str(home))
        env.delenv("RISKFUSION_DATABASE_URL", raising=False)
        assert main(["import", str(cohort.folder)]) == 0
        assert main(["train", "--epochs", "1", "--folds", "2"]) == 0
    return cohort, home


@pytest.fixture
def home_env(unlike, monkeypatch: pytest.MonkeyPatch) -> tuple[UnlikeCohort, Path]:
    cohort, home = unlike
    monkeypatch.setenv("RISKFUSION_HOME", str(home))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    return cohort, home


def _no_demo_words(text: str) -> None:
    lowered = text.lower()
    found = {
        word: text[max(0, at - 120) : at + 80]
        for word in DEMO_WORDS
        if (at := lowered.find(word.lower())) >= 0
    }
    assert not found, f"demo words in context: {found}"


@pytest.mark.parametrize("ranges", ["tight", "loose"])
def test_a_mixed_unit_column_gets_one_problem_and_no_done(
    ranges: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cohort = write_unlike_cohort(tmp_path / "cohort", mixed_units=ranges)  # type: ignore[arg-type]
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    report = tmp_path / "problems.csv"
    assert main(["import", str(cohort.folder), "--dry-run", "--report", str(report)]) == 2
    with report.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["column"] == "brain_volume"]
    assert len(rows) == 1, rows  # one column-level problem, not one per cell
    assert rows[0]["row"] == ""
    n_wrong = len(cohort.wrong_unit_rows)
    assert rows[0]["value"].startswith(f"{n_wrong} of 200 values")
    assert "1000x" in rows[0]["problem"]
    assert REFUSED_DRY_RUN in caplog.records[-1].getMessage()  # the last word: refused
    assert "import done" not in caplog.text
    assert "nvImageCodec" not in caplog.text + capfd.readouterr().err


def test_import_train_export_explain_forecast_audit(
    home_env,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cohort, _ = home_env
    out = tmp_path / "predictions.csv"
    assert main(["export", "predictions", "--out", str(out)]) == 0
    captured = capfd.readouterr()
    assert f"of '{UNLIKE_OUTCOME}'" in captured.out  # a result: stdout
    assert "in-sample" in captured.out
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 200
    assert {r["in_sample"] for r in rows if r["split"] == "train"} == {"1"}
    assert {r["in_sample"] for r in rows if r["split"] != "train"} == {"0"}
    _no_demo_words(out.read_text())

    # A lower-case id, as written in the cohort's files, works as in the dashboard.
    with_scan = cohort.with_scan[0]
    assert with_scan == with_scan.lower()
    assert main(["explain", with_scan, "--out", str(tmp_path / "explained")]) == 0
    document = json.loads((tmp_path / "explained" / "explanation.json").read_text())
    assert document["patient_id"] == with_scan.upper()
    assert document["modalities"] == ["demographics", "ehr", "imaging"]
    # No genomics anywhere; imaging (noise scans) may be dropped by the modality-value rule.
    assert {"demographics", "ehr"} <= set(document["modality_sums"])
    assert set(document["modality_sums"]) <= {"demographics", "ehr", "imaging"}
    assert {f["modality"] for f in document["features"]} <= {"demographics", "ehr", "imaging"}
    assert document["outcome"] == {
        "name": UNLIKE_OUTCOME,
        "description": "Dementia diagnosed at the visit (cross-sectional).",
        "horizon_years": None,
    }
    assert "gradcam" in document["maps"]
    assert document["lesion_mask"] is None
    capfd.readouterr()

    assert main(["forecast", cohort.patient_ids[0], "--out", str(tmp_path / "f.json")]) == 2
    err = caplog.text
    assert "no event time for 200 of 200 patients" in err
    assert "no treatment" in err
    assert "rebuild the demo" not in err

    assert main(["audit", "--by", "sex", "--out", str(tmp_path / "audit.csv")]) == 0
    assert "audited" in capfd.readouterr().out


def test_the_report_and_the_service_use_the_cohorts_words(home_env) -> None:
    from fusion.reports.patient_report import case_report

    _, home = home_env
    service = RiskService.from_settings(Settings.from_env({"RISKFUSION_HOME": str(home)}))
    words = cohort_words(service)
    assert words.outcome.name == UNLIKE_OUTCOME
    assert words.outcome.horizon_years is None
    assert words.modalities == ("demographics", "ehr", "imaging")
    assert words.maskable == ("imaging", "ehr")
    assert not words.is_demo
    pid = words.example_id
    assert list(service.modality_what_if(pid)["scenario"]) == [
        "all available",
        "without scan",
        "without EHR",
    ]
    report = case_report(service, service.load_patient(pid))
    assert f"fused risk ({UNLIKE_OUTCOME})" in report
    _no_demo_words(report)
    service.store.engine.dispose()


def _page_text(at: AppTest) -> str:
    """Every word a page shows: text, labels, helps, placeholders, tables and charts."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error"):
        parts += [str(element.value) for element in getattr(at, kind)]
    parts += [f"{m.label} {m.value} {m.help or ''}" for m in at.metric]
    parts += [t.label for t in at.toggle]
    parts += [f"{t.label} {t.placeholder}" for t in at.text_input]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    parts += [chart.proto.spec for chart in at.get("plotly_chart")]
    return "\n".join(parts)


@pytest.fixture
def unlike_service(home_env) -> Iterator[RiskService]:
    _, home = home_env
    service = RiskService.from_settings(Settings.from_env({"RISKFUSION_HOME": str(home)}))
    with patch("dashboard.resources.get_risk_service", return_value=service):
        yield service
    service.store.engine.dispose()


def test_the_explorer_speaks_of_this_cohort_only(unlike_service) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    search = at.text_input(key="explorer.query")
    assert search.placeholder == f"e.g. {cohort_words(unlike_service).example_id}"
    select = at.selectbox(key="explorer.patient")
    select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert f"Fused risk ({UNLIKE_OUTCOME})" in labels
    assert [t.label for t in at.toggle] == ["Imaging", "EHR"]  # no genomics, no lesion outline
    _no_demo_words(_page_text(at))


@pytest.mark.parametrize("page", ["performance", "fairness", "forecast", "guided_demo", "data"])
def test_the_other_pages_speak_of_this_cohort_only(unlike_service, page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"dashboard/pages/{page}.py").run()
    assert not at.exception, at.exception
    text = _page_text(at)
    if page == "data":  # the page documents the folder format, where genomics is an option
        text = text.replace("optional genomics", "optional files")
    _no_demo_words(text)
