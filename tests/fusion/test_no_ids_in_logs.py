"""Patient identifiers never reach the logs: the main flows run under DEBUG logging, and no
record (message, arguments or traceback) nor warning carries a stored patient id."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pandas as pd
import pytest

from data.store import CohortStore, make_engine
from data.synthetic.example_cohort import write_example_cohort
from fusion.cli import main
from fusion.reports.patient_report import case_report
from fusion.service.facade import RiskService
from fusion.settings import Settings

SMALL_DEMO = ["--patients", "60", "--image-size", "32", "--epochs", "1", "--seed", "5"]


def _stored_ids(settings: Settings) -> set[str]:
    store = CohortStore(make_engine(settings.database_url))
    try:
        return set(store.search_patients(limit=1000)["patient_id"])
    finally:
        store.engine.dispose()


def _leaks(records: list[logging.LogRecord], notes: list[str], ids: set[str]) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        texts.append(f"{record.name}: {text}")
    texts += notes
    return [text[:200] for text in texts if any(pid in text for pid in ids)]


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Settings:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    return Settings.from_env()


def test_build_predict_what_if_report_and_exports_log_no_patient_id(
    home: Settings, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["demo", "--no-serve", *SMALL_DEMO]) == 0
        service = RiskService.from_settings(home)
        ids = _stored_ids(home)
        for pid in sorted(ids)[:3]:
            service.predict(pid)
            service.explain(pid)
            service.what_if(pid, {"on_statin": 1.0})
            service.forecast(pid)
            service.similar_patients(pid)
            case_report(service, service.load_patient(pid))
        pid = sorted(ids)[0]
        assert main(["explain", pid, "--out", str(tmp_path / "explained")]) == 0
        assert main(["forecast", pid, "--out", str(tmp_path / "forecast.json")]) == 0
        assert main(["explain", "NOT-A-PATIENT", "--out", str(tmp_path / "x")]) == 2
        assert main(["export", "predictions", "--out", str(tmp_path / "p.csv")]) == 0
        service.store.engine.dispose()
    assert len(ids) == 60
    assert caplog.records  # the flows do log
    notes = [str(w.message) for w in caught]
    assert not _leaks(caplog.records, notes, ids)


def test_import_of_a_small_cohort_logs_no_patient_id(
    home: Settings, tmp_path: Path, caplog
) -> None:
    cohort = tmp_path / "cohort"
    write_example_cohort(cohort, n_patients=12)
    ids = set(pd.read_csv(cohort / "patients.csv", dtype=str)["patient_id"])
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["import", str(cohort), "--dry-run"]) == 0
        assert main(["import", str(cohort)]) == 0
    assert caplog.records
    assert not _leaks(caplog.records, [str(w.message) for w in caught], ids)
    assert _stored_ids(home) == ids
