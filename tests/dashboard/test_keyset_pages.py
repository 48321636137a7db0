"""AppTests of keyset paging: the picker's first/previous/next/last pages list every patient
once, in order, without OFFSET; the audit trail pages without counting the trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.resources import PAGE_SIZE
from dashboard.state import IDENTITY
from data.store import AuditEntry
from fusion.admin.access import Identity
from tests.data.store.test_keyset_pages import _statements, skipped_rows

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
AUDIT_PAGE = str(ROOT / "dashboard" / "pages" / "audit_trail.py")


def _listed(at: AppTest) -> list[str]:
    return [option.split(" ")[0] for option in at.selectbox(key="explorer.patient").options]


def _click(at: AppTest, name: str) -> None:
    at.button(key=f"explorer.{name}").click().run()
    assert not at.exception, at.exception


def _enabled(at: AppTest, name: str) -> bool:
    return not at.button(key=f"explorer.{name}").disabled


@pytest.mark.parametrize(
    ("split_label", "split", "query"),
    [("All patients", None, ""), ("Test set", "test", ""), ("All patients", None, "P00000")],
)
def test_picker_pages_list_every_patient_once_both_ways(
    patched_service, split_label: str, split: str | None, query: str
) -> None:
    expected = patched_service.search_patients(query, split=split, limit=1000)[
        "patient_id"
    ].tolist()
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    at.radio(key="explorer.split").set_value(split_label).run()
    at.text_input(key="explorer.query").set_value(query).run()
    with _statements(patched_service.store.engine) as seen:
        assert not _enabled(at, "first")
        assert not _enabled(at, "previous")
        forwards = [_listed(at)]
        while _enabled(at, "next"):
            _click(at, "next")
            forwards.append(_listed(at))
        assert not _enabled(at, "last")
        assert [pid for page in forwards for pid in page] == expected
        assert all(len(page) == PAGE_SIZE for page in forwards[:-1])
        if len(forwards) > 1:
            _click(at, "first")
            assert _listed(at) == forwards[0]
            _click(at, "last")  # the same last page as paging there, and its number
            assert _listed(at) == forwards[-1]
        pages = -(-len(expected) // PAGE_SIZE)
        assert f"Page {pages} of {pages}," in " ".join(c.value for c in at.caption)
        backwards = [_listed(at)]
        while _enabled(at, "previous"):
            _click(at, "previous")
            backwards.append(_listed(at))
        assert backwards == forwards[::-1]
    assert "Page 1 of" in " ".join(c.value for c in at.caption)
    reads = [(sql, params) for sql, params in seen if "FROM patients" in sql]
    assert reads or len(forwards) == 1  # a single page is read (and cached) before paging
    assert [skipped_rows(sql, params) for sql, params in reads] == [0] * len(reads)


def _audit_page(at: AppTest) -> AppTest:
    at.session_state[IDENTITY] = Identity(user="ana@h.org", role="admin", source="oidc")
    at.run()
    assert not at.exception, at.exception
    return at


def test_audit_trail_page_knows_the_oldest_page_without_counting(patched_service) -> None:
    patient = "PKEYSET01"
    for _ in range(100):  # exactly one full page for this patient
        patched_service.store.record_event(
            AuditEntry(actor="ana", role="admin", action="export", patient_id=patient)
        )
    at = _audit_page(AppTest.from_file(AUDIT_PAGE, default_timeout=60))
    with _statements(patched_service.store.engine) as seen:
        at.text_input(key="audit.patient").set_value(patient).run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 100
    assert at.button(key="audit.older").disabled  # nothing older than this full page
    assert "no older events" in " ".join(c.value for c in at.caption)
    audit_reads = [sql.lower() for sql, _ in seen if "audit_events" in sql]
    assert audit_reads
    assert not [sql for sql in audit_reads if "count(" in sql]

    patched_service.store.record_event(  # an older page appears only with one more event
        AuditEntry(actor="ana", role="admin", action="export", patient_id=patient)
    )
    at.run()
    assert not at.button(key="audit.older").disabled
    at.button(key="audit.older").click().run()
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 1
    assert at.button(key="audit.older").disabled
