"""Session-state keys and typed helpers; the only place that names ``st.session_state`` keys."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from fusion.admin.access import Identity, Role
from fusion.service.patient_case import PatientCase

if TYPE_CHECKING:  # type-only: keeps pandera out of this module's import
    from data.errors import ValidationReport

__all__ = [
    "DATA_CHECK",
    "GUIDED_STEP",
    "IDENTITY",
    "LAST_ACTIVITY",
    "LOADED_PATIENT",
    "LOCAL_ROLE",
    "PATIENT_CHOICE",
    "PATIENT_ID",
    "PICKER_PAGE_PREFIX",
    "WHAT_IF_PREFIX",
    "CohortCheck",
    "PickerPage",
    "choose_patient",
    "forget_loaded_patient",
    "get_cohort_check",
    "get_guided_step",
    "get_identity",
    "get_loaded_patient",
    "get_local_role",
    "get_patient_choice",
    "get_patient_id",
    "get_picker_page",
    "get_what_if_overrides",
    "mark_audited",
    "seconds_since_activity",
    "set_cohort_check",
    "set_guided_step",
    "set_identity",
    "set_loaded_patient",
    "set_local_role",
    "set_picker_page",
    "set_what_if_overrides",
    "touch_activity",
]

PATIENT_ID = "riskfusion.patient_id"
PATIENT_CHOICE = "riskfusion.patient_choice"
IDENTITY = "riskfusion.identity"
LAST_ACTIVITY = "riskfusion.last_activity"
LOCAL_ROLE = "riskfusion.local_role"
AUDITED = "riskfusion.audited"
LOADED_PATIENT = "riskfusion.loaded_patient"


def get_patient_id() -> str | None:
    """The patient the user chose, shared by every patient page; None until one is chosen."""
    value = st.session_state.get(PATIENT_ID)
    return None if value is None else str(value)


def get_patient_choice() -> int:
    """How many times this session's user chose another patient (0: never)."""
    return int(st.session_state.get(PATIENT_CHOICE, 0))


def choose_patient(patient_id: str | None) -> None:
    """The user chose ``patient_id`` (None closes the patient); call only from a widget callback.

    The one place that changes the selected patient: pages read it and never write it, so the
    choice carries from page to page until the user makes another. Choosing the patient already
    open changes nothing; any other choice counts as a new one (a new deliberate view to audit).
    """
    if patient_id == get_patient_id():
        return
    st.session_state[PATIENT_ID] = patient_id
    st.session_state[PATIENT_CHOICE] = get_patient_choice() + 1


def forget_loaded_patient() -> None:
    """Start a script run with no patient loaded (``app.py`` calls it first on every run)."""
    st.session_state.pop(LOADED_PATIENT, None)


def get_loaded_patient(patient_id: str, model_version: str) -> PatientCase | None:
    """The case of ``patient_id`` loaded earlier in this script run, or None."""
    case = st.session_state.get(LOADED_PATIENT)
    if (
        isinstance(case, PatientCase)
        and case.patient_id == patient_id
        and case.model_version == model_version
    ):
        return case
    return None


def set_loaded_patient(case: PatientCase) -> None:
    """Keep ``case`` for the rest of this script run (sidebar and page share one load)."""
    st.session_state[LOADED_PATIENT] = case


def get_identity() -> Identity | None:
    """The signed-in identity of this session, or None."""
    value = st.session_state.get(IDENTITY)
    return value if isinstance(value, Identity) else None


def set_identity(identity: Identity | None) -> None:
    """Sign this session in as ``identity`` (None signs out and forgets what was audited)."""
    st.session_state[IDENTITY] = identity
    st.session_state[AUDITED] = set()


def get_local_role() -> Role | None:
    """The role picked in local single-user mode, or None before the first pick."""
    value = st.session_state.get(LOCAL_ROLE)
    return value if value in ("clinician", "researcher", "admin") else None


def set_local_role(role: Role) -> None:
    """Remember the role picked in local single-user mode."""
    st.session_state[LOCAL_ROLE] = role


