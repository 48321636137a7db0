"""Shared sidebar: which model version every page shows."""

from __future__ import annotations

import streamlit as st

from fusion.service import RiskService

__all__ = ["render_sidebar"]


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
