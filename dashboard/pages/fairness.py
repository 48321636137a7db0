"""Bias audit: group metrics with CIs, disparities against a reference, small-cell suppression."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import streamlit as st

from dashboard.components.signin import require_page_area
from dashboard.components.usefulness import render_clinical_usefulness
from dashboard.components.worst_slices import render_worst_slices
from dashboard.resources import get_audit, get_group_curves, get_reliance, require_risk_service
from fusion.admin.access import AccessDeniedError
from fusion.display import AUDIT_COLUMN_LABELS, readable_table
from fusion.evaluation.bootstrap import METRICS
from fusion.evaluation.flags import DEFAULT_FLAG_METHOD, FLAG_METHODS
from fusion.evaluation.groups import AUDIT_ATTRIBUTES
from fusion.reports.audit_report import (
    audit_csv,
    audit_figures,
    audit_html,
    comparisons_csv,
    demo_bias_note,
    flag_rule,
)
from fusion.reports.figures import (
    make_disparity_figure,
    make_group_calibration_figure,
    make_group_roc_figure,
    make_reliance_figure,
)
from fusion.reports.usefulness_figures import usefulness_figures

LARGEST = "(largest group)"
METHOD_LABELS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}

st.title("Bias audit")
identity = require_page_area("cohort")
service = require_risk_service()

info = service.model_info()
stamp = service.data_stamp()  # keys every cached view: a later score recomputes them
st.caption(
    f"Fusion model `{info.version}`, held-out test split. Group metrics carry percentile "
    "bootstrap 95% CIs (200 resamples); differences are signed (group minus reference) and "
    "flagged only after adjusting across every comparison shown (rule below; measured "
    "false-flag rates: docs/models.md)."
)
bias_note = demo_bias_note(service.build_params())
if bias_note is not None:
    st.info(bias_note, icon=":material/science:")
controls = st.columns([3, 2, 1, 2, 2])
attributes = controls[0].multiselect(
    "Sensitive attributes (several: their intersection)",
    list(AUDIT_ATTRIBUTES),
    default=["sex"],
    max_selections=3,
    key="fairness.attributes",
)
requested = controls[1].slider(
    "Decision threshold", 0.0, 1.0, round(info.threshold, 2), 0.01, key="fairness.threshold"
)
# The floor is configuration (RISKFUSION_MIN_CELL): raised here by anyone, lowered by an admin
# only (the service refuses anyone else and audits the admin).
floor = service.min_cell_floor
min_cell = int(
    controls[2].number_input(
        "Smallest group shown",
        min_value=0 if identity.role == "admin" else floor,
        value=floor,
        step=1,
        key="fairness.min_cell",
        help=f"Configured floor: {floor} (RISKFUSION_MIN_CELL). "
        + (
            "As admin you may lower it; each lowering is written to the audit trail."
            if identity.role == "admin"
            else "You may raise it; only an admin may lower it."
        ),
    )
)
method = controls[4].radio(
    "Flag adjustment",
    list(FLAG_METHODS),
    index=list(FLAG_METHODS).index(DEFAULT_FLAG_METHOD),
    format_func=lambda name: METHOD_LABELS[name],
    key="fairness.method",
    help="Holm (default) keeps the chance of any false flag in the audit at or below 5%; "
    "Benjamini-Hochberg keeps the expected share of false flags at or below 5% (more flags "
    "when many differences are real).",
)
if not attributes:
    st.info("Choose at least one sensitive attribute.")
    st.stop()
by = tuple(attributes)
# A researcher's threshold snaps to cut points between which no group has a small count.
choice = service.threshold_choice(float(requested), identity, min_cell, by)
threshold = choice.threshold
if choice.allowed is not None:
    st.caption(choice.note())
try:
    default = get_audit(service, stamp, by, float(threshold), None, min_cell, identity, method)
except (ValueError, AccessDeniedError) as err:
    st.error(str(err))
    st.stop()
shown = default.by_group.index[~default.by_group["suppressed"]].tolist()
reference = controls[3].selectbox("Reference group", [LARGEST, *shown], key="fairness.reference")
report = (
    default
    if reference == LARGEST or reference not in shown  # e.g. just after an attribute switch
    else get_audit(service, stamp, by, float(threshold), str(reference), min_cell, identity, method)
)

hidden = int(report.by_group["suppressed"].sum())
# Two tiles a row: four in one row cut the labels off at 1280x720.
cols = [*st.columns(2), *st.columns(2)]
cols[0].metric("Groups", f"{len(report.by_group)}", help=" x ".join(report.attributes))
cols[1].metric("Suppressed groups", f"{hidden}", help=report.marker)
cols[2].metric(
    "Flagged differences",
    "not compared" if report.nothing_compared else f"{report.n_flagged} of {report.n_comparisons}",
    help=f"{METHOD_LABELS[report.method]}-adjusted p < {report.alpha:g}",
)
dp = report.summary.loc["demographic_parity_difference"]
if np.isnan(dp["difference"]):  # nothing compared, or every selection rate hidden
    cols[3].metric(
        "Largest selection-rate difference",
        "not compared",
        help=report.nothing_compared or f"{report.marker}: no shown difference.",
    )
else:
    cols[3].metric(
        "Largest selection-rate difference",
        f"{dp['difference']:+.3f}",
        help=f"{dp['group']} minus {report.reference}; 95% CI {dp['low']:+.3f} to "
        f"{dp['high']:+.3f}; {'flagged' if dp['flagged'] else 'not flagged'}.",
    )
if report.nothing_compared:
    st.warning(report.nothing_compared, icon=":material/block:")
else:
    st.caption(flag_rule(report))
    st.dataframe(
        readable_table(report.group_states(), labels=AUDIT_COLUMN_LABELS),
        key="fairness.states",
        hide_index=True,
    )
    st.dataframe(
        readable_table(report.comparisons(), labels=AUDIT_COLUMN_LABELS),
        key="fairness.comparisons",
        hide_index=True,
    )
if hidden:
    st.caption(
        f"{hidden} group(s) not shown: fewer than {report.min_cell} patients, or suppressed so "
        "that a smaller group's size cannot be derived from the total."
    )
hidden_rates = int(report.hidden.reindex(columns=list(METRICS)).fillna(False).to_numpy().sum())
if hidden_rates:
    st.caption(
        f"{hidden_rates} rate(s) of shown groups not shown: with the group's n they would give "
        f"away a count under {report.min_cell} (events, flagged patients or a confusion-matrix "
        "cell, 0 included), directly or through another group and the total."
    )

metric = st.selectbox(
    "Metric to plot",
    list(METRICS),
    index=1,
    format_func=lambda name: AUDIT_COLUMN_LABELS.get(name, name),
    key="fairness.metric",
)
figure = make_disparity_figure(report, str(metric))
st.plotly_chart(figure, key="fairness.figure")
if report.by_group.loc[~report.by_group["suppressed"], str(metric)].isna().all():
    st.caption(
        f"{AUDIT_COLUMN_LABELS.get(str(metric), metric)} is hidden for every shown group: "
        "it would give away a small count."
    )
table = report.table()
# The chosen metric only (it fits the page); every metric is in the expander and the CSV.
focus = [
    c
    for c in (
        "group",
        "n",
        metric,
        f"{metric}_low",
        f"{metric}_high",
        f"diff_{metric}",
        f"diff_{metric}_low",
        f"diff_{metric}_high",
        f"diff_{metric}_flag",
    )
    if c in table.columns
]
st.dataframe(
    readable_table(table.loc[:, focus], labels=AUDIT_COLUMN_LABELS),
    key="fairness.table",
    hide_index=True,
)
with st.expander("Every metric by group"):
    st.dataframe(
        readable_table(table.drop(columns=list(report.attributes)), labels=AUDIT_COLUMN_LABELS),
        key="fairness.table_all",
        hide_index=True,
    )

if choice.curve_cuts is None:
    roc_by_group, calibration_by_group = get_group_curves(
        service, stamp, by, min_cell, identity, float(threshold)
    )
else:  # a researcher's curves pass through the same cut points as the threshold
    roc_by_group, calibration_by_group = service.group_curves(
        by, min_cell=min_cell, identity=identity, cut_points=choice.curve_cuts
    )
roc_column, calibration_column = st.columns(2)
roc_column.plotly_chart(make_group_roc_figure(roc_by_group), key="fairness.roc")
roc_column.caption(
    f"Each group's curve passes only through cuts with at least {report.min_cell} events and "
    f"{report.min_cell} non-events between points; a group without them (or whose events are "
    "hidden) has no curve."
)
calibration_column.plotly_chart(
    make_group_calibration_figure(calibration_by_group), key="fairness.calibration"
)
hidden_bins = int(calibration_by_group["suppressed"].sum())
if hidden_bins:
    calibration_column.caption(
        f"{hidden_bins} calibration bin(s) not shown: fewer than {report.min_cell} patients, or "
        "suppressed so that a small bin's count cannot be derived from the group's n or the "
        "bin's count over all patients."
    )

usefulness = render_clinical_usefulness(
    service, stamp, by=by, min_cell=min_cell, identity=identity, key="fairness.usefulness"
)

render_worst_slices(service, stamp, min_cell=min_cell, identity=identity, key="fairness.slices")

st.subheader("Reliance on each modality by group")
st.caption(
    "Mean |SHAP| of each modality's inputs per group (test split): a lower imaging bar for "
    "one site means the model trusts that site's scans less. Same suppression as above."
)
reliance = get_reliance(service, stamp, by, min_cell, identity)
st.plotly_chart(make_reliance_figure(reliance), key="fairness.reliance")

name = f"audit-{'-'.join(report.attributes)}-{info.version}"
by_list = list(report.attributes)
downloads = st.columns(3)
downloads[0].download_button(
    "Download metrics (CSV)",
    audit_csv(report),
    file_name=f"{name}.csv",
    mime="text/csv",
    key="fairness.csv",
    on_click=service.record_event,
    args=(identity, "export"),
    kwargs={"detail": {"page": "fairness", "format": "csv", "by": list(report.attributes)}},
)

downloads[1].download_button(
    "Download differences (CSV)",
    comparisons_csv(report),
    file_name=f"{name}-differences.csv",
    mime="text/csv",
    key="fairness.comparisons_csv",
    on_click=service.record_event,
    args=(identity, "export"),
    kwargs={"detail": {"page": "fairness", "format": "csv", "table": "differences", "by": by_list}},
)


def _html_report() -> str:
    """Built only when the button is clicked (the report inlines plotly.js, ~5 MB)."""
    service.record_event(
        identity,
        "export",
        detail={"page": "fairness", "format": "html", "by": list(report.attributes)},
    )
    figures = audit_figures(
        report,
        roc_by_group=roc_by_group,
        calibration_by_group=calibration_by_group,
        reliance=reliance,
    )
    figures.update(usefulness_figures(usefulness))
    return audit_html(
        report,
        model_version=info.version,
        created=datetime.now(UTC),
        figures=figures,
        context=None if bias_note is None else {"cohort": bias_note},
    )


downloads[2].download_button(
    "Download report (HTML)",
    _html_report,
    file_name=f"{name}.html",
    mime="text/html",
    on_click="ignore",
    key="fairness.html",
)
