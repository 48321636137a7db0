"""Patient explorer: a patient's fused risk, why (SHAP), where in the scan, how far to trust it."""

from __future__ import annotations

import streamlit as st

from dashboard.components.patient_picker import render_patient_picker
from dashboard.figures import (
    MAP_LABELS,
    MODALITY_LABELS,
    format_value,
    make_modality_figure,
    make_overlay_figure,
    make_waterfall_figure,
)
from dashboard.resources import require_risk_service
from data.errors import CohortError

METHODS = {label: method for method, label in MAP_LABELS.items()}

st.title("Patient explorer")
service = require_risk_service()

info = service.model_info()
left, right = st.columns([1, 2], gap="large")
with left:
    patient_id = render_patient_picker(service, key="explorer")
if patient_id is None:
    st.stop()

try:
    result = service.predict(patient_id)
    explanation = service.explain(patient_id)
    what_if = service.modality_what_if(patient_id)
    top_features = service.top_features(patient_id, per_modality=3)
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
    st.markdown("**Without one test** (its inputs set to missing, as LightGBM handles them)")
    st.dataframe(
        what_if.assign(
            risk=what_if["risk"].map("{:.1%}".format),
            change=what_if["change"].map(lambda v: f"{100 * v:+.1f} pts"),
        ).loc[:, ["scenario", "risk", "change"]],
        hide_index=True,
        key="explorer.what_if",
    )

shap_col, image_col = st.columns([3, 2], gap="large")
with shap_col:
    st.subheader("Why: SHAP attribution of the fused risk")
    st.plotly_chart(make_waterfall_figure(explanation), key="explorer.waterfall")
    st.plotly_chart(make_modality_figure(explanation), key="explorer.modalities")
    st.caption(
        "Exact TreeSHAP values of the fused model in log-odds: base value + contributions "
        f"= {explanation.margin:+.3f} = logit of {explanation.risk:.1%}."
    )
    st.markdown("**Top inputs within each modality**")
    st.dataframe(
        top_features.assign(
            modality=top_features["modality"].map(MODALITY_LABELS),
            value=[
                format_value(v, u)
                for v, u in zip(top_features["value"], top_features["unit"], strict=True)
            ],
            shap=top_features["shap"].map("{:+.3f}".format),
        ).loc[:, ["modality", "label", "value", "shap"]],
        hide_index=True,
        column_config={"label": "input", "value": "patient's value", "shap": "SHAP (log-odds)"},
        key="explorer.top_features",
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

trust = service.map_trust()
with st.expander("How much can these maps be trusted?"):
    if trust is None:
        st.info("This model was built without the trust check; rebuild the demo to measure it.")
    else:
        st.markdown(
            f"Measured when the model was built, on {trust.n_scans} lesion-positive test scans "
            "against the true lesion masks. **Pointing game**: share of scans whose map peak "
            "lies in a lesion; **energy inside**: mean share of the map inside the lesions; "
            "**mean risk drop**: drop in fused risk when the map's top 2-20% of pixels are "
            "removed (higher = more faithful; random regions of the same size for comparison)."
        )
        st.dataframe(
            trust.summary.rename(index={**MAP_LABELS, "random": "random map", "centre": "centre"}),
            column_config={
                "pointing_game": st.column_config.NumberColumn("pointing game", format="%.2f"),
                "energy_inside": st.column_config.NumberColumn("energy inside", format="%.2f"),
                "mean_risk_drop": st.column_config.NumberColumn("mean risk drop", format="%.4f"),
            },
            key="explorer.trust_summary",
        )
        st.markdown("Drop in fused risk by share of pixels removed (ROAD-style deletion curve)")
        st.dataframe(
            trust.deletion.rename(columns={**MAP_LABELS, "random": "random regions"}),
            key="explorer.trust_deletion",
        )
        st.caption(
            "SHAP additivity (base value + contributions = model margin), largest error over "
            f"{trust.n_additivity_rows} test patients: {trust.shap_additivity_max_abs:.1e} "
            "log-odds."
        )
