"""Sign-in, roles and the idle timeout of a dashboard session; page guards and view auditing.

Two modes (see README "Deployment"):

* **OIDC**: when ``.streamlit/secrets.toml`` has a complete ``[auth]`` section, users sign in
  with ``st.login`` and get the role that ``[riskfusion.roles]`` maps their e-mail to, only when
  the identity provider has verified that e-mail (``email_verified``); an unverified, missing or
  unmapped e-mail is refused with the reason. An incomplete ``[auth]`` section stops the
  dashboard with what is missing (never a fallback to local mode).
* **Local single-user**: without ``[auth]`` the dashboard only serves on 127.0.0.1 (the CLI
  refuses other addresses) and the one local user picks the role to view as in the sidebar.
"""

from __future__ import annotations

import getpass
import logging

import streamlit as st

from dashboard.settings import Settings
from dashboard.state import (
    get_identity,
    get_local_role,
    mark_audited,
    seconds_since_activity,
    set_identity,
    set_local_role,
    touch_activity,
)
from fusion.admin.access import (
    ROLES,
    AccessDeniedError,
    Area,
    AuthConfigError,
    Identity,
    SignInRefusedError,
    auth_configured,
    is_idle,
    read_role_mapping,
    read_secrets,
    require_area,
    role_from_claims,
)
from fusion.service.facade import RiskService

__all__ = ["audit_once", "render_role_switch", "require_page_area", "sign_in"]

logger = logging.getLogger(__name__)

ROLE_HELP = {
    "clinician": "individual patients: explorer, forecasts, guided demo",
    "researcher": "cohort pages only: performance and bias audit, small cells suppressed",
    "admin": "everything, plus the audit trail",
}


def _signed_out_screen(message: str) -> None:
    st.title("riskfusion")
    st.info(message)


def _oidc_identity(secrets: dict[str, object]) -> Identity:
    if not st.user.is_logged_in:
        _signed_out_screen("Sign in with your organisation's account to open riskfusion.")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()
    roles = secrets.get("riskfusion", {})
    mapping = read_role_mapping(roles.get("roles", {}) if isinstance(roles, dict) else {})
    try:
        return role_from_claims(st.user, mapping)
    except SignInRefusedError as err:
        logger.warning("OIDC sign-in refused: %s", err.reason)
        _signed_out_screen(
            "You are signed in with your organisation's account, but it has no role."
        )
        st.error(str(err))
        st.button("Sign out", on_click=st.logout)
        st.stop()


def _local_identity() -> Identity:
    role = get_local_role() or "admin"
    return Identity(user=f"local:{getpass.getuser()}", role=role, source="local")


def sign_in(settings: Settings, service: RiskService | None) -> Identity:
    """The signed-in identity of this session; renders the sign-in screen and stops otherwise.

    Applies the idle timeout (``settings.idle_minutes``) and writes ``sign_in`` / ``sign_out``
    events to the audit trail when the store is built (``service`` not None).
    """
    try:
        secrets = read_secrets(settings.secrets_file)
        oidc = auth_configured(secrets)
    except (AuthConfigError, ValueError) as err:
        st.error(str(err))
        st.stop()
    previous = get_identity()
    idle = seconds_since_activity()
    if previous is not None and idle is not None and is_idle(idle, settings.idle_minutes):
        if service is not None:
            service.record_event(previous, "sign_out", detail={"reason": "idle"})
        set_identity(None)
        if oidc:
            st.logout()
        _signed_out_screen(
            f"Signed out after {settings.idle_minutes} minutes without activity. "
            "Sign in again to continue."
        )
        touch_activity()
        st.button("Sign in again", type="primary")
        st.stop()
    touch_activity()
    identity = _oidc_identity(secrets) if oidc else _local_identity()
    if identity != previous:
        set_identity(identity)
        if service is not None:
            service.record_event(identity, "sign_in", detail={"source": identity.source})
    return identity


def render_role_switch(identity: Identity) -> None:
    """Sidebar: who is signed in; in local mode, the role to view as; a sign-out button."""
    with st.sidebar:
        st.markdown(f"**Signed in** as `{identity.user}` ({identity.role})")
        if identity.source == "local":
            role = st.selectbox(
                "View as (local single-user mode)",
                ROLES,
                index=ROLES.index(identity.role),
                key="signin.local_role",
                help="Without an identity provider the dashboard serves only this machine; "
                "configure [auth] in .streamlit/secrets.toml for real sign-in.",
            )
            st.caption(ROLE_HELP[str(role)])
            if role != identity.role:
                set_local_role(role)
                st.rerun()
        else:
            st.button("Sign out", on_click=st.logout, key="signin.sign_out")


def require_page_area(area: Area) -> Identity:
    """Guard at the top of a page: the identity if its role may open ``area``, else stop."""
    try:
        return require_area(get_identity(), area)
    except AccessDeniedError as err:
        st.error(str(err))
        st.stop()


def audit_once(
    service: RiskService,
    identity: Identity,
    action: str,
    *,
    patient_id: str | None = None,
    page: str,
) -> None:
    """Write ``action`` to the audit trail once per session, patient, page and model version.

    Streamlit re-runs a page on every widget change; one view of a patient is one event.
    """
    key = f"{action}|{page}|{patient_id}|{service.model_info().version}"
    if mark_audited(key):
        service.record_event(identity, action, patient_id=patient_id, detail={"page": page})
