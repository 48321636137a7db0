"""The what-if editor: Reset really resets, coded inputs are labelled choices, labelled errors."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest


def _editor_app() -> None:
    import streamlit as st

    from dashboard.components.what_if_editor import render_what_if_editor
    from dashboard.resources import get_risk_service

    service = get_risk_service()
    top = service.store.top_risks(service.model_info().version, split="test", limit=1)
    patient_id = str(top["patient_id"].iloc[0])
    st.session_state["editor_patient"] = patient_id
    overrides = render_what_if_editor(service, service.load_patient(patient_id), key="wi")
    st.session_state["applied"] = dict(overrides)


def _open() -> tuple[AppTest, str]:
    at = AppTest.from_function(_editor_app, default_timeout=120).run()
    assert not at.exception, at.exception
    return at, at.session_state["editor_patient"]


def _recorded(service, patient_id: str, feature: str) -> float | None:
    value = float(service.load_patient(patient_id).X[feature].iloc[0])
    return None if math.isnan(value) else value


def test_reset_puts_the_inputs_back_and_apply_does_not_reapply(patched_service) -> None:
    at, pid = _open()
    recorded_bp = _recorded(patched_service, pid, "systolic_bp")
    recorded_smoking = _recorded(patched_service, pid, "smoking")
    new_smoking = 0.0 if recorded_smoking != 0.0 else 2.0
    at.number_input(key=f"wi.{pid}.systolic_bp").set_value(201.0)
    at.selectbox(key=f"wi.{pid}.smoking").set_value(new_smoking)
    at.button(key="wi.apply").click().run()
    assert not at.exception, at.exception
    assert at.session_state["applied"] == {"systolic_bp": 201.0, "smoking": new_smoking}

    at.button(key="wi.reset").click().run()
    assert not at.exception, at.exception
    assert at.session_state["applied"] == {}
    assert at.number_input(key=f"wi.{pid}.systolic_bp").value == recorded_bp
    assert at.selectbox(key=f"wi.{pid}.smoking").value == recorded_smoking

    at.button(key="wi.apply").click().run()  # nothing edited since Reset: nothing applied
    assert not at.exception, at.exception
    assert at.session_state["applied"] == {}


def test_coded_inputs_are_labelled_choices(patched_service) -> None:
    at, pid = _open()
    number_keys = {widget.key for widget in at.number_input}
    assert f"wi.{pid}.smoking" not in number_keys
    assert f"wi.{pid}.on_statin" not in number_keys
    smoking = at.selectbox(key=f"wi.{pid}.smoking")
    assert smoking.options == ["never", "former", "current"]
    assert at.selectbox(key=f"wi.{pid}.on_statin").options == ["no", "yes"]
    assert f"wi.{pid}.bmi" in number_keys


@pytest.mark.parametrize(
    ("feature", "value", "message"),
    [
        ("bmi", 80.0, "BMI 80 kg/m² is outside the plausible range 15 to 60 kg/m²"),
        ("systolic_bp", 250.0, "Systolic BP 250 mmHg is outside the plausible range"),
    ],
)
def test_errors_name_the_input_by_its_label(patched_service, feature, value, message) -> None:
    at, pid = _open()
    at.number_input(key=f"wi.{pid}.{feature}").set_value(value)
    at.button(key="wi.apply").click().run()
    assert not at.exception
    assert message in at.error[0].value
    assert f"{feature}=" not in at.error[0].value
    assert "Override" not in at.error[0].value
