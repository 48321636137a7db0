"""riskfusion dashboard entry point: page config, sign-in, role-filtered navigation, sidebar."""

from __future__ import annotations

from contextlib import suppress

import streamlit as st

from dashboard.components.sidebar import render_selected_patient, render_sidebar
from dashboard.components.signin import render_role_switch, sign_in
from dashboard.resources import get_risk_service, get_settings
from dashboard.state import forget_loaded_patient
from data.errors import CohortError
from fusion.admin.access import can_open

st.set_page_config(page_title="riskfusion", page_icon="🩺", layout="wide")

# (area a role must be allowed to open, navigation group, page)
PAGES = [
    (
        "patients",
        "Patients",
        st.Page("dashboard/pages/patient_explorer.py", title="Patient explorer", icon="🧑‍⚕️"),
    ),
    (
        "patients",
        "Patients",
        st.Page("dashboard/pages/forecast.py", title="Treatment forecast", icon="💊"),
    ),
    (
        "cohort",
        "Model",
        st.Page("dashboard/pages/performance.py", title="Model performance", icon="📈"),
    ),
    ("cohort", "Model", st.Page("dashboard/pages/fairness.py", title="Bias audit", icon="⚖️")),
    (
        "patients",
        "Present",
        st.Page("dashboard/pages/guided_demo.py", title="Guided demo", icon="🎬"),
    ),
    ("admin", "Admin", st.Page("dashboard/pages/audit_trail.py", title="Audit trail", icon="🗒️")),
    ("admin", "Admin", st.Page("dashboard/pages/data.py", title="Data", icon="📥")),
]

forget_loaded_patient()  # each run loads the selected patient afresh, once
service = None
with suppress(CohortError):  # the page itself explains what is missing and how to build it
    service = get_risk_service()
identity = sign_in(get_settings(), service)
pages: dict[str, list[st.Page]] = {}
for area, group, page in PAGES:
    if can_open(identity.role, area):
        pages.setdefault(group, []).append(page)
current = st.navigation(pages)
if service is not None and can_open(identity.role, "patients"):
    render_selected_patient(service)
render_role_switch(identity)
if service is not None:
    render_sidebar(service)
current.run()