def seconds_since_activity() -> float | None:
    """Seconds since this session's last interaction, or None on its first run."""
    value = st.session_state.get(LAST_ACTIVITY)
    return None if value is None else time.time() - float(value)


def touch_activity() -> None:
    """Record an interaction now (every script run is one)."""
    st.session_state[LAST_ACTIVITY] = time.time()


def mark_audited(key: str) -> bool:
    """Remember that ``key`` was written to the audit trail; False if it already was."""
    audited = st.session_state.setdefault(AUDITED, set())
    if key in audited:
        return False
    audited.add(key)
    return True


# ---------------------------------------------------------------- the patient picker
PICKER_PAGE_PREFIX = "riskfusion.picker_page."


@dataclass(frozen=True, slots=True)
class PickerPage:
    """Which page of patients one picker shows: its number and where it is anchored (keyset).

    The default is the first page. A page is read again on every run from its anchor (the id
    it starts after, the id it ends before, or the end of the list), never by skipping rows,
    so that patients added meanwhile neither repeat nor hide a row.

    Attributes
    ----------
    number : int, default=1
        The page number shown (1-based).
    after, before : str or None, default=None
        The page starts after, or ends before, this patient id.
    last : bool, default=False
        The last page (read from the end of the list).
    """

    number: int = 1
    after: str | None = None
    before: str | None = None
    last: bool = False


def get_picker_page(key: str) -> PickerPage:
    """The page the picker ``key`` shows; the first page until the user pages."""
    value = st.session_state.get(f"{PICKER_PAGE_PREFIX}{key}")
    return value if isinstance(value, PickerPage) else PickerPage()


def set_picker_page(key: str, page: PickerPage) -> None:
    """Show ``page`` in the picker ``key`` (the first page: ``PickerPage()``)."""
    st.session_state[f"{PICKER_PAGE_PREFIX}{key}"] = page


# ---------------------------------------------------------------- what-if, guided demo
WHAT_IF_PREFIX = "riskfusion.what_if."
GUIDED_STEP = "riskfusion.guided_step"


def get_what_if_overrides(scope: str, patient_id: str) -> dict[str, float]:
    """The what-if edits applied in one editor (``scope``) to this patient; empty if none."""
    value = st.session_state.get(f"{WHAT_IF_PREFIX}{scope}")
    if not isinstance(value, tuple) or value[0] != patient_id:
        return {}
    return dict(value[1])


def set_what_if_overrides(scope: str, patient_id: str, overrides: dict[str, float]) -> None:
    """Remember the applied what-if edits of one editor; they are kept for one patient."""
    st.session_state[f"{WHAT_IF_PREFIX}{scope}"] = (patient_id, dict(overrides))


def get_guided_step() -> int:
    """The current step of the guided demo (0-based)."""
    return int(st.session_state.get(GUIDED_STEP, 0))


def set_guided_step(step: int) -> None:
    """Move the guided demo to ``step`` (0-based)."""
    st.session_state[GUIDED_STEP] = int(step)


# ---------------------------------------------------------------- the Data page
DATA_CHECK = "riskfusion.data.check"


@dataclass(frozen=True, slots=True)
class CohortCheck:
    """The cohort folder this session validated on the Data page, and its problem table.

    Attributes
    ----------
    source : str
        What the admin chose, in words (``upload cohort.zip``, a server path, the example).
    folder : str
        The cohort folder that was validated (and that an import would read).
    upload_root : str or None
        The extracted upload folder under ``<artifacts>/uploads/``; None for other sources.
    report : ValidationReport or None
        Every problem found; None while the validation job runs.
    job_id : str or None
        The background validation job (``fusion.admin.validation_jobs.start_validation``).
    """

    source: str
    folder: str
    upload_root: str | None
    report: ValidationReport | None
    job_id: str | None = None


def get_cohort_check() -> CohortCheck | None:
    """The last validation of this session on the Data page, or None."""
    value = st.session_state.get(DATA_CHECK)
    return value if isinstance(value, CohortCheck) else None


def set_cohort_check(check: CohortCheck | None) -> None:
    """Remember (or forget, with None) the validated cohort folder and its problems."""
    st.session_state[DATA_CHECK] = check
