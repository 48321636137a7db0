"""Patient picker (id search, one page of patients at a time) and the audit of patient views.

The picker shows the selected patient (``dashboard.state``) and changes it only when the user
picks one: the selectbox is driven from that one remembered choice on every run, so a search,
a page change or the split switch changes the list it offers, never the patient it shows.
Pages are keyset pages (:class:`dashboard.state.PickerPage`): first, previous, next and last,
each one range read of an index, whatever the page's position in the list.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.resources import (
    PAGE_SIZE,
    count_patients,
    get_patient_summaries,
    search_patients,
)
from dashboard.state import (
    PickerPage,
    choose_patient,
    get_patient_choice,
    get_patient_id,
    get_picker_page,
    mark_audited,
    set_picker_page,
)
from fusion.admin.access import Identity
from fusion.service.cohort_words import cohort_words
from fusion.service.facade import RiskService

__all__ = [
    "CHOOSE_PROMPT",
    "SPLIT_CHOICES",
    "audit_patient_view",
    "patient_label",
    "render_no_patient",
    "render_patient_picker",
]

SPLIT_CHOICES = {"Test set": "test", "All patients": None}
CHOOSE_PROMPT = (
    "No patient is open. Choose one in the **Patient** list (or type a full patient id in the "
    "search) to see their risk."
)


def patient_label(
    patient_id: str, split: str, age: float | None, sex: str | None, risk: float | None
) -> str:
    """One patient as the picker lists it, short enough for a narrow column at 1280 px.

    Id (★ for the test split), age in completed years, sex code and stored risk; the page's
    patient header spells the same facts out.

    Examples
    --------
    >>> patient_label("P0000474", "test", 67.9, "F", 0.766)
    'P0000474 ★ · 67 F · 77%'
    >>> patient_label("P0000012", "train", float("nan"), None, None)
    'P0000012 · ? ? · not scored'
    """
    age_text = "?" if age is None or pd.isna(age) else f"{math.floor(age):.0f}"
    return f"{patient_id}{' ★' if split == 'test' else ''} · {age_text} {sex or '?'} · " + (
        "not scored" if risk is None or pd.isna(risk) else f"{float(risk):.0%}"
    )


def _restart_list(key: str) -> None:
    """A new search or split shows its first page."""
    set_picker_page(key, PickerPage())


def _read_page(
    service: RiskService, query: str, split: str | None, key: str, pages: int, total: int
) -> tuple[pd.DataFrame, PickerPage, bool, bool]:
    """The rows of the picker's current page, the page, and whether rows lie before / after it.

    One row beyond the page is read to know whether there is more, so nothing is counted for
    it. The last page holds what is left after the full pages before it (page numbers stay
    where the first pages put them) and is read from the end of the list.
    """
    version = service.model_info().version
    page = get_picker_page(key)
    if page.last:
        page = PickerPage(number=pages, last=True)
    size = total - (pages - 1) * PAGE_SIZE if page.last and total > 0 else PAGE_SIZE
    frame = search_patients(service, version, query, split, page, size + 1)
    if page.before is None and not page.last:  # read forwards: the extra row is after the page
        return frame.head(PAGE_SIZE), page, page.after is not None, len(frame) > PAGE_SIZE
    more_before = len(frame) > size
    if page.before is not None and not more_before:  # rows went away: show the first page
        set_picker_page(key, PickerPage())
        return _read_page(service, query, split, key, pages, total)
    return frame.tail(size), page, more_before, not page.last


def _render_pager(
    key: str, frame: pd.DataFrame, page: PickerPage, pages: int, more: tuple[bool, bool]
) -> None:
    """First / previous / next / last buttons and the page caption."""
    more_before, more_after = more
    first_id = None if frame.empty else str(frame["patient_id"].iloc[0])
    last_id = None if frame.empty else str(frame["patient_id"].iloc[-1])
    previous = PickerPage() if page.number <= 2 else PickerPage(page.number - 1, before=first_id)
    buttons = [
        ("first", "«", "First page", PickerPage(), more_before),
        ("previous", "‹", "Previous page", previous, more_before),
        ("next", "›", "Next page", PickerPage(page.number + 1, after=last_id), more_after),
        ("last", "»", "Last page", PickerPage(number=pages, last=True), more_after),
    ]
    for column, (name, label, help_text, target, enabled) in zip(
        st.columns(len(buttons)), buttons, strict=True
    ):
        column.button(
            label,
            key=f"{key}.{name}",
            help=help_text,
            disabled=not enabled,
            on_click=set_picker_page,
            args=(key, target),
        )
    st.caption(f"Page {page.number} of {max(pages, page.number)}, {PAGE_SIZE} per page")


def _on_search(service: RiskService, key: str) -> None:
    """Typing a complete patient id opens that patient (a deliberate choice); a prefix lists."""
    _restart_list(key)
    query = str(st.session_state.get(f"{key}.query") or "").strip().upper()
    if query and not get_patient_summaries(service, service.model_info().version, (query,)).empty:
        choose_patient(query)


def _on_pick(widget_key: str) -> None:
    value = st.session_state.get(widget_key)
    choose_patient(None if value is None else str(value))


def render_patient_picker(service: RiskService, *, key: str) -> str | None:
    """Search box, split filter, pager and patient select; returns the selected patient id.

    Only one page (``PAGE_SIZE`` rows, plus one to know whether more follow) is queried per
    run, a keyset range read of the primary key or ``(split, patient_id)``; the selected
    patient is always listed first. Returns None until the user chooses a patient (on this
    page or another): nothing opens by itself.
    """
    version = service.model_info().version
    query = st.text_input(
        "Search by patient id",
        key=f"{key}.query",
        placeholder=f"e.g. {example}" if (example := cohort_words(service).example_id) else None,
        on_change=_on_search,
        args=(service, key),
        help="A prefix lists the matching patients; a complete id opens that patient.",
    )
    split_label = st.radio(
        "Show",
        list(SPLIT_CHOICES),
        horizontal=True,
        key=f"{key}.split",
        on_change=_restart_list,
        args=(key,),
        help="Test-set patients were never seen in training: their metrics are honest.",
    )
    split = SPLIT_CHOICES[str(split_label)]
    total = count_patients(service, query, split)
    pages = max(1, -(-total // PAGE_SIZE))
    frame, page, more_before, more_after = _read_page(service, query, split, key, pages, total)
    _render_pager(key, frame, page, pages, (more_before, more_after))
    selected = get_patient_id()
    if frame.empty:
        st.info(f"No patient id starts with {query!r} on this page; clear the search or go back.")
    rows = [row for row in frame.itertuples() if row.patient_id != selected]
    if selected is not None:  # the open patient is always listed, first
        rows = list(get_patient_summaries(service, version, (selected,)).itertuples()) + rows
    labels = {
        str(row.patient_id): patient_label(
            str(row.patient_id), str(row.split), row.age, row.sex, getattr(row, "risk", None)
        )
        for row in rows
    }
    widget_key = f"{key}.patient"
    # The widget shows the remembered choice on every run, whatever list it offers now; with a
    # patient open it cannot be cleared by a stray key (the sidebar's Close patient closes it).
    is_open = selected in labels
    st.session_state[widget_key] = selected if is_open else None
    st.selectbox(
        "Patient (★ test set · age, sex · stored risk)",
        list(labels),
        index=0 if is_open else None,
        placeholder="Choose a patient ...",
        format_func=lambda pid: labels[pid],
        key=widget_key,
        on_change=_on_pick,
        args=(widget_key,),
    )
    return selected


def render_no_patient() -> None:
    """The prompt a patient page shows while no patient is chosen."""
    st.info(CHOOSE_PROMPT, icon="👈")


def audit_patient_view(
    service: RiskService,
    identity: Identity,
    patient_id: str,
    *,
    page: str,
    action: str = "view_patient",
) -> None:
    """Write ``action`` once per deliberate choice of ``patient_id`` and page.

    Streamlit re-runs a page on every widget change; one choice of a patient (see
    :func:`dashboard.state.choose_patient`) shown on one page is one event. Nothing is written
    for a patient nobody chose, because no page opens one by itself.
    """
    choice = get_patient_choice()
    key = f"{action}|{page}|{patient_id}|choice {choice}|{service.model_info().version}"
    if mark_audited(key):
        service.record_event(identity, action, patient_id=patient_id, detail={"page": page})
