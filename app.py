"""riskfusion dashboard entry point: page config, shared sidebar, navigation."""

from __future__ import annotations

from contextlib import suppress

import streamlit as st

from dashboard.components.sidebar import render_sidebar
from dashboard.resources import get_risk_service
from data.errors import CohortError

st.set_page_config(page_title="riskfusion", page_icon="🩺", layout="wide")

pages = {
    "Patients": [
        st.Page(
            "dashboard/pages/patient_explorer.py",
            title="Patient explorer",
            icon="🧑‍⚕️",
            default=True,
        ),
    ],
    "Model": [
        st.Page("dashboard/pages/performance.py", title="Model performance", icon="📈"),
        st.Page("dashboard/pages/fairness.py", title="Bias audit", icon="⚖️"),
    ],
}
current = st.navigation(pages)
with suppress(CohortError):  # the page itself explains what is missing and how to build it
    render_sidebar(get_risk_service())
current.run()
