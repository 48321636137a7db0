"""Audit trail (admins): every sign-in, patient view, what-if, export, import and training run."""

from __future__ import annotations

import streamlit as st

from dashboard.components.signin import require_page_area
from dashboard.resources import require_risk_service
from data.store import AUDIT_ACTIONS

PAGE_SIZE = 100
OLDER_KEY = "audit.before_ids"

st.title("Audit trail")
identity = require_page_area("admin")
service = require_risk_service()
st.caption(
    "Append-only: the database refuses to change or delete events (triggers on SQLite and "
    "PostgreSQL), and each event carries a hash of the one before it, so an edit made around "
    "the database is found by *Verify*. Newest first; times are UTC."
)
cols = st.columns([1, 1, 1])


def restart_pages() -> None:
    """A new filter shows its newest page."""
    st.session_state[OLDER_KEY] = [None]


action = cols[0].selectbox(
    "Action", ["all", *AUDIT_ACTIONS], key="audit.action", on_change=restart_pages
)
patient = (
    cols[1]
    .text_input("Patient id (exact)", key="audit.patient", on_change=restart_pages)
    .strip()
    .upper()
)
chosen_action = None if action == "all" else str(action)
# Keyset pages: a stack of the ids each shown page started below. One event beyond the page
# says whether older ones exist; nothing counts the trail (millions of events) on a view.
stack: list[int | None] = st.session_state.setdefault(OLDER_KEY, [None])
fetched = service.audit_trail(
    limit=PAGE_SIZE + 1, before_id=stack[-1], action=chosen_action, patient_id=patient or None
)
frame = fetched.head(PAGE_SIZE)
has_older = len(fetched) > PAGE_SIZE
st.dataframe(frame, hide_index=True, width="stretch")
nav = st.columns([1, 1, 4])
if nav[0].button("Newer", disabled=len(stack) == 1, key="audit.newer"):
    stack.pop()
    st.rerun()
if nav[1].button("Older", disabled=not has_older, key="audit.older"):
    stack.append(int(frame["event_id"].min()))
    st.rerun()
nav[2].caption(
    f"Page {len(stack)} ({PAGE_SIZE} events a page); "
    + ("older events follow." if has_older else "no older events.")
)


def export_csv() -> str:
    """Built only when the button is clicked; the export itself goes on the trail."""
    service.record_event(identity, "export", detail={"page": "audit_trail", "format": "csv"})
    return service.audit_trail_csv(action=chosen_action)


cols[2].download_button(
    "Export CSV",
    data=export_csv,
    file_name="riskfusion-audit-trail.csv",
    mime="text/csv",
    key="audit.export",
    on_click="ignore",
)

if st.button("Verify the hash chain", key="audit.verify"):
    check = service.store.verify_audit_chain()
    if check.ok:
        st.success(
            f"Intact: {check.events:,} events. Head {check.head_id}:{check.head_hash} "
            "(keep it elsewhere; `riskfusion audit-trail verify --expect` it later)."
        )
    else:
        st.error(f"Not intact: {check.problem}. {check.events:,} events before it check out.")
