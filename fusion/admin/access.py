"""Who may see what: roles, the areas each role may open, sign-in configuration checks.

Pure policy, shared by the dashboard (navigation and page guards) and the command line (``serve``
refuses a non-loopback address without sign-in). Reading ``st.secrets`` and ``st.login`` stays in
``dashboard``; this module gets plain mappings. Must not import streamlit.

Roles:

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
from urllib.parse import urlsplit

__all__ = [
    "AREAS",
    "ROLES",
    "AccessDeniedError",
    "Area",
    "AuthConfigError",
    "Identity",
    "Role",
    "SignInRefusedError",
    "auth_configured",
    "auth_problems",
    "can_open",
    "check_bind_address",
    "is_idle",
    "read_role_mapping",
    "read_secrets",
    "require_area",
    "role_for",
    "role_from_claims",
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


# What ``st.login()`` (the default provider) needs in ``[auth]``: Streamlit's own check runs only
# when the sign-in button is pressed, so riskfusion checks the same keys when it starts.
AUTH_SHARED_KEYS = ("redirect_uri", "cookie_secret")
AUTH_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
MIN_COOKIE_SECRET_CHARS = 32
CALLBACK_PATH = "/oauth2callback"
AUTH_HELP = {
    "redirect_uri": "the dashboard's address + /oauth2callback, "
    "e.g. https://riskfusion.hospital.org/oauth2callback",
    "cookie_secret": f"at least {MIN_COOKIE_SECRET_CHARS} random characters that sign the "
    'identity cookie: python -c "import secrets; print(secrets.token_urlsafe(48))"',
    "client_id": "the client id the identity provider issued for riskfusion",
    "client_secret": "the client secret the identity provider issued for riskfusion",
    "server_metadata_url": "the provider's discovery document, "
    "e.g. https://login.hospital.org/.well-known/openid-configuration",
}
INCOMPLETE_AUTH = (
    "Sign-in is configured incompletely: the [auth] section of the secrets file "
    "(RISKFUSION_SECRETS, default .streamlit/secrets.toml) has {problems}. riskfusion will not "
    "start with a half-configured sign-in. Complete [auth] (docs/deployment.md, 'Sign-in with "
    "an identity provider'), or remove the whole [auth] section for local single-user mode on "
    "127.0.0.1."
)
REFUSED_NO_EMAIL = (
    "Your identity provider sent no e-mail address, so riskfusion cannot give you a role. Ask "
    "your administrator to release the 'email' claim to riskfusion, then sign in again."
)
REFUSED_UNVERIFIED = (
    "Your identity provider reports the e-mail {email!r} as not verified (email_verified is "
    "false), so riskfusion gives it no role: roles are granted to verified addresses only. "
    "Verify the address with your identity provider, then sign in again."
)
REFUSED_UNKNOWN_VERIFICATION = (
    "Your identity provider did not say whether the e-mail {email!r} is verified (no "
    "email_verified claim), so riskfusion gives it no role: roles are granted to verified "
    "addresses only. Ask your administrator to configure the provider to send email_verified "
    "(Microsoft Entra ID: add the optional ID-token claim xms_edov)."
)
REFUSED_NO_ROLE = (
    "Your account {email!r} has no riskfusion role. Ask an admin to add your e-mail or domain "
    "to [riskfusion.roles] in .streamlit/secrets.toml."
)


class AccessDeniedError(PermissionError):
    """The signed-in role may not open this area."""


RefusalReason = Literal["no_email", "unverified", "unknown_verification", "no_role"]


class SignInRefusedError(AccessDeniedError):
    """The identity provider's claims give no role (unverified, missing or unmapped e-mail).

    Attributes
    ----------
    reason : {"no_email", "unverified", "unknown_verification", "no_role"}
        Why, for logs that must not carry the address.
    """

    def __init__(self, message: str, reason: RefusalReason) -> None:
        super().__init__(message)
        self.reason = reason


class AuthConfigError(ValueError):
    """The ``[auth]`` section exists but ``st.login`` could not work with it."""


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


def role_from_claims(claims: Mapping[str, object], mapping: Mapping[str, Role]) -> Identity:
    """The identity of an OIDC sign-in, from verified claims only.

    The role comes from the ``email`` claim only when the identity provider vouches for it
    (``email_verified`` is true): an unverified address could be anyone's, so a domain rule such
    as ``"@hospital.org" = "admin"`` must not apply to it. Microsoft Entra ID never sends
    ``email_verified`` for organisational accounts; its optional ``xms_edov`` claim (the tenant
    owns the e-mail's domain) counts instead when ``email_verified`` is absent.

    Parameters
    ----------
    claims : Mapping of str to object
        The ID token's claims (``st.user``).
    mapping : Mapping of str to Role
        The validated ``[riskfusion.roles]`` table (:func:`read_role_mapping`).

    Returns
    -------
    Identity
        The lower-cased, verified e-mail with its role; ``source`` is ``"oidc"``.

    Raises
    ------
    SignInRefusedError
        If the e-mail is missing, not verified (``email_verified`` false or absent) or has no role;
        the message says which and what to do.

    Examples
    --------
    >>> mapping = {"@h.org": "clinician"}
    >>> role_from_claims({"email": "Bo@h.org", "email_verified": True}, mapping).role
    'clinician'
    >>> role_from_claims({"email": "bo@h.org", "email_verified": False}, mapping)
    Traceback (most recent call last):
    ...
    fusion.admin.access.SignInRefusedError: Your identity provider reports the e-mail ...
    """
    raw = claims.get("email")
    email = raw.strip().lower() if isinstance(raw, str) else ""
    if "@" not in email:
        raise SignInRefusedError(REFUSED_NO_EMAIL, "no_email")
    verified = claims.get("email_verified")
    if verified is None:  # Microsoft Entra ID: "email domain owner verified", an optional claim
        verified = claims.get("xms_edov")
    if verified is None:
        raise SignInRefusedError(
            REFUSED_UNKNOWN_VERIFICATION.format(email=email), "unknown_verification"
        )
    # Some providers send the claim as the string "true"; anything else is not a verification.
    if verified is not True and not (isinstance(verified, str) and verified.lower() == "true"):
        raise SignInRefusedError(REFUSED_UNVERIFIED.format(email=email), "unverified")
    role = role_for(email, mapping)
    if role is None:
        raise SignInRefusedError(REFUSED_NO_ROLE.format(email=email), "no_role")
    return Identity(user=email, role=role, source="oidc")


def _text(section: Mapping[str, object], key: str) -> str:
    value = section.get(key)
    return value.strip() if isinstance(value, str) else ""


def _absolute_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def auth_problems(secrets: Mapping[str, object]) -> list[str]:
    """What the ``[auth]`` section lacks for ``st.login()``; empty when complete or absent.

    ``st.login()`` (the default provider) needs ``redirect_uri`` and ``cookie_secret`` in
    ``[auth]`` and ``client_id``, ``client_secret`` and ``server_metadata_url`` either in
    ``[auth]`` or in ``[auth.default]``. URLs must be absolute, the redirect URI must end in
    ``/oauth2callback`` (Streamlit's callback route), and the cookie secret, which signs the
    identity cookie, must have at least 32 characters.

    Examples
    --------
    >>> auth_problems({})
    []
    >>> auth_problems({"auth": {"redirect_uri": "https://x.org/oauth2callback"}})[0]
    'no cookie_secret (at least 32 random characters that sign the identity cookie: ...)'
    """
    section = secrets.get("auth")
    if section is None:
        return []
    if not isinstance(section, Mapping):
        return ["[auth] is not a table; write it as a [auth] section"]
    default = section.get("default")
    provider = default if isinstance(default, Mapping) else section
    problems: list[str] = []
    for key in (*AUTH_SHARED_KEYS, *AUTH_PROVIDER_KEYS):
        value = _text(section if key in AUTH_SHARED_KEYS else provider, key)
        if not value:
            problems.append(f"no {key} ({AUTH_HELP[key]})")
        elif key in ("redirect_uri", "server_metadata_url") and not _absolute_url(value):
            problems.append(f"{key} {value!r} is not an absolute http(s) URL ({AUTH_HELP[key]})")
        elif key == "redirect_uri" and not urlsplit(value).path.endswith(CALLBACK_PATH):
            problems.append(f"redirect_uri {value!r} does not end in {CALLBACK_PATH}")
        elif key == "cookie_secret" and len(value) < MIN_COOKIE_SECRET_CHARS:
            problems.append(
                f"a cookie_secret of {len(value)} characters ({AUTH_HELP['cookie_secret']})"
            )
    return problems


def auth_configured(secrets: Mapping[str, object]) -> bool:
    """Whether ``secrets`` configures OIDC sign-in for ``st.login`` completely.

    Returns
    -------
    bool
        False without an ``[auth]`` section (local single-user mode), True when it is complete.

    Raises
    ------
    AuthConfigError
        If an ``[auth]`` section exists but is incomplete (see :func:`auth_problems`): a
        half-configured sign-in is refused, never taken for either mode.

    Examples
    --------
    >>> auth_configured({})
    False
    >>> auth_configured({"auth": {"redirect_uri": "https://x.org/oauth2callback"}})
    Traceback (most recent call last):
    ...
    fusion.admin.access.AuthConfigError: Sign-in is configured incompletely: ...
    """
    problems = auth_problems(secrets)
    if problems:
        raise AuthConfigError(INCOMPLETE_AUTH.format(problems="; ".join(problems)))
    return "auth" in secrets


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
