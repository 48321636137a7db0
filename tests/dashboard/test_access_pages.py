"""AppTests of sign-in: role-filtered navigation, page guards, idle sign-out, audit trail page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import IDENTITY, LAST_ACTIVITY
from fusion.admin.access import Identity

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def _events(service, action: str) -> int:
    return int((service.audit_trail(limit=10_000)["action"] == action).sum())


def test_local_mode_signs_in_as_admin_and_audits_it(patched_service) -> None:
    before = _events(patched_service, "sign_in")
    at = _app()
    identity = at.session_state[IDENTITY]
    assert identity.role == "admin"
    assert identity.source == "local"
    assert any("Signed in" in md.value for md in at.sidebar.markdown)
    assert _events(patched_service, "sign_in") == before + 1
    at.run()  # a rerun is not a new sign-in
    assert _events(patched_service, "sign_in") == before + 1


def test_researcher_sees_only_cohort_pages(patched_service) -> None:
    at = _app()
    at.selectbox(key="signin.local_role").set_value("researcher").run()
    assert not at.exception, at.exception
    assert at.session_state[IDENTITY].role == "researcher"
    # The patient explorer is gone from the navigation: the first page is now performance.
    assert at.title[0].value == "Model performance"


def test_page_guard_stops_a_role_outside_its_area(patched_service) -> None:
    page = AppTest.from_file(str(ROOT / "dashboard/pages/audit_trail.py"), default_timeout=60)
    page.session_state[IDENTITY] = Identity(user="c@h.org", role="clinician", source="oidc")
    page.run()
    assert not page.exception
    assert "clinician role may not open admin pages" in page.error[0].value
    assert not page.dataframe


def test_idle_session_is_signed_out(patched_service) -> None:
    at = _app()
    before = _events(patched_service, "sign_out")
    at.session_state[LAST_ACTIVITY] = time.time() - 16 * 60
    at.run()
    assert not at.exception
    assert "Signed out after 15 minutes" in at.info[0].value
    assert at.session_state[IDENTITY] is None
    assert _events(patched_service, "sign_out") == before + 1
    at.button[0].click().run()  # "Sign in again"
    assert at.session_state[IDENTITY].role == "admin"


def test_admin_reads_the_audit_trail(patched_service) -> None:
    at = _app()
    at.switch_page("dashboard/pages/audit_trail.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Audit trail"
    shown = at.dataframe[0].value
    assert {"actor", "role", "action", "patient_id", "model_version"} <= set(shown.columns)
    assert "sign_in" in set(shown["action"])
    at.selectbox(key="audit.action").set_value("sign_out").run()
    assert set(at.dataframe[0].value["action"]) <= {"sign_out"}


# ---------------------------------------------------------------- OIDC sign-in (st.login)
OIDC_SECRETS = """
[auth]
redirect_uri = "https://riskfusion.hospital.org/oauth2callback"
cookie_secret = "test-only-cookie-secret-of-32-characters"
client_id = "riskfusion"
client_secret = "test-only"
server_metadata_url = "https://idp.hospital.org/.well-known/openid-configuration"

[riskfusion.roles]
"ana.admin@hospital.org" = "admin"
"@hospital.org" = "clinician"
"""


def _oidc_app(
    tmp_path: Path, monkeypatch, user: dict[str, object], secrets_text: str = OIDC_SECRETS
) -> AppTest:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(secrets_text, encoding="utf-8")
    monkeypatch.setenv("RISKFUSION_SECRETS", str(secrets))
    at = AppTest.from_file(APP, default_timeout=120)
    at.user.clear()
    at.user.update(user)
    return at.run()


def test_oidc_signed_out_user_sees_only_the_sign_in_button(
    patched_service, tmp_path: Path, monkeypatch
) -> None:
    at = _oidc_app(tmp_path, monkeypatch, {"is_logged_in": False})
    assert not at.exception, at.exception
    assert [button.label for button in at.button] == ["Sign in"]
    assert IDENTITY not in at.session_state


def test_oidc_user_gets_the_role_their_email_maps_to(
    patched_service, tmp_path: Path, monkeypatch
) -> None:
    before = _events(patched_service, "sign_in")
    at = _oidc_app(
        tmp_path,
        monkeypatch,
        {"is_logged_in": True, "email": "bo.nurse@hospital.org", "email_verified": True},
    )
    assert not at.exception, at.exception
    identity = at.session_state[IDENTITY]
    assert (identity.user, identity.role, identity.source) == (
        "bo.nurse@hospital.org",
        "clinician",
        "oidc",
    )
    assert _events(patched_service, "sign_in") == before + 1
    trail = patched_service.audit_trail(limit=1)
    assert trail["actor"].iloc[0] == "bo.nurse@hospital.org"


def test_oidc_user_without_a_role_is_refused_with_the_fix(
    patched_service, tmp_path: Path, monkeypatch
) -> None:
    at = _oidc_app(
        tmp_path,
        monkeypatch,
        {"is_logged_in": True, "email": "eve@elsewhere.org", "email_verified": True},
    )
    assert not at.exception, at.exception
    assert "no riskfusion role" in at.error[0].value
    assert "[riskfusion.roles]" in at.error[0].value
    assert IDENTITY not in at.session_state


UNVERIFIED_ADMIN_DOMAIN = OIDC_SECRETS.replace(
    '"@hospital.org" = "clinician"', '"@hospital.org" = "admin"'
)


@pytest.mark.parametrize(
    ("verified", "match"),
    [({"email_verified": False}, "not verified"), ({}, "no email_verified claim")],
)
def test_oidc_unverified_email_gets_no_role_from_the_domain_rule(
    patched_service, tmp_path: Path, monkeypatch, verified, match
) -> None:
    before = _events(patched_service, "sign_in")
    user = {"is_logged_in": True, "email": "mallory@hospital.org", **verified}
    at = _oidc_app(tmp_path, monkeypatch, user, UNVERIFIED_ADMIN_DOMAIN)
    assert not at.exception, at.exception
    assert IDENTITY not in at.session_state
    assert match in at.error[0].value
    assert "roles are granted to verified addresses only" in at.error[0].value
    assert [button.label for button in at.button] == ["Sign out"]
    assert not at.dataframe
    assert not at.get("plotly_chart")
    assert _events(patched_service, "sign_in") == before


def test_oidc_verified_email_gets_the_domain_role(
    patched_service, tmp_path: Path, monkeypatch
) -> None:
    user = {"is_logged_in": True, "email": "ana@hospital.org", "email_verified": True}
    at = _oidc_app(tmp_path, monkeypatch, user, UNVERIFIED_ADMIN_DOMAIN)
    assert not at.exception, at.exception
    assert at.session_state[IDENTITY].role == "admin"


def test_incomplete_auth_section_stops_the_dashboard_with_what_is_missing(
    patched_service, tmp_path: Path, monkeypatch
) -> None:
    half = '[auth]\nredirect_uri = "https://riskfusion.hospital.org/oauth2callback"\n'
    at = _oidc_app(tmp_path, monkeypatch, {"is_logged_in": False}, half)
    assert not at.exception, at.exception
    assert IDENTITY not in at.session_state  # never falls back to local (admin) mode
    message = at.error[0].value
    assert "configured incompletely" in message
    for key in ("cookie_secret", "client_id", "client_secret", "server_metadata_url"):
        assert f"no {key}" in message
    assert not at.button
    assert not at.dataframe


def title_of(chart: dict) -> str:
    return chart["layout"]["title"]["text"]
