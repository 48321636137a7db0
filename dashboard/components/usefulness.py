"""The "Clinical usefulness" section of the performance and bias-audit pages."""

from __future__ import annotations

import streamlit as st

from dashboard.resources import get_usefulness
from data.store import DataStamp
from fusion.admin.access import Identity
from fusion.display import readable_table
from fusion.reports.usefulness_figures import (
    make_decision_curve_figure,
    make_smooth_calibration_figure,
)
from fusion.service.facade import RiskService
from fusion.service.usefulness import UsefulnessView

__all__ = ["CALIBRATION_LABELS", "render_clinical_usefulness"]


CALIBRATION_LABELS = {
    "n": "Patients",
    "intercept": "Calibration intercept",
    "slope": "Calibration slope",
    "observed_expected": "Observed/expected",
    "ici": "ICI",
}
"""Readable names of the calibration statistics (the CI columns merge into them)."""


def render_clinical_usefulness(
    service: RiskService,
    stamp: DataStamp,
    *,
    by: tuple[str, ...] = (),
    min_cell: int | None = None,
    identity: Identity | None = None,
    key: str,
) -> UsefulnessView:
    """Decision curve and smoothed calibration side by side, then the calibration statistics.

    Returns the view, so the page can put the same numbers in its exports.
    """
    view = get_usefulness(service, stamp, by, min_cell, identity)
    st.subheader("Clinical usefulness and calibration")
    if view.decision.empty:
        st.info(
            f"Nothing to show: every group has fewer than {view.min_cell} patients, events or "
            "non-events."
        )
        return view
    left, right = st.columns(2)
    left.plotly_chart(make_decision_curve_figure(view.decision), key=f"{key}.decision")
    right.plotly_chart(
        make_smooth_calibration_figure(view.calibration_curves), key=f"{key}.smooth_calibration"
    )
    st.caption(
        view.note()
        + " The model is useful at a threshold where its net benefit lies above both treat-all "
        "and treat-none. Calibration: intercept 0 and slope 1 are ideal (slope under 1: risks "
        "too extreme); O/E is observed over expected events; ICI is the mean distance between "
        "the smoothed observed risk and the predicted risk."
    )
    table = view.calibration.reset_index()
    st.dataframe(
        readable_table(table, labels={"group": "Group", **CALIBRATION_LABELS}),
        key=f"{key}.calibration_table",
        hide_index=True,
    )
    return view
