"""Session-state keys and typed helpers; the only place that names ``st.session_state`` keys."""

from __future__ import annotations

import streamlit as st

__all__ = ["PATIENT_ID", "get_patient_id", "set_patient_id"]

PATIENT_ID = "riskfusion.patient_id"


def get_patient_id() -> str | None:
    """The patient selected on any page, or None."""
    value = st.session_state.get(PATIENT_ID)
    return None if value is None else str(value)


def set_patient_id(patient_id: str | None) -> None:
    """Remember the selected patient across pages."""
    st.session_state[PATIENT_ID] = patient_id
