"""Guided demo: a five-step story through two chosen patients, with Next / Back buttons."""

from __future__ import annotations

import streamlit as st

from dashboard.components.forecast_view import render_forecast
from dashboard.components.patient_header import render_patient_header
from dashboard.components.signin import audit_once, require_page_area
from dashboard.components.what_if_editor import (
    render_what_if_comparison,
    render_what_if_editor,
)
from dashboard.figures import (
    MAP_LABELS,
    make_modality_figure,
    make_overlay_figure,
    make_waterfall_figure,
)
from dashboard.resources import (
    get_forecast,
    get_guided_demo_patients,
    load_patient_case,
    require_risk_service,
)
from dashboard.state import get_guided_step, get_patient_id, set_guided_step
from data.errors import CohortError
from fusion.display import format_percent, threshold_sentence
from fusion.explanations.map_trust import map_trust_sentence, rank_maps
from fusion.service.cohort_words import cohort_words
from fusion.service.guided_demo import STORY

st.title("Guided demo")
identity = require_page_area("patients")
service = require_risk_service()
info = service.model_info()

try:
    patients = {p.role: p for p in get_guided_demo_patients(service, info.version)}
except (CohortError, ValueError) as err:
    st.error(str(err))
    st.stop()

step_index = min(max(get_guided_step(), 0), len(STORY) - 1)
step = STORY[step_index]
patient = patients[step.role]

st.progress((step_index + 1) / len(STORY), text=f"Step {step_index + 1} of {len(STORY)}")
st.markdown(
    " → ".join(
        f"**{s.title}**" if i == step_index else s.title.split(". ", 1)[-1]
        for i, s in enumerate(STORY)
    )
)
back, _, forward = st.columns([1, 4, 1])
back.button(
    "← Back",
    key="guided.back",
    disabled=step_index == 0,
    on_click=set_guided_step,
    args=(step_index - 1,),
    use_container_width=True,
)
forward.button(
    "Next →",
    key="guided.next",
    type="primary",
    disabled=step_index == len(STORY) - 1,
    on_click=set_guided_step,
    args=(step_index + 1,),
    use_container_width=True,
)

st.header(step.title)
st.markdown(step.narration)
try:
    case = load_patient_case(service, patient.patient_id)
    result = service.predict(case)
except CohortError as err:
    st.error(str(err))
    st.stop()
selected = get_patient_id()
render_patient_header(
    result,
    note=f"Shown by the guided demo: {patient.reason}. "
    + (
        "No patient is selected; this page does not select one."
        if selected is None
        else f"Your selected patient ({selected}) stays selected on the other pages."
    ),
)
audit_once(service, identity, "view_patient", patient_id=result.patient_id, page="guided_demo")

try:
    if step.kind == "risk":
        cols = st.columns(3)
        cols[0].metric(cohort_words(service).outcome.risk_label, f"{result.risk:.1%}")
        cols[1].metric(
            "Screening threshold",
            format_percent(result.threshold),
            help="Chosen on the validation split (Youden's J): a statistical cut-off, not a "
            "clinical category.",
        )
        cols[2].metric("Model test AUROC", f"{info.test_auroc:.3f}")
        facts = [f"**{threshold_sentence(result.risk, result.threshold)}**"]
        if result.true_risk is not None:
            facts.append(f"synthetic true risk **{result.true_risk:.1%}**")
        if result.label is not None:
            facts.append(f"true outcome: **{'event' if result.label else 'no event'}**")
        st.markdown("Risk is " + " · ".join(facts))
    elif step.kind == "why":
        explanation = service.explain(case)
        left, right = st.columns([2, 3], gap="large")
        left.plotly_chart(make_modality_figure(explanation), key="guided.modalities")
        right.plotly_chart(make_waterfall_figure(explanation), key="guided.waterfall")
    elif step.kind == "where":
        trust = service.map_trust()
        method = rank_maps(trust)[0]  # the map the stored trust check ranks best
        maps = service.image_maps(case, method)
        left, right = st.columns([3, 2], gap="large")
        left.plotly_chart(
            make_overlay_figure(maps, show_lesion=maps.lesion_mask is not None),
            key="guided.overlay",
        )
        right.markdown(
            f"Bright = the regions of the scan that mattered most to the {MAP_LABELS[method]} "
            "map, the map that this model version's trust check ranks best. The outlines are "
            "the true lesions, known only because the cohort is synthetic."
        )
        right.caption(map_trust_sentence(trust, method))
    elif step.kind == "treatment":
        render_forecast(
            get_forecast(service, info.version, case.patient_id, _case=case), key="guided"
        )
    else:  # what_if
        overrides = render_what_if_editor(service, case, key="guided.what_if", identity=identity)
        if overrides:
            render_what_if_comparison(service, case, overrides, key="guided.compare")
        else:
            st.info("Try: set smoking to 0 (never) or lower the systolic BP, then press Apply.")
except (CohortError, ValueError) as err:
    st.error(str(err))
    st.stop()
