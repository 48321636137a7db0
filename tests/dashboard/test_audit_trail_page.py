"""The audit trail page verifies the hash chain on request and names a bad event."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

from streamlit.testing.v1 import AppTest

from dashboard.state import IDENTITY
from data.store import AuditChainCheck
from fusion.admin.access import Identity

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "pages" / "audit_trail.py")


def _verified(at: AppTest) -> AppTest:
    at.session_state[IDENTITY] = Identity(user="ana@h.org", role="admin", source="oidc")
    at.run()
    assert not at.exception, at.exception
    at.button(key="audit.verify").click().run()
    assert not at.exception, at.exception
    return at


def test_verify_reports_an_intact_chain_with_its_head(patched_service) -> None:
    at = _verified(AppTest.from_file(PAGE, default_timeout=60))
    check = patched_service.store.verify_audit_chain()
    assert check.ok
    assert f"Intact: {check.events:,} events" in at.success[0].value
    assert f"Head {check.head_id}:" in at.success[0].value


def test_verify_names_the_first_bad_event(patched_service) -> None:
    broken = AuditChainCheck(4, 4, "ab" * 32, 5, "event #5 was changed after it was written")
    with patch.object(patched_service.store, "verify_audit_chain", return_value=broken):
        at = _verified(AppTest.from_file(PAGE, default_timeout=60))
    assert "Not intact: event #5 was changed after it was written" in at.error[0].value
