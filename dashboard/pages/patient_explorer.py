"""Patient explorer: one patient's fused risk, why (SHAP), and where in the scan (Grad-CAM)."""

from __future__ import annotations

import streamlit as st

from dashboard.components.patient_picker import render_patient_picker
from dashboard.figures import make_modality_figure, make_overlay_figure, make_waterfall_figure
from dashboard.resources import get_risk_service
from data.errors import CohortError

METHODS = {"Grad-CAM": "gradcam", "Grad-CAM++": "gradcampp"}

st.title("Patient explorer")
try:
    service = get_risk_service()
except CohortError as err:
    st.error(str(err))
    st.stop()

info = service.model_info()
left, right = st.columns([1, 2], gap="large")
with left:
    patient_id = render_patient_picker(service, key="explorer")
if patient_id is None:
    st.stop()

try:
    result = service.predict(patient_id)
    explanation = service.explain(patient_id)
except CohortError as err:
    st.error(str(err))
    st.stop()

with right:
    cols = st.columns(3)
    cols[0].metric(
        "Fused risk (5-year event)",
        f"{result.risk:.1%}",
        help="Probability of an event within 5 years from the LightGBM fusion model.",
    )
    cols[1].metric(
        "Model test AUROC",
        f"{info.test_auroc:.3f}",
        help=f"95% CI {info.test_auroc_ci[0]:.3f}-{info.test_auroc_ci[1]:.3f} on the test split.",
    )
    cols[2].metric(
        "Decision threshold",
        f"{result.threshold:.1%}",
        help="Chosen on the validation split (Youden's J).",
    )
    status = ":red[**above the threshold: high risk**]" if result.flagged else "below the threshold"
    facts = [f"Risk is {status}", f"Split: **{result.split}**", f"Model `{result.model_version}`"]
    if result.split == "test" and result.label is not None:
        facts.append(f"True outcome: **{'event' if result.label else 'no event'}** within 5 years")
    if result.true_risk is not None:
        facts.append(f"Synthetic true risk: **{result.true_risk:.1%}**")
    st.markdown(" · ".join(facts))

shap_col, image_col = st.columns([3, 2], gap="large")
with shap_col:
    st.subheader("Why: SHAP attribution of the fused risk")
    st.plotly_chart(make_waterfall_figure(explanation), key="explorer.waterfall")
    st.plotly_chart(make_modality_figure(explanation), key="explorer.modalities")
    st.caption(
        "Exact TreeSHAP values of the fused model in log-odds: base value + contributions "
        f"= {explanation.margin:+.3f} = logit of {explanation.risk:.1%}."
    )
with image_col:
    st.subheader("Where: image evidence")
    method_label = st.radio("Map", list(METHODS), horizontal=True, key="explorer.method")
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="explorer.opacity")
    show_lesion = st.toggle(
        "Show true lesion outline (synthetic ground truth)",
        value=False,
        key="explorer.lesion",
        disabled=result.true_risk is None,
    )
    try:
        maps = service.image_maps(patient_id, METHODS[str(method_label)])
    except CohortError as err:
        st.error(str(err))
    else:
        st.plotly_chart(
            make_overlay_figure(maps, opacity=opacity, show_lesion=show_lesion),
            key="explorer.overlay",
        )
        if result.image_score is not None:
            st.caption(
                f"Scan score (CNN logit, from nets that never trained on this patient): "
                f"{result.image_score:+.2f}."
            )
