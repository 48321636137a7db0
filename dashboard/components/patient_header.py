"""Patient header: the one line on every patient page that names whose numbers are shown."""

from __future__ import annotations

import streamlit as st

from fusion.records import RiskResult
from fusion.service.patient_facts import identity_facts

__all__ = ["HEADER_KEY", "render_patient_header"]

HEADER_KEY = "patient_header"


def render_patient_header(
    result: RiskResult, *, note: str | None = None, key: str = HEADER_KEY
) -> None:
    """Patient id, age, sex, split, site and cohort, read from ``result``.

    Pass the same :class:`~fusion.records.RiskResult` whose numbers the page shows, so the
    header and the numbers cannot name different patients.

    Parameters
    ----------
    result : RiskResult
        The patient's risk record (carries the identity facts).
    note : str, optional
        One line under the facts (e.g. why the guided demo shows this patient).
    key : str, default="patient_header"
        Container key (the CSS class ``st-key-<key>`` that browser tests find it by).
    """
    with st.container(border=True, key=key):
        st.markdown(
            f"#### Patient {result.patient_id}\n\n" + " · ".join(identity_facts(result)),
            help="Check these facts against the patient in front of you before you act.",
        )
        if note:
            st.caption(note)
