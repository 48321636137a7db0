"""Served intervals on the tiny demo: strict around the risk, honest coverage, or a reason."""

from __future__ import annotations

import json
import math

import pytest

from data.errors import CohortError
from fusion.reports.explanation_files import write_explanation
from fusion.reports.patient_report import case_report
from fusion.service.patient import without
from tests.fixtures_demo import FEW_INTERVAL_PATIENTS

WHAT_IFS = [(), ("imaging",), ("genomics",), ("ehr",), ("imaging", "genomics", "ehr")]


def test_every_served_interval_contains_its_own_risk(tiny_service) -> None:
    ids = tiny_service.search_patients(limit=500)["patient_id"].tolist()
    assert len(ids) == tiny_service.count_patients()
    for pid in ids:
        case = tiny_service.load_patient(pid)
        for missing in WHAT_IFS:
            risk = tiny_service.model.predict_proba(without(tiny_service.models, case.X, missing))
            interval = tiny_service.risk_interval(case, missing=missing)
            assert interval.low < risk[0, 1] < interval.high, (missing, interval)


def test_the_demo_test_split_coverage_is_near_nominal(tiny_service) -> None:
    """Coverage of the true risk on the tiny demo's test split, within 3 binomial SDs of 90%.

    Honest: the interval is calibrated out of fold without the test split, which is only
    read here. The 2,000-patient demo's figure is in docs/models.md and ``riskfusion bench``.
    """
    metrics = tiny_service.interval_metrics()
    level, n_test = metrics["level"], metrics["n_test"]
    tolerance = 3 * math.sqrt(level * (1 - level) / n_test)
    assert metrics["test_coverage_true_risk"] == pytest.approx(level, abs=tolerance)
    assert metrics["test_strict_share"] == 1.0


def test_too_few_calibration_patients_serve_no_interval_and_say_why(
    few_interval_service, tmp_path
) -> None:
    service = few_interval_service
    reason = (
        f"no interval: only {FEW_INTERVAL_PATIENTS} patients to calibrate a 90% interval; "
        "needs at least 9"
    )
    assert service.interval_calibration is None
    assert service.interval_reason == reason
    pid = service.search_patients(split="test", limit=1)["patient_id"].iloc[0]
    with pytest.raises(CohortError, match="needs at least 9"):
        service.risk_interval(pid)
    report = case_report(service, service.load_patient(pid))
    assert f"N{reason[1:]}." in report
    files = write_explanation(service, pid, tmp_path / "explain")
    document = json.loads(files[0].read_text())
    assert document["risk_interval"] is None
    assert document["risk_interval_reason"] == reason
