"""Patient picker: id prefix search over one page of patients at a time (scales to 1M)."""

from __future__ import annotations

import streamlit as st

from dashboard.resources import PAGE_SIZE, search_patients
from dashboard.state import get_patient_id, set_patient_id
from fusion.service import RiskService

__all__ = ["render_patient_picker"]

SPLIT_CHOICES = {"Test set": "test", "All patients": None}


def render_patient_picker(service: RiskService, *, key: str) -> str | None:
    """Search box, split filter, pager and patient select; returns the chosen patient id.

    Only one page (``PAGE_SIZE`` rows) is queried per run, through the primary-key index.
    """
    version = service.model_info().version
    query = st.text_input("Search by patient id", key=f"{key}.query", placeholder="e.g. P00001")
    split_label = st.radio(
        "Show",
        list(SPLIT_CHOICES),
        horizontal=True,
        key=f"{key}.split",
        help="Test-set patients were never seen in training: their metrics are honest.",
    )
    split = SPLIT_CHOICES[str(split_label)]
    total = service.count_patients(split)
    page = int(
        st.number_input(
            f"Page (of {max(1, -(-total // PAGE_SIZE))}, {PAGE_SIZE} per page)",
            min_value=1,
            value=1,
            step=1,
            key=f"{key}.page",
        )
    )
    frame = search_patients(service, version, query, split, (page - 1) * PAGE_SIZE)
    if frame.empty:
        st.info(f"No patient id starts with {query!r} on this page; clear the search or go back.")
        return None
    labels = {
        row.patient_id: (
            f"{row.patient_id} · {row.split}{' ★' if row.split == 'test' else ''} · "
            f"{row.age:.0f} y {row.sex} · risk {row.risk:.0%}"
        )
        for row in frame.itertuples()
    }
    options = list(labels)
    current = get_patient_id()
    widget_key = f"{key}.patient"
    if widget_key in st.session_state and st.session_state[widget_key] not in options:
        del st.session_state[widget_key]
    index = options.index(current) if current in options else 0
    choice = st.selectbox(
        "Patient (★ = test set)",
        options,
        index=index,
        format_func=lambda pid: labels[pid],
        key=widget_key,
    )
    set_patient_id(choice)
    return None if choice is None else str(choice)
