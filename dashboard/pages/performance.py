"""Model performance: curves, calibration, confusion matrix and modality ablation (test split)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.components.model_card import render_model_card
from dashboard.components.signin import require_page_area
from dashboard.components.usefulness import render_clinical_usefulness
from dashboard.resources import get_performance, get_test_shap, list_models, require_risk_service
from fusion.display import format_risk_interval, readable_table
from fusion.evaluation.suppression import SUPPRESSED_TILE
from fusion.reports.exports import safe_csv
from fusion.reports.performance_figures import performance_figures
from fusion.service.baselines import baseline_status, serve_baseline
from fusion.service.cohort_words import cohort_words
from fusion.training.modality_value import describe_modality, value_table, value_view

REGISTRY_LABELS = {
    "version": "Version",
    "created_at": "Created (UTC)",
    "active": "Active",
    "test_auroc": "Test AUROC",
    "imaging_version": "Imaging model",
    "trained_on": "Trained on",
    "patients": "Patients",
    "data_fingerprint": "Data fingerprint",
    "parts": "Parts",
}
REGISTRY_SHOWN = ("version", "created_at", "active", "test_auroc", "trained_on", "patients")

st.title("Model performance")
identity = require_page_area("cohort")
service = require_risk_service()

info = service.model_info()
stamp = service.data_stamp()  # keys every cached view: a later score recomputes them
st.caption(
    f"Fusion model `{info.version}` (imaging `{info.imaging_version}`), held-out test split. "
    "Intervals are percentile bootstrap 95% CIs (200 resamples)."
)
# The fused model against the logistic regression on its inputs (paired test bootstrap).
status = baseline_status(service.models)
if status.served_from is not None:
    st.info(status.served_words())
elif status.comparison is not None:
    words = status.comparison.describe()
    if status.offer_baseline:
        st.warning(words)
        if identity.role == "admin" and st.button(
            "Serve the logistic regression instead of the fused model",
            key="performance.serve_baseline",
        ):
            served = serve_baseline(service.store, service.artifacts_dir, service.models, identity)
            st.success(f"Now serving {served}.")
            st.rerun()
    else:
        st.caption(words)
requested = st.slider(
    "Decision threshold",
    0.0,
    1.0,
    round(info.threshold, 2),
    0.01,
    key="performance.threshold",
    help=f"Default: {info.threshold:.2f}, Youden's J on the validation split.",
)
# A researcher's threshold snaps to cut points between which no small count lies.
try:
    choice = service.threshold_choice(float(requested), identity, service.min_cell_floor)
    report = get_performance(service, stamp, choice.threshold)
except ValueError as err:
    st.error(str(err))
    st.stop()
if choice.curve_cuts is not None:
    report = service.performance_through(report, choice.curve_cuts)
    st.caption(choice.note())
shap_summary = get_test_shap(service, stamp)
# Researchers see aggregates only: no dot per patient.
figures = performance_figures(report, shap_summary, per_patient=identity.role == "admin")

fusion = report.ablation.loc["Fusion (all modalities)"]
# Three tiles a row: five in one row cut the labels and values off at 1280x720.
tiles = [*st.columns(3), *st.columns(3)]
tiles[0].metric("Test patients", f"{report.n:,}")
marker = SUPPRESSED_TILE  # the help says why and the floor
tiles[1].metric(
    "AUROC",
    marker if np.isnan(fusion["auroc"]) else f"{fusion['auroc']:.3f}",
    help=f"95% CI {fusion['auroc_low']:.3f}-{fusion['auroc_high']:.3f}"
    if not np.isnan(fusion["auroc"])
    else f"Hidden: fewer than {report.min_cell} events or non-events in the split.",
)
tiles[2].metric("Brier score", f"{report.brier:.3f}", help="Mean squared error of the risk.")
tiles[3].metric("ECE", f"{report.ece:.3f}", help="Expected calibration error over 10 risk bins.")
rate_hidden = (
    " Hidden: with the event totals it would give away a confusion-matrix cell "
    f"under {report.min_cell}."
)
for tile, label, column, who in (
    (tiles[4], "Sensitivity", "tpr", "with"),
    (tiles[5], "False positive rate", "fpr", "without"),
):
    hidden = bool(np.isnan(fusion[column]))
    tile.metric(
        label,
        marker if hidden else f"{fusion[column]:.1%}",
        help=f"Share of test patients {who} the event whose risk is >= {report.threshold:.2f}"
        + (
            rate_hidden
            if hidden
            else "; 95% CI "
            f"{format_risk_interval(fusion[f'{column}_low'], fusion[f'{column}_high'])}."
        ),
    )

left, middle, right = st.columns(3)
left.plotly_chart(figures["roc"], key="performance.roc")
middle.plotly_chart(figures["pr"], key="performance.pr")
if report.min_cell:
    left.caption(
        f"Curves drawn through cuts with at least {report.min_cell} events and "
        f"{report.min_cell} non-events between points (and the threshold), so no step is a "
        "small count; a model or split too small for that has no curve."
    )
right.plotly_chart(figures["calibration"], key="performance.calibration")

st.subheader("Modality ablation")
st.caption(
    "Each modality row is a LightGBM model fitted on the same training split with one modality "
    "set (fusion: all of them); the logistic regression uses every input of the fused model "
    "(L2 penalty chosen by cross-validation inside train+validation)"
    + (
        "; the oracle scores patients with their synthetic true risk."
        if cohort_words(service).is_demo
        else "."
    )
)
st.dataframe(
    readable_table(report.ablation, percent=["tpr", "fpr"], index_label="Model"),
    key="performance.ablation",
    width="stretch",
    hide_index=True,
)
st.download_button(
    "Download ablation table (CSV)",
    safe_csv(report.ablation, index=True, index_label="model"),
    file_name=f"ablation-{report.model_version}.csv",
    mime="text/csv",
    key="performance.download",
)

st.subheader("Does each modality add anything?")
modality_value = service.models.fusion_record.metrics.get("modality_value")
if modality_value is None:
    st.info("This model version was built before each modality's value was measured.")
else:
    st.caption(
        f"Measured when the model was built, out of fold ({modality_value['folds']}-fold "
        f"cross-validation) on the {modality_value['n_patients']:,} training and validation "
        "patients, never on the test split: the gain in AUROC and log-loss when the modality "
        "is added to the others, and its AUROC alone, each with a paired bootstrap 95% CI. A "
        "modality is used only when a gain's CI lies above 0 or its AUROC alone's CI lies "
        "above 0.5 (docs/models.md); otherwise the model is refitted without it and it does "
        "not move any risk."
    )
    for modality, row in value_table(modality_value).iterrows():
        st.markdown(f"- {describe_modality(str(modality), row)}")
    st.dataframe(value_view(modality_value), key="performance.modality_value", hide_index=True)

render_clinical_usefulness(service, stamp, identity=identity, key="performance.usefulness")

st.subheader("What the model relies on")
importance, beeswarm = st.columns([2, 3])
importance.plotly_chart(figures["importance"], key="performance.importance")
beeswarm.plotly_chart(figures["beeswarm"], key="performance.beeswarm")

st.subheader(f"Confusion matrix at threshold {report.threshold:.2f}")
st.dataframe(report.confusion_table(), key="performance.confusion")
hidden_cells = int(report.confusion.isna().to_numpy().sum())
if hidden_cells:
    st.caption(
        f"{hidden_cells} cell(s) not shown: fewer than {report.min_cell} patients, or "
        "suppressed so that a small cell cannot be derived from the totals."
    )

st.subheader("Model registry")
registry = readable_table(list_models(service, stamp), labels=REGISTRY_LABELS)
# The columns that fit the page; the data fingerprint and the registered parts in the expander.
st.dataframe(
    registry.loc[:, [REGISTRY_LABELS[c] for c in REGISTRY_SHOWN]],
    key="performance.registry",
    hide_index=True,
)
with st.expander("Every registry column"):
    st.dataframe(registry, key="performance.registry_all", hide_index=True)

render_model_card(service, stamp, identity, key="performance.model_card")
