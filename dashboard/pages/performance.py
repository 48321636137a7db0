"""Model performance: curves, calibration, confusion matrix and modality ablation (test split)."""

from __future__ import annotations

import streamlit as st

from dashboard.components.signin import require_page_area
from dashboard.figures import (
    make_beeswarm_figure,
    make_calibration_figure,
    make_importance_figure,
    make_pr_figure,
    make_roc_figure,
)
from dashboard.resources import get_performance, get_test_shap, list_models, require_risk_service
from fusion.display import format_risk_interval, readable_table

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
require_page_area("cohort")
service = require_risk_service()

info = service.model_info()
st.caption(
    f"Fusion model `{info.version}` (imaging `{info.imaging_version}`), held-out test split. "
    "Intervals are percentile bootstrap 95% CIs (200 resamples)."
)
threshold = st.slider(
    "Decision threshold",
    0.0,
    1.0,
    round(info.threshold, 2),
    0.01,
    key="performance.threshold",
    help=f"Default: {info.threshold:.2f}, Youden's J on the validation split.",
)
try:
    report = get_performance(service, info.version, float(threshold))
except ValueError as err:
    st.error(str(err))
    st.stop()

fusion = report.ablation.loc["Fusion (all modalities)"]
# Three tiles a row: five in one row cut the labels and values off at 1280x720.
tiles = [*st.columns(3), *st.columns(3)]
tiles[0].metric("Test patients", f"{report.n:,}")
tiles[1].metric(
    "AUROC",
    f"{fusion['auroc']:.3f}",
    help=f"95% CI {fusion['auroc_low']:.3f}-{fusion['auroc_high']:.3f}",
)
tiles[2].metric("Brier score", f"{report.brier:.3f}", help="Mean squared error of the risk.")
tiles[3].metric("ECE", f"{report.ece:.3f}", help="Expected calibration error over 10 risk bins.")
tiles[4].metric(
    "Sensitivity",
    f"{fusion['tpr']:.1%}",
    help=f"Share of test patients with the event whose risk is >= {report.threshold:.2f}; "
    f"95% CI {format_risk_interval(fusion['tpr_low'], fusion['tpr_high'])}.",
)
tiles[5].metric(
    "False positive rate",
    f"{fusion['fpr']:.1%}",
    help=f"Share of test patients without the event whose risk is >= {report.threshold:.2f}; "
    f"95% CI {format_risk_interval(fusion['fpr_low'], fusion['fpr_high'])}.",
)

left, middle, right = st.columns(3)
left.plotly_chart(make_roc_figure(report.curves), key="performance.roc")
middle.plotly_chart(
    make_pr_figure(report.pr, prevalence=float(report.pr["precision"].iloc[0])),
    key="performance.pr",
)
right.plotly_chart(make_calibration_figure(report.calibration), key="performance.calibration")

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
    report.ablation.to_csv(index_label="model"),
    file_name=f"ablation-{report.model_version}.csv",
    mime="text/csv",
    key="performance.download",
)

st.subheader("What the model relies on")
shap_summary = get_test_shap(service, info.version)
importance, beeswarm = st.columns([2, 3])
importance.plotly_chart(
    make_importance_figure(shap_summary.modalities), key="performance.importance"
)
beeswarm.plotly_chart(make_beeswarm_figure(shap_summary.beeswarm), key="performance.beeswarm")

st.subheader(f"Confusion matrix at threshold {report.threshold:.2f}")
st.dataframe(report.confusion_table(), key="performance.confusion")
hidden_cells = int(report.confusion.isna().to_numpy().sum())
if hidden_cells:
    st.caption(
        f"{hidden_cells} cell(s) not shown: fewer than {report.min_cell} patients, or "
        "suppressed so that a small cell cannot be derived from the totals."
    )

st.subheader("Model registry")
registry = readable_table(list_models(service, info.version), labels=REGISTRY_LABELS)
# The columns that fit the page; the data fingerprint and the registered parts in the expander.
st.dataframe(
    registry.loc[:, [REGISTRY_LABELS[c] for c in REGISTRY_SHOWN]],
    key="performance.registry",
    hide_index=True,
)
with st.expander("Every registry column"):
    st.dataframe(registry, key="performance.registry_all", hide_index=True)
