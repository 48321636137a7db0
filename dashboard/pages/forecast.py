"""Treatment forecast: risk over time under each treatment option, and a what-if editor."""

from __future__ import annotations

import streamlit as st

from dashboard.components.forecast_view import render_best_option, render_forecast
from dashboard.components.patient_header import render_patient_header
from dashboard.components.patient_picker import (
    audit_patient_view,
    render_no_patient,
    render_patient_picker,
)
from dashboard.components.signin import require_page_area
from dashboard.components.what_if_editor import (
    render_what_if_comparison,
    render_what_if_editor,
)
from dashboard.resources import (
    get_forecast,
    get_forecast_proof,
    load_patient_case,
    require_risk_service,
)
from data.errors import CohortError
from fusion.display import readable_table
from fusion.forecast.survival import REFERENCE_TREATMENT
from fusion.service.cohort_words import cohort_words

FORECAST_LABELS = {
    "method": "Method",
    "contrast": "Contrast",
    "pehe": "PEHE",
    "spearman": "Spearman",
    "mean_effect": "Mean estimated effect",
    "true_mean_effect": "Mean true effect",
    "bin": "Risk decile",
    "n": "Patients",
    "predicted": "Predicted risk",
    "observed_km": "Observed (Kaplan-Meier)",
    "true_risk": "True risk",
}

st.title("Treatment forecast")
identity = require_page_area("patients")
service = require_risk_service()
version = service.model_info().version

header = st.container()
left, right = st.columns([1, 2], gap="large")
with left:
    patient_id = render_patient_picker(service, key="forecast")
if patient_id is None:
    with header:
        render_no_patient()
    st.stop()

try:
    case = load_patient_case(service, patient_id)
    result = service.predict(case)
    forecast = get_forecast(service, version, result.patient_id, _case=case)
except (CohortError, ValueError) as err:
    st.error(str(err))
    st.stop()
with header:
    render_patient_header(result)
audit_patient_view(service, identity, result.patient_id, page="forecast", action="forecast")

with left:
    effects = forecast.effects.set_index("treatment")
    st.metric(
        f"Risk at {forecast.horizon:g} years without treatment",
        (
            f"{effects.loc[REFERENCE_TREATMENT, 'risk']:.1%}"
            if REFERENCE_TREATMENT in effects.index
            else "n/a"
        ),
    )
    render_best_option(forecast)
    st.markdown(f"Treatment received: **{forecast.received_treatment or 'unknown'}**")
with right:
    render_forecast(forecast, key="forecast")

with st.expander("How good are these forecasts? Proof against the true effects (test split)"):
    proof = get_forecast_proof(service, version)
    if proof is None:
        st.info(
            "This forecast model was built without the proof; "
            + (
                "rebuild the demo to measure it."
                if cohort_words(service).is_demo
                else "it needs the true treatment effects, which only the synthetic demo has."
            )
        )
    else:
        st.markdown(
            "Measured when the model was built, on the synthetic test split whose true "
            "treatment effects are known. **PEHE**: root mean squared error of the estimated "
            "individual risk reduction (lower is better); **Spearman**: rank correlation of "
            "estimated and true individual effects (higher is better). `s_learner` is the "
            "served forecast, anchored to the fused risk; `s_learner_unanchored` is the hazard "
            "model alone. Baselines: a treatment-agnostic model (no effect) and a naive "
            "unadjusted comparison of arms."
        )
        st.dataframe(
            readable_table(proof, labels=FORECAST_LABELS), hide_index=True, key="forecast.proof"
        )
    calibration = service.forecast_calibration()
    if calibration is not None:
        table, errors = calibration
        st.markdown(
            f"**Calibration of the {forecast.horizon:g}-year risk under the treatment actually "
            "received** (deciles of predicted risk): expected calibration error "
            f"{errors['ece_true']:.3f} against the true risk, {errors['ece_km']:.3f} against "
            "the Kaplan-Meier observed risk."
        )
        st.dataframe(
            readable_table(
                table, percent=["predicted", "observed_km", "true_risk"], labels=FORECAST_LABELS
            ),
            hide_index=True,
            key="forecast.calibration",
        )

st.header("What if modifiable factors changed?")
st.caption(
    "Edit smoking, weight, blood pressure, glucose or lipids and press Apply: the risk, its "
    "SHAP attribution and the forecast are recomputed with the scan held fixed."
)
try:
    overrides = render_what_if_editor(service, case, key="forecast.what_if", identity=identity)
    if not overrides:
        st.info("Change one or more values and press Apply to compare before and after.")
        st.stop()
    render_what_if_comparison(service, case, overrides, key="forecast.compare")
except (CohortError, ValueError) as err:
    st.error(str(err))
    st.stop()
