"""Shared sidebar: which model version every page shows, and the selected patient."""

from __future__ import annotations

import streamlit as st

from dashboard.resources import load_patient_case
from dashboard.state import choose_patient, get_patient_id
from data.errors import CohortError
from fusion.service.facade import RiskService
from fusion.service.patient_facts import identity_facts

__all__ = ["render_selected_patient", "render_sidebar"]


def render_sidebar(service: RiskService) -> None:
    """Model version, test AUROC and the synthetic-data note."""
    info = service.model_info()
    with st.sidebar:
        st.markdown("**Active model**")
        st.caption(f"Fusion `{info.version}`")
        st.caption(f"Imaging `{info.imaging_version}`")
        st.caption(f"Test AUROC {info.test_auroc:.3f}; decision threshold {info.threshold:.2f}")
        if service.store.has_ground_truth():
            st.caption("Demo on a synthetic cohort: no real patient data.")
        else:
            st.warning("Imported data: for research only, not for clinical use.")


def render_selected_patient(service: RiskService) -> None:
    """The patient every patient page shows (or that none is chosen), with a Close button."""
    patient_id = get_patient_id()
    with st.sidebar.container(key="sidebar_patient"):
        st.markdown("**Selected patient**")
        if patient_id is None:
            st.caption("None: choose one on a patient page.")
            return
        try:
            result = service.predict(load_patient_case(service, patient_id))
        except CohortError as err:
            st.warning(str(err))
        else:
            st.markdown(f"`{result.patient_id}`")
            st.caption(" · ".join(identity_facts(result)))
        st.button(
            "Close patient",
            key="sidebar.close_patient",
            on_click=choose_patient,
            args=(None,),
            help="Close this patient on every page, e.g. before you leave the screen.",
        )
