"""The identity facts that name a patient on every page and in the HTML report."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from fusion.records import RiskResult
from fusion.service.patient_facts import identity_facts, identity_line
from tests.fusion.reports.test_patient_report import _report

RESULT = RiskResult("P<1>", 0.31, "fusion-v1", 0.25, "test", 1, 0.28, 0.3)


def test_predict_carries_the_identity_of_the_patient_it_scored(tiny_service) -> None:
    ids = tiny_service.search_patients(limit=5)["patient_id"].tolist()
    for patient_id in ids:
        record = tiny_service.patient(patient_id)
        result = tiny_service.predict(patient_id)
        assert (result.patient_id, result.age, result.sex, result.split, result.site) == (
            record.patient_id,
            record.age,
            record.sex,
            record.split,
            record.site,
        )
        assert result.cohort == "synthetic"
        assert identity_line(result).startswith(f"{patient_id} · {int(record.age)} years · ")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"age": 67.9, "sex": "F", "site": "B", "cohort": "synthetic"},
            ["67 years", "female", "test split", "site B", "synthetic demo cohort"],
        ),
        (
            {"age": None, "sex": "X", "split": "val", "site": "site_a", "cohort": "import:w3"},
            ["age not recorded", "sex X", "validation split", "site_a", "imported cohort w3"],
        ),
    ],
)
def test_identity_facts_in_words(changes: dict[str, object], expected: list[str]) -> None:
    assert identity_facts(replace(RESULT, **changes)) == expected


def test_report_header_names_the_patient_by_the_same_facts() -> None:
    result = replace(RESULT, age=71.2, sex="M", site="<B>", cohort="synthetic")
    text = _report(None, result=result)
    header = re.search(r'<div class="patient">(.*?)</div>', text, re.S)
    assert header is not None
    assert "P&lt;1&gt;" in header.group(1)
    assert "71 years &middot; male &middot; test split &middot; site &lt;B&gt;" in header.group(1)
    assert "synthetic demo cohort" in header.group(1)
    assert "synthetic demo data, not for clinical use" in text
    imported = _report(None, result=replace(result, cohort="import:ward"))
    assert "imported cohort ward" in imported
    assert "research use only, not for clinical use" in imported
