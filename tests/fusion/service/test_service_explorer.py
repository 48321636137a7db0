"""Explorer use cases, tiny build: stored explanations, risk interval, similar patients, report."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from data.errors import PatientNotFoundError
from fusion.explain import shap_values
from fusion.reports.patient_report import case_report
from fusion.service.patient import without


@pytest.fixture(scope="module")
def test_ids(tiny_service) -> list[str]:
    return tiny_service.search_patients(split="test", limit=50)["patient_id"].tolist()


def test_every_patient_has_a_stored_explanation(tiny_service) -> None:
    version = tiny_service.model_info().version
    assert tiny_service.store.count_explanations(version) == tiny_service.count_patients()
    metrics = tiny_service.explanation_metrics()
    assert metrics["n_stored"] == tiny_service.count_patients()
    assert metrics["additivity_max_abs"] < 1e-6


def test_stored_explanation_is_the_live_one(tiny_service, test_ids) -> None:
    for pid in test_ids[:5]:
        stored, live = tiny_service.explain(pid), tiny_service.explain_live(pid)
        assert (stored.source, live.source) == ("store", "live")
        assert stored.contributions["feature"].tolist() == live.contributions["feature"].tolist()
        np.testing.assert_allclose(
            stored.contributions["shap"], live.contributions["shap"], atol=1e-12
        )
        assert stored.risk == pytest.approx(tiny_service.predict(pid).risk, abs=1e-9)


def test_stored_values_are_additive_over_the_test_split(tiny_service) -> None:
    version = tiny_service.model_info().version
    worst, rows = 0.0, 0
    for ids, base, values in tiny_service.store.iter_explanations(version, split="test"):
        X = pd.concat([tiny_service.load_patient(p).X for p in ids])
        margin = tiny_service.model.decision_function(X)
        worst = max(worst, float(np.abs(base + values.sum(axis=1) - margin).max()))
        rows += len(ids)
    assert rows == tiny_service.count_patients("test")
    assert worst < 1e-6


def test_interval_is_calibrated_for_the_true_risk_and_per_missing_modality(
    tiny_service, test_ids
) -> None:
    pid = test_ids[0]
    interval = tiny_service.risk_interval(pid)
    assert 0 <= interval.low < tiny_service.predict(pid).risk < interval.high <= 1
    assert interval.target == "true_risk"  # the synthetic cohort has ground truth
    assert "true risk" in interval.describe()
    calibrated = tiny_service.count_patients("train") + tiny_service.count_patients("val")
    assert interval.n_calibration == calibrated  # out of fold on train + validation
    assert tiny_service.interval_reason == ""
    metrics = tiny_service.interval_metrics()
    assert metrics["method"] == "cross_conformal_logit"
    assert metrics["target"] == "true_risk"
    assert 0 <= metrics["test_coverage_true_risk"] <= 1
    assert metrics["test_strict_share"] == 1.0
    assert len(metrics["by_missing"]) == 8
    without = tiny_service.risk_interval(pid, missing=["imaging"])
    assert without.missing == ("imaging",)
    halfwidths = tiny_service.interval_calibration.logit_halfwidths
    # One calibration per missing-modality pattern: they differ where masking moves the risks
    # (with the one-epoch model, masking the image alone may not).
    assert len(halfwidths) == 8
    assert any(halfwidths[key] != halfwidths["none"] for key in halfwidths if key != "none")


def test_what_if_explanation_is_live_and_matches_the_modality_table(tiny_service, test_ids) -> None:
    pid = test_ids[0]
    table = tiny_service.modality_what_if(pid).set_index("scenario")["risk"]
    for missing, scenario in ((["imaging"], "without scan"), (["genomics"], "without genomics")):
        explanation = tiny_service.explain_without(pid, missing)
        assert explanation.source == "live"
        assert explanation.risk == pytest.approx(table[scenario], abs=1e-9)
    with pytest.raises(ValueError, match="Unknown what-if modalities \\['demographics'\\]"):
        tiny_service.explain_without(pid, ["demographics"])


def test_similar_patients_are_the_nearest_in_shap_space(tiny_service, test_ids) -> None:
    pid = test_ids[0]
    similar = tiny_service.similar_patients(pid, k=4)
    assert len(similar) == 4
    assert pid not in similar["patient_id"].tolist()
    assert set(similar["split"]) <= {"train", "test"}
    assert np.all(np.diff(similar["distance"]) >= 0)
    index = tiny_service.similarity_index
    query = tiny_service.store.get_explanation(tiny_service.model_info().version, pid)[1]
    distances = np.linalg.norm(index.vectors - query.astype(np.float32), axis=1)
    distances[index.patient_ids == pid] = np.inf
    assert similar["distance"].iloc[0] == pytest.approx(distances.min(), rel=1e-4)
    # Their outcome and stored risk come from the store.
    first = similar.iloc[0]
    version = tiny_service.model_info().version
    assert first["risk"] == tiny_service.store.get_prediction(first["patient_id"], version)
    assert first["label"] == tiny_service.patient(first["patient_id"]).label
    # A what-if query uses the live SHAP vector of the edited row.
    X = without(tiny_service.models, tiny_service.load_patient(pid).X, ["imaging"])
    live = shap_values(tiny_service.model, X).values[0]
    expected = index.nearest(live, k=4, exclude=[pid])[0]
    assert (
        tiny_service.similar_patients(pid, k=4, missing=["imaging"])["patient_id"].tolist()
        == expected
    )


def test_report_is_self_contained_html_of_the_patient(tiny_service, test_ids) -> None:
    pid = test_ids[0]
    text = case_report(tiny_service, tiny_service.load_patient(pid), "gradcam")
    assert pid in text
    assert tiny_service.model_info().version in text
    assert f"{100 * tiny_service.predict(pid).risk:.1f}%" in text
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)
    assert "data:image/png;base64," in text
    with pytest.raises(PatientNotFoundError):
        case_report(tiny_service, tiny_service.load_patient("NOPE"))
