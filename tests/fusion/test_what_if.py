"""What-if edits: validation messages, applying edits, service before/after, guided demo picks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data.errors import PatientNotFoundError
from data.vocabulary import FEATURE_SPECS
from fusion.service.facade import RiskService
from fusion.service.guided_demo import STORY, choose_high_risk, choose_treatment_benefit
from fusion.what_if import (
    EDITABLE,
    EDITABLE_SPECS,
    apply_overrides,
    editor_rows,
    validate_overrides,
)

SPECS = {spec.name: spec for spec in FEATURE_SPECS}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ---------------------------------------------------------------- validation (pure)
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"weight": 70.0}, r"Unknown override 'weight': it is not a model input\. Editable"),
        ({"age": 40.0}, r"'age' \(Age\) is not modifiable .* Remove 'age'"),
        ({"sex_male": 0.0}, r"'sex_male' \(Male sex\) is not modifiable"),
        ({"snp_004": 0.0}, r"'snp_004' \(SNP 004\) is not modifiable"),
        ({"driver_egfr": 0.0}, r"'driver_egfr' \(EGFR driver\) is not modifiable"),
        ({"bmi": 80.0}, r"^BMI 80 kg/m² is outside the plausible range 15 to 60 kg/m²; enter a"),
        ({"systolic_bp": 79.9}, r"^Systolic BP 79\.9 mmHg is outside .* 80 to 220 mmHg"),
        ({"bmi": float("nan")}, r"^BMI nan is not a number; .* 15 to 60 kg/m²"),
        ({"hba1c": float("inf")}, r"^HbA1c inf is not a number"),
        ({"ldl": "high"}, r"^LDL cholesterol 'high' is not a number"),
        (
            {"smoking": 1.5},
            r"^Smoking status 1\.5 is not one of its choices \(0 = never, 1 = former, "
            r"2 = current\); choose one",
        ),
        ({"on_statin": 2.0}, r"^On statin 2 is not one of its choices \(0 = no, 1 = yes\)"),
    ],
)
def test_invalid_overrides_name_the_value_the_allowed_set_and_the_fix(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        validate_overrides(overrides)


def test_messages_list_the_editable_features() -> None:
    with pytest.raises(ValueError, match="editable features are") as info:
        validate_overrides({"age": 40.0})
    for name in EDITABLE:
        assert repr(name) in str(info.value)


def test_editable_set_is_modifiable_factors_only() -> None:
    assert EDITABLE.issubset(SPECS)
    assert {"smoking", "bmi", "systolic_bp", "hba1c", "ldl"} <= EDITABLE
    assert not EDITABLE & {"age", "sex_male", "diabetes", "prior_events"}
    assert all(SPECS[name].modality == "ehr" for name in EDITABLE)
    assert [s.name for s in EDITABLE_SPECS] == [s.name for s in FEATURE_SPECS if s.name in EDITABLE]


@pytest.mark.parametrize("spec", EDITABLE_SPECS, ids=lambda spec: spec.name)
def test_range_ends_are_accepted_and_converted_to_float(spec) -> None:
    for end in (spec.low, spec.high):
        checked = validate_overrides({spec.name: int(end) if end.is_integer() else end})
        assert checked == {spec.name: float(end)}
        assert isinstance(checked[spec.name], float)


def test_apply_overrides_edits_a_copy_and_refuses_absent_inputs() -> None:
    X = pd.DataFrame({"age": [70.0, 50.0], "smoking": [2.0, np.nan], "bmi": [31.0, 22.0]})
    edited = apply_overrides(X, {"smoking": 0, "bmi": 25.5})
    assert edited["smoking"].tolist() == [0.0, 0.0]
    assert edited["bmi"].tolist() == [25.5, 25.5]
    assert edited["age"].tolist() == [70.0, 50.0]
    assert X["smoking"].iloc[0] == 2.0  # the input is not mutated
    with pytest.raises(ValueError, match=r"'hba1c' is editable but not an input of this model"):
        apply_overrides(X, {"hba1c": 6.0})
    with pytest.raises(ValueError, match="not modifiable"):
        apply_overrides(X, {"age": 30.0})


def test_editor_rows_are_prefilled_with_ranges_and_steps() -> None:
    rows = editor_rows({"smoking": 2.0, "bmi": 31.2}).set_index("feature")
    assert list(rows.index) == [s.name for s in EDITABLE_SPECS]
    assert rows.loc["smoking", "value"] == 2.0
    assert rows.loc["bmi", "value"] == 31.2
    assert math.isnan(rows.loc["hba1c", "value"])  # not recorded
    assert rows.loc["smoking", "step"] == 1.0
    assert rows.loc["bmi", "step"] == 0.1
    assert (rows.loc["bmi", "low"], rows.loc["bmi", "high"]) == (15.0, 60.0)


# ---------------------------------------------------------------- service (tiny real demo)
def _test_ids(service: RiskService, n: int = 12) -> list[str]:
    return service.search_patients(split="test", limit=n)["patient_id"].tolist()


def test_no_edit_changes_nothing(tiny_service: RiskService) -> None:
    pid = _test_ids(tiny_service)[0]
    result = tiny_service.what_if(pid, {})
    assert result.after.risk == result.before.risk
    assert result.before.risk == pytest.approx(tiny_service.predict(pid).risk)
    assert result.changes.empty
    assert result.risk_change == 0.0


def test_edit_goes_through_the_model_and_stays_additive(tiny_service: RiskService) -> None:
    pid = _test_ids(tiny_service)[0]
    overrides = {"systolic_bp": 200.0, "smoking": 2.0, "hba1c": 11.0}
    result = tiny_service.what_if(pid, overrides)
    X = tiny_service.load_patient(pid).X
    edited = X.assign(**overrides)
    assert result.after.risk == pytest.approx(tiny_service.model.predict_proba(edited)[0, 1])
    for explanation in (result.before, result.after):  # SHAP additivity
        total = explanation.base_value + explanation.contributions["shap"].sum()
        assert total == pytest.approx(_logit(explanation.risk), abs=1e-6)
        assert sum(explanation.modality_totals.values()) == pytest.approx(
            explanation.contributions["shap"].sum(), abs=1e-9
        )
    after_values = result.after.contributions.set_index("feature")["value"]
    before_values = result.before.contributions.set_index("feature")["value"]
    for name, value in overrides.items():
        assert after_values[name] == value
    unchanged = [n for n in before_values.index if n not in overrides]
    pd.testing.assert_series_equal(after_values[unchanged], before_values[unchanged])
    assert result.changes["feature"].tolist() == ["systolic_bp", "hba1c", "smoking"]  # model order
    assert result.changes["after"].tolist() == [200.0, 11.0, 2.0]
    assert result.modality_changes() == pytest.approx(
        {m: result.after.modality_totals[m] - v for m, v in result.before.modality_totals.items()}
    )
    if "image_score" in before_values.index:  # imaging used by the risk (modality-value rule)
        assert after_values["image_score"] == before_values["image_score"]  # the scan is fixed


def test_worse_risk_factors_raise_the_risk(tiny_service: RiskService) -> None:
    """The synthetic truth raises the logit with blood pressure, HbA1c, LDL and smoking."""
    worse = {"systolic_bp": 200.0, "hba1c": 12.0, "ldl": 7.0, "smoking": 2.0}
    better = {"systolic_bp": 105.0, "hba1c": 5.0, "ldl": 1.5, "smoking": 0.0}
    ids = _test_ids(tiny_service)
    changes = []
    for pid in ids:
        high = tiny_service.what_if(pid, worse).after.risk
        low = tiny_service.what_if(pid, better).after.risk
        assert high > low, pid
        changes.append(high - low)
    assert np.mean(changes) > 0.0


def test_invalid_edit_and_unknown_patient_are_clear_errors(tiny_service: RiskService) -> None:
    pid = _test_ids(tiny_service)[0]
    with pytest.raises(ValueError, match=r"'age' \(Age\) is not modifiable"):
        tiny_service.what_if(pid, {"age": 20.0})
    with pytest.raises(PatientNotFoundError):
        tiny_service.what_if("NOPE", {"bmi": 25.0})


# ---------------------------------------------------------------- guided demo
def test_story_has_the_five_steps_in_order() -> None:
    assert [step.kind for step in STORY] == ["risk", "why", "where", "treatment", "what_if"]


def test_choose_high_risk_prefers_a_lesion_then_a_scan() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["P3", "P1", "P2"],
            "risk": [0.9, 0.8, 0.8],
            "has_scan": [False, True, True],
            "has_lesion": [False, False, False],
        }
    )
    assert choose_high_risk(frame).patient_id == "P1"  # tie in risk -> smaller id
    assert choose_high_risk(frame.assign(has_lesion=[False, False, True])).patient_id == "P2"
    assert choose_high_risk(frame.assign(has_scan=False)).patient_id == "P3"
    with pytest.raises(ValueError, match="No candidate patients"):
        choose_high_risk(frame.iloc[:0])


def test_choose_treatment_benefit_takes_the_largest_reduction() -> None:
    frame = pd.DataFrame(
        {"patient_id": ["P1", "P2", "P3"], "risk": [0.9, 0.8, 0.7], "arr": [0.3, np.nan, 0.2]}
    )
    assert choose_treatment_benefit(frame).patient_id == "P1"
    assert choose_treatment_benefit(frame, exclude="P1").patient_id == "P3"
    assert choose_treatment_benefit(frame.assign(arr=np.nan), exclude="P1").patient_id == "P2"


def test_guided_demo_patients_are_deterministic_and_fit_their_roles(
    tiny_service: RiskService,
) -> None:
    first, second = tiny_service.guided_demo_patients()
    assert (first, second) == tiny_service.guided_demo_patients()
    assert (first.role, second.role) == ("high_risk", "treatment_benefit")
    assert first.patient_id != second.patient_id
    record = tiny_service.patient(first.patient_id)
    assert record.split == "test"
    assert tiny_service.image_maps(first.patient_id).lesion_mask.any()
    # No higher-risk test patient among the candidates has a lesion.
    scored = tiny_service.test_predictions().sort_values(
        ["risk", "patient_id"], ascending=[False, True]
    )
    top = scored.head(20)["patient_id"].tolist()
    for pid in top[: top.index(first.patient_id)]:
        maps = tiny_service.image_maps(pid)
        assert maps.lesion_mask is None or not maps.lesion_mask.any()

    def best_arr(pid: str) -> float:
        forecast = tiny_service.forecast(pid)
        return float(forecast.effects.set_index("treatment").loc[forecast.best_treatment, "arr"])

    assert second.patient_id in top
    chosen = best_arr(second.patient_id)
    assert all(best_arr(pid) <= chosen for pid in top if pid != first.patient_id)
