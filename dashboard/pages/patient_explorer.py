"""Patient explorer: a patient's fused risk, why (SHAP), where in the scan, how far to trust it."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard.components.patient_header import render_patient_header
from dashboard.components.patient_picker import (
    audit_patient_view,
    render_no_patient,
    render_patient_picker,
)
from dashboard.components.signin import require_page_area
from dashboard.figures import (
    MAP_LABELS,
    format_value,
    make_modality_figure,
    make_overlay_figure,
    make_waterfall_figure,
)
from dashboard.resources import load_patient_case, require_risk_service
from dashboard.state import choose_patient
from data.errors import CohortError
from data.vocabulary import MODALITY_LABELS
from fusion.display import (
    feature_label,
    format_percent,
    format_risk_interval,
    interval_sentence,
    no_interval_sentence,
    threshold_sentence,
)
from fusion.explanations.imaging_words import imaging_trust_sentence, not_informative_sentence
from fusion.explanations.map_trust import map_trust_sentence, rank_maps
from fusion.reports.exports import export_file_name
from fusion.reports.patient_report import render_patient_report
from fusion.service.baselines import shap_method_words
from fusion.service.cohort_words import cohort_words, retrain_hint
from fusion.service.patient import unused_modality_notes

METHODS = {label: method for method, label in MAP_LABELS.items()}


def _share(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"


def _ratio(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.2f}"


def _points(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{100 * value:.1f} pts"


st.title("Patient explorer")
identity = require_page_area("patients")
service = require_risk_service()

info = service.model_info()
words = cohort_words(service)  # the cohort's outcome, modalities, demo or not
header = st.container()
left, right = st.columns([1, 2], gap="large")
with left:
    patient_id = render_patient_picker(service, key="explorer")
if patient_id is None:
    with header:
        render_no_patient()
    st.stop()

try:
    case = load_patient_case(service, patient_id)  # the patient's rows, read once this run
    result = service.predict(case)
    interval = service.risk_interval(case) if service.interval_calibration else None
    explanation = service.explain(case)
    what_if = service.modality_what_if(case)
    top_features = service.top_features(case, per_modality=3)
    unused_notes = unused_modality_notes(service.models, case)
except CohortError as err:
    st.error(str(err))
    st.stop()
with header:
    render_patient_header(result)
audit_patient_view(service, identity, result.patient_id, page="explorer")

with right:
    # Two tiles a row: four in one row cut the values off at 1280x720.
    tiles = [*st.columns(2), *st.columns(2)]
    tiles[0].metric(words.outcome.risk_label, f"{result.risk:.1%}", help=words.outcome.risk_help)
    tiles[1].metric(
        "Risk interval" if interval is None else f"Risk interval ({interval.level:.0%})",
        "none" if interval is None else format_risk_interval(interval.low, interval.high),
        help=(
            no_interval_sentence(service.interval_reason)
            if interval is None
            else f"{interval.describe()}. Its measured coverage on the test split is in the "
            "trust expander."
            + (
                " Real cohorts have no true risk: there the interval covers the event rate "
                "among patients with the same predicted risk instead."
                if interval.target == "true_risk"
                else ""
            )
        ),
    )
    tiles[2].metric(
        "Screening threshold",
        format_percent(result.threshold),
        help="The model's screening threshold, chosen on the validation split (Youden's J): "
        "a statistical cut-off, not a clinical category.",
    )
    tiles[3].metric(
        "Model test AUROC",
        f"{info.test_auroc:.3f}",
        help=f"95% CI {info.test_auroc_ci[0]:.3f}-{info.test_auroc_ci[1]:.3f} on the test split.",
    )
    if interval is not None:
        st.caption(interval_sentence(interval))
    else:
        st.caption(no_interval_sentence(service.interval_reason))
    facts = [
        f"Risk is **{threshold_sentence(result.risk, result.threshold)}**",
        f"Split: **{result.split}**",
        f"Model `{result.model_version}`",
    ]
    if result.split == "test" and result.label is not None:
        facts.append(f"True outcome: **{words.outcome.outcome_text(result.label)}**")
    if result.true_risk is not None:
        facts.append(f"Synthetic true risk: **{result.true_risk:.1%}**")
    st.markdown(" · ".join(facts))
    st.markdown("**Without one test** (its inputs set to missing, as LightGBM handles them)")
    st.dataframe(
        pd.DataFrame(
            {
                "Scenario": [s[:1].upper() + s[1:] for s in what_if["scenario"]],
                "Risk": what_if["risk"].map("{:.1%}".format),
                "Change": what_if["change"].map(lambda v: f"{100 * v:+.1f} pts"),
            }
        ),
        hide_index=True,
        key="explorer.what_if",
    )
    st.markdown(
        "**What-if: tests available for this estimate** (switch one off to see the "
        "risk and its attribution without it, computed live)"
    )
    toggle_cols = st.columns(len(words.maskable))  # only the modalities this model has
    missing = [
        modality
        for column, modality in zip(toggle_cols, words.maskable, strict=True)
        if not column.toggle(
            MODALITY_LABELS[modality], value=True, key=f"explorer.available.{modality}"
        )
    ]
    shown = explanation
    if missing:
        with st.spinner("Computing the what-if live ..."):
            shown = service.explain_without(case, missing)
            shown_interval = (
                service.risk_interval(case, missing=missing)
                if service.interval_calibration
                else None
            )
        st.metric(
            "What-if risk",
            f"{shown.risk:.1%}",
            delta=f"{100 * (shown.risk - result.risk):+.1f} pts",
            delta_color="inverse",
            help=(
                no_interval_sentence(service.interval_reason)
                if shown_interval is None
                else f"{shown_interval.describe()}: "
                f"{format_risk_interval(shown_interval.low, shown_interval.high)}"
                + (
                    f"; calibrated on patients scored without {', '.join(shown_interval.missing)}."
                    if shown_interval.missing
                    else "."
                )
            ),
        )

shap_col, image_col = st.columns([3, 2], gap="large")
with shap_col:
    st.subheader("Why: SHAP attribution of the fused risk")
    for note in unused_notes:  # a modality the patient has that the risk does not use
        st.info(note)
    st.plotly_chart(make_waterfall_figure(shown), key="explorer.waterfall")
    st.plotly_chart(make_modality_figure(shown), key="explorer.modalities")
    origin = (
        "stored for this model version"
        if shown.source == "store"
        else "computed live" + (f" without {', '.join(missing)}" if missing else "")
    )
    st.caption(
        f"{shap_method_words(service.models)} in log-odds ({origin}): base value + "
        f"contributions = {shown.margin:+.3f} = logit of {shown.risk:.1%}."
    )
    st.markdown("**Top inputs within each modality**")
    st.dataframe(
        pd.DataFrame(
            {
                "Modality": top_features["modality"].map(MODALITY_LABELS),
                "Input": [
                    feature_label(str(f), str(label))
                    for f, label in zip(top_features["feature"], top_features["label"], strict=True)
                ],
                "Patient's value": [
                    format_value(v, str(u), str(f))
                    for f, v, u in zip(
                        top_features["feature"],
                        top_features["value"],
                        top_features["unit"],
                        strict=True,
                    )
                ],
                "SHAP (log-odds)": top_features["shap"].map("{:+.2f}".format),
            }
        ),
        hide_index=True,
        width="stretch",
        key="explorer.top_features",
    )
with image_col:
    st.subheader("Where: image evidence")
    trust = service.map_trust()
    imaging_trust = service.imaging_map_trust()
    maps = None
    opacity = 0.45
    if imaging_trust is not None and not imaging_trust.informative:
        st.info(not_informative_sentence(imaging_trust))  # no map drawn as if it meant something
    else:
        best_method = rank_maps(trust)[0]  # the map the stored trust check ranks best
        method_label = st.radio(
            "Map",
            list(METHODS),
            index=list(METHODS.values()).index(best_method),
            horizontal=True,
            key="explorer.method",
            help=f"Opens on {MAP_LABELS[best_method]}, the map that this model version's trust "
            "check ranks best (details in the trust expander below).",
        )
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05, key="explorer.opacity")
        show_lesion = words.is_demo and st.toggle(  # true masks exist in the demo only
            "Show true lesion outline",
            help="Synthetic cohorts only: the true lesion mask, drawn as an outline.",
            value=False,
            key="explorer.lesion",
        )
        method = METHODS[str(method_label)]
        try:
            maps = service.image_maps(case, method)
        except CohortError as err:
            st.error(str(err))
        else:
            st.plotly_chart(
                make_overlay_figure(maps, opacity=opacity, show_lesion=show_lesion),
                key="explorer.overlay",
            )
            st.caption(
                map_trust_sentence(trust, method)
                if trust is not None or words.is_demo
                else "No trust measurement for this map: that needs true lesion masks, which "
                "only the synthetic demo has. Treat the map as unverified."
            )
            if method != "occlusion":
                st.caption(imaging_trust_sentence(imaging_trust, method))
            if result.image_score is not None:
                st.caption(
                    f"Scan score (CNN logit, from nets that never trained on this patient): "
                    f"{result.image_score:+.2f}."
                )

st.subheader("Similar patients")
try:
    similar = service.similar_patients(case, k=5, missing=missing)
except CohortError as err:
    st.info(str(err))
else:
    st.caption(
        "Nearest training and test patients by their SHAP vectors (the fused model's reasons "
        "for their risk); click one to open it."
    )
    for row in similar.itertuples():
        outcome = "" if pd.isna(row.label) else f" · {words.outcome.outcome_text(int(row.label))}"
        truth = "" if pd.isna(row.true_risk) else f" · true risk {row.true_risk:.0%}"
        st.button(
            f"{row.patient_id} · {row.split}{outcome} · risk {row.risk:.0%}{truth} "
            f"· distance {row.distance:.2f}",
            key=f"explorer.similar.{row.Index}",
            on_click=choose_patient,
            args=(row.patient_id,),
        )

id_in_name = st.checkbox(
    "Patient id in the report's file name",
    value=False,
    key="explorer.report_id_in_name",
    help="Off: the file is named by date and time only, so the id does not appear in download "
    "folders, synced drives or e-mail attachments; the report itself names the patient.",
)
st.download_button(
    "Download patient report (HTML)",
    data=render_patient_report(
        result=result,
        interval=interval,
        no_interval_reason=service.interval_reason,
        explanation=explanation,
        what_if=what_if,
        top_features=top_features,
        maps=maps,
        info=info,
        opacity=opacity,
        outcome=words.outcome,
    ),
    file_name=export_file_name(
        "patient-report",
        ".html",
        created=datetime.now(UTC),
        patient_id=patient_id if id_in_name else None,
    ),
    mime="text/html",
    key="explorer.report",
    on_click=service.record_event,
    args=(identity, "export"),
    kwargs={"patient_id": patient_id, "detail": {"page": "explorer", "format": "html"}},
    help="Risk with its interval, threshold, attributions and the overlay as one offline file.",
)

with st.expander("How much can these maps be trusted?"):
    names = {**MAP_LABELS, "random": "Random map (baseline)", "centre": "Centre (baseline)"}
    if trust is None:
        st.info(
            "This model was built without the trust check; "
            + (
                f"{retrain_hint(True)} to measure it."
                if words.is_demo
                else "it needs true lesion masks, which only the synthetic demo has."
            )
        )
    else:
        st.markdown(
            f"Measured when the model was built, on {trust.n_scans} lesion-positive test scans "
            "against the true lesion masks. **Pointing game**: share of scans whose map peak "
            "lies in a lesion; **energy inside**: mean share of the map inside the lesions; "
            "**mean risk drop**: drop in fused risk when the map's top 2-20% of pixels are "
            "removed (higher = more faithful; random regions of the same size for comparison)."
        )
        st.dataframe(
            pd.DataFrame(
                {
                    "Map": [names.get(str(n), str(n)) for n in trust.summary.index],
                    "Pointing game": trust.summary["pointing_game"].map(_share),
                    "Energy inside lesion": trust.summary["energy_inside"].map(_share),
                    "Mean risk drop": trust.summary["mean_risk_drop"].map(_points),
                }
            ),
            hide_index=True,
            key="explorer.trust_summary",
        )
        st.markdown("Drop in fused risk by share of pixels removed (ROAD-style deletion curve)")
        st.dataframe(
            pd.DataFrame(
                {
                    "Pixels removed": [f"top {f:.0%}" for f in trust.deletion.index],
                    **{
                        names.get(str(c), str(c)): trust.deletion[c].map(_points)
                        for c in trust.deletion.columns
                    },
                }
            ),
            hide_index=True,
            key="explorer.trust_deletion",
        )
        st.caption(
            "SHAP additivity (base value + contributions = model margin), largest error over "
            f"{trust.n_additivity_rows} test patients: {trust.shap_additivity_max_abs:.1e} "
            "log-odds."
        )
    if imaging_trust is not None:
        st.markdown(
            f"Imaging maps, measured when the imaging model was trained, on "
            f"{imaging_trust.n_scans} test scans ({imaging_trust.n_lesion_scans} with a lesion "
            f"mask; Grad-CAM explains `{imaging_trust.target_layer}`). **On the body**: share of "
            "the map on the scan's foreground before the page bounds it there; **between "
            "patients**: mean correlation of different patients' maps (low = patient-specific); "
            "**random weights**: correlation with the map of the same net re-initialised "
            "(Adebayo et al. 2018: low = the map depends on the training); **score drop**: "
            "drop of the image score (SD) when the map's top 2-20% of pixels are removed."
        )
        figures = imaging_trust.summary
        st.dataframe(
            pd.DataFrame(
                {
                    "Map": [names.get(str(n), str(n)) for n in figures.index],
                    "Pointing game": figures["pointing_game"].map(_share),
                    "Inside lesion": figures["lesion_share"].map(_share),
                    "On the body": figures["foreground_share"].map(_share),
                    "Between patients": figures["specificity"].map(_ratio),
                    "Random weights": figures["randomisation_correlation"].map(_ratio),
                    "Score drop": figures["deletion_drop"].map(_ratio),
                }
            ),
            hide_index=True,
            key="explorer.imaging_trust",
        )
    stored = service.explanation_metrics()
    if stored is not None:
        st.caption(
            f"Explanations stored in batch for {stored['n_stored']:,} patients; additivity of "
            f"the stored values, largest error: {stored['additivity_max_abs']:.1e} log-odds."
        )
    interval_metrics = service.interval_metrics()
    if interval_metrics is not None and "test_coverage_true_risk" in interval_metrics:
        if interval_metrics.get("target") == "true_risk":
            claim = (
                "for the patient's true risk, calibrated out of fold on "
                f"{interval_metrics['n_calibration']:.0f} train + validation patients; it "
                "contains the synthetic true risk of "
                f"{interval_metrics['test_coverage_true_risk']:.0%} of the "
                f"{interval_metrics['n_test']:.0f} test patients (nominal "
                f"{interval_metrics['level']:.0%}; mean width "
                f"{interval_metrics['test_mean_width']:.2f})"
            )
        else:
            claim = (
                "for the event rate among patients with the same predicted risk, calibrated "
                f"out of fold on the outcomes of {interval_metrics['n_calibration']:.0f} train "
                "+ validation patients; it contains the true risk of "
                f"{interval_metrics['test_coverage_true_risk']:.0%} of the "
                f"{interval_metrics['n_test']:.0f} test patients and the estimated event rate "
                f"of similar-risk patients for {interval_metrics['test_coverage_event_rate']:.0%}"
                f" (mean width {interval_metrics['test_mean_width']:.2f})"
            )
        st.caption(f"Risk interval ({interval_metrics['level']:.0%}): {claim}.")
