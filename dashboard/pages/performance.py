"""Model performance: curves, calibration, confusion matrix and modality ablation (test split)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.components.signin import require_page_area
from dashboard.resources import get_performance, get_test_shap, list_models, require_risk_service
from fusion.display import format_risk_interval, readable_table
from fusion.evaluation.suppression import SUPPRESSED_TILE
from fusion.reports.exports import safe_csv
from fusion.reports.performance_figures import performance_figures

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
    "Each row is a LightGBM model fitted on the same training split with one modality set "
    "(fusion: all of them); the oracle scores patients with their synthetic true risk."
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
