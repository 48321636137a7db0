"""Who may see what: roles, the areas each role may open, sign-in configuration checks.

Pure policy, shared by the dashboard (navigation and page guards) and the command line (``serve``
refuses a non-loopback address without sign-in). Reading ``st.secrets`` and ``st.login`` stays in
``dashboard``; this module gets plain mappings. Must not import streamlit.

Roles (issue 7):

* ``clinician``: individual patients (explorer, forecasts, guided demo);
* ``researcher``: cohort pages only (performance, bias audit), aggregated with small cells
  suppressed; no patient-level identifiers or images;
* ``admin``: everything, plus the audit trail and model management.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "AREAS",
    "ROLES",
    "AccessDeniedError",
    "Area",
    "Identity",
    "Role",
    "auth_configured",
    "can_open",
    "check_bind_address",
    "is_idle",
    "read_role_mapping",
    "read_secrets",
    "require_area",
    "role_for",
]

Role = Literal["clinician", "researcher", "admin"]
Area = Literal["patients", "cohort", "admin"]
ROLES: tuple[Role, ...] = ("clinician", "researcher", "admin")
AREAS: tuple[Area, ...] = ("patients", "cohort", "admin")
ROLE_AREAS: Mapping[Role, frozenset[Area]] = {
    "clinician": frozenset({"patients"}),
    "researcher": frozenset({"cohort"}),
    "admin": frozenset({"patients", "cohort", "admin"}),
}
LOOPBACK_HOSTS = frozenset({"localhost"})


class AccessDeniedError(PermissionError):
    """The signed-in role may not open this area."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A signed-in user.

    Attributes
    ----------
    user : str
        E-mail from the identity provider, or the local user name.
    role : Role
        What the user may see.
    source : {"oidc", "local"}
        Signed in through the identity provider or the local single-user mode.
    """

    user: str
    role: Role
    source: Literal["oidc", "local"]


def can_open(role: Role, area: Area) -> bool:
    """Whether ``role`` may open pages of ``area``.

    Examples
    --------
    >>> can_open("researcher", "patients"), can_open("admin", "patients")
    (False, True)
    """
    return area in ROLE_AREAS[role]


def require_area(identity: Identity | None, area: Area) -> Identity:
    """The identity, if it may open ``area``.

    Raises
    ------
    AccessDeniedError
        If nobody is signed in or the role may not open the area.
    """
    if identity is None:
        raise AccessDeniedError("Sign in first: this page needs a signed-in user.")
    if not can_open(identity.role, area):
        allowed = [role for role in ROLES if can_open(role, area)]
        raise AccessDeniedError(
            f"The {identity.role} role may not open {area} pages; roles allowed: {allowed}. "
            "Ask an admin to change your role mapping."
        )
    return identity


def _as_role(value: object, where: str) -> Role:
    if value not in ROLES:
        raise ValueError(f"{where}: unknown role {value!r}; use one of {list(ROLES)}.")
    return value


def read_role_mapping(config: Mapping[str, object]) -> dict[str, Role]:
    """Validate the identity-to-role mapping of ``secrets.toml``.

    The ``[riskfusion.roles]`` table maps a lower-case e-mail address, or ``@domain`` for
    everyone of a domain, to a role::

        [riskfusion.roles]
        "ana@hospital.org" = "admin"
        "@hospital.org" = "clinician"

    Raises
    ------
    ValueError
        If a key is not an e-mail or ``@domain``, or a value is not a role.

    Examples
    --------
    >>> read_role_mapping({"Ana@H.org": "admin", "@h.org": "clinician"})
    {'ana@h.org': 'admin', '@h.org': 'clinician'}
    """
    mapping: dict[str, Role] = {}
    for key, value in config.items():
        name = str(key).strip().lower()
        if "@" not in name:
            raise ValueError(
                f"[riskfusion.roles] key {key!r} is neither an e-mail nor '@domain'; "
                'write e.g. "ana@hospital.org" = "admin" or "@hospital.org" = "clinician".'
            )
        mapping[name] = _as_role(value, f"[riskfusion.roles] {key!r}")
    return mapping


def role_for(email: str | None, mapping: Mapping[str, Role]) -> Role | None:
    """The role of a signed-in e-mail: the exact address wins over its ``@domain``.

    Examples
    --------
    >>> mapping = {"ana@h.org": "admin", "@h.org": "clinician"}
    >>> role_for("Ana@h.org", mapping), role_for("bo@h.org", mapping), role_for("x@y.org", mapping)
    ('admin', 'clinician', None)
    """
    if not email or "@" not in email:
        return None
    address = email.strip().lower()
    return mapping.get(address) or mapping.get("@" + address.rsplit("@", 1)[1])


def auth_configured(secrets: Mapping[str, object]) -> bool:
    """Whether ``secrets`` configures OIDC sign-in for ``st.login`` (an ``[auth]`` section).

    Examples
    --------
    >>> auth_configured({}), auth_configured({"auth": {"redirect_uri": "https://x/oauth2callback"}})
    (False, True)
    """
    section = secrets.get("auth")
    return isinstance(section, Mapping) and bool(section.get("redirect_uri"))


def read_secrets(path: Path) -> dict[str, object]:
    """``.streamlit/secrets.toml`` as a dict (empty if the file does not exist).

    Raises
    ------
    ValueError
        If the file is not valid TOML (names the file and the parser's message).
    """
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}. Fix the file or remove it.") from err


def _is_loopback(address: str) -> bool:
    if address in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_bind_address(address: str, *, sign_in: bool) -> None:
    """Refuse to serve patient data beyond this machine without sign-in.

    Raises
    ------
    ValueError
        If ``address`` is not a loopback address and ``sign_in`` is false.

    Examples
    --------
    >>> check_bind_address("127.0.0.1", sign_in=False)
    >>> check_bind_address("0.0.0.0", sign_in=True)
    """
    if not sign_in and not _is_loopback(address):
        raise ValueError(
            f"Refusing to listen on {address!r} without sign-in: local single-user mode only "
            "binds to 127.0.0.1. Configure an identity provider in .streamlit/secrets.toml "
            "([auth], see README 'Deployment') or use --address 127.0.0.1."
        )


def is_idle(idle_seconds: float, timeout_minutes: float) -> bool:
    """Whether a session idle for ``idle_seconds`` has passed its timeout.

    A timeout of 0 or less disables the idle sign-out.

    Examples
    --------
    >>> is_idle(15 * 60 + 1, 15), is_idle(60.0, 15), is_idle(1e9, 0)
    (True, False, False)
    """
    return timeout_minutes > 0 and idle_seconds > timeout_minutes * 60
