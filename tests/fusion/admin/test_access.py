"""Access policy: role areas, role mapping, bind-address guard, idle timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.admin.access import (
    AccessDeniedError,
    AuthConfigError,
    Identity,
    SignInRefusedError,
    auth_configured,
    auth_problems,
    can_open,
    check_bind_address,
    is_idle,
    read_role_mapping,
    read_secrets,
    require_area,
    role_for,
    role_from_claims,
)


@pytest.mark.parametrize(
    ("role", "patients", "cohort", "admin"),
    [
        ("clinician", True, False, False),
        ("researcher", False, True, False),
        ("admin", True, True, True),
    ],
)
def test_each_role_opens_only_its_areas(role, patients, cohort, admin) -> None:
    assert [can_open(role, area) for area in ("patients", "cohort", "admin")] == [
        patients,
        cohort,
        admin,
    ]


def test_require_area_names_the_role_and_the_fix() -> None:
    researcher = Identity(user="r@h.org", role="researcher", source="oidc")
    with pytest.raises(AccessDeniedError, match=r"researcher role may not open patients"):
        require_area(researcher, "patients")
    with pytest.raises(AccessDeniedError, match="Sign in first"):
        require_area(None, "cohort")
    assert require_area(researcher, "cohort") is researcher


def test_role_mapping_prefers_the_address_over_the_domain() -> None:
    mapping = read_role_mapping({"Ana@H.org": "admin", "@h.org": "researcher"})
    assert role_for("ana@h.org", mapping) == "admin"
    assert role_for("bo@H.ORG", mapping) == "researcher"
    assert role_for("eve@other.org", mapping) is None
    assert role_for(None, mapping) is None


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"ana": "admin"}, "neither an e-mail nor '@domain'"),
        ({"ana@h.org": "superuser"}, "unknown role 'superuser'"),
    ],
)
def test_bad_role_mappings_say_what_to_write(config, match) -> None:
    with pytest.raises(ValueError, match=match):
        read_role_mapping(config)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_is_always_allowed(address: str) -> None:
    check_bind_address(address, sign_in=False)


@pytest.mark.parametrize("address", ["0.0.0.0", "10.0.0.5", "::", "dashboard.h.org"])
def test_other_addresses_need_sign_in(address: str) -> None:
    with pytest.raises(ValueError, match="without sign-in"):
        check_bind_address(address, sign_in=False)
    check_bind_address(address, sign_in=True)


COMPLETE_AUTH = {
    "redirect_uri": "https://riskfusion.h.org/oauth2callback",
    "cookie_secret": "x" * 32,
    "client_id": "riskfusion",
    "client_secret": "s3cret",
    "server_metadata_url": "https://idp.h.org/.well-known/openid-configuration",
}


def test_secrets_file_decides_whether_sign_in_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    assert read_secrets(path) == {}
    assert not auth_configured(read_secrets(path))
    path.write_text("".join(f'{key} = "{value}"\n' for key, value in COMPLETE_AUTH.items()))
    path.write_text("[auth]\n" + path.read_text())
    assert auth_configured(read_secrets(path))
    path.write_text("[auth\n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        read_secrets(path)


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"redirect_uri": "https://h.org/oauth2callback"}, ["cookie_secret", "client_id"]),
        (
            {},
            ["redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url"],
        ),
        ({**COMPLETE_AUTH, "client_secret": ""}, ["no client_secret"]),
        ({**COMPLETE_AUTH, "cookie_secret": "short"}, ["a cookie_secret of 5 characters"]),
        ({**COMPLETE_AUTH, "redirect_uri": "/oauth2callback"}, ["not an absolute http(s) URL"]),
        ({**COMPLETE_AUTH, "redirect_uri": "https://h.org/"}, ["does not end in /oauth2callback"]),
        ({**COMPLETE_AUTH, "server_metadata_url": "idp.h.org"}, ["server_metadata_url 'idp"]),
    ],
)
def test_incomplete_auth_is_refused_naming_what_is_missing(auth, named) -> None:
    secrets = {"auth": auth}
    with pytest.raises(AuthConfigError, match="configured incompletely") as err:
        auth_configured(secrets)
    for part in named:
        assert part in str(err.value)
    assert "remove the whole [auth] section" in str(err.value)
    assert auth_problems(secrets)


def test_provider_keys_may_sit_in_auth_default() -> None:
    shared = {key: COMPLETE_AUTH[key] for key in ("redirect_uri", "cookie_secret")}
    provider = {key: value for key, value in COMPLETE_AUTH.items() if key not in shared}
    assert auth_configured({"auth": {**shared, "default": provider}})
    # Streamlit reads [auth.default] instead of the top-level keys when it exists.
    with pytest.raises(AuthConfigError, match="no client_id"):
        auth_configured({"auth": {**COMPLETE_AUTH, "default": {"client_secret": "s"}}})


@pytest.mark.parametrize(
    ("claims", "reason", "match"),
    [
        ({"email": "eve@h.org", "email_verified": False}, "unverified", "not verified"),
        ({"email": "eve@h.org", "email_verified": "false"}, "unverified", "not verified"),
        ({"email": "eve@h.org", "email_verified": 1}, "unverified", "not verified"),
        ({"email": "eve@h.org"}, "unknown_verification", "no email_verified claim"),
        ({"email": "eve@h.org", "xms_edov": False}, "unverified", "not verified"),
        ({"email": "eve@h.org", "email_verified": False, "xms_edov": True}, "unverified", "not"),
        ({"email_verified": True}, "no_email", "sent no e-mail"),
        ({"email": "", "email_verified": True}, "no_email", "sent no e-mail"),
        ({"email": "eve@other.org", "email_verified": True}, "no_role", "has no riskfusion role"),
    ],
)
def test_roles_come_only_from_a_verified_email(claims, reason, match) -> None:
    mapping = read_role_mapping({"@h.org": "admin"})
    with pytest.raises(SignInRefusedError, match=match) as err:
        role_from_claims({"is_logged_in": True, **claims}, mapping)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "verified",
    [
        {"email_verified": True},
        {"email_verified": "true"},
        {"email_verified": "True"},
        {"xms_edov": True},  # Microsoft Entra ID: the tenant owns the domain
    ],
)
def test_a_verified_email_gets_its_role(verified) -> None:
    mapping = read_role_mapping({"ana@h.org": "admin", "@h.org": "clinician"})
    identity = role_from_claims({"email": " Ana@H.org ", **verified}, mapping)
    assert identity == Identity(user="ana@h.org", role="admin", source="oidc")


def test_idle_timeout() -> None:
    assert not is_idle(15 * 60, 15)
    assert is_idle(15 * 60 + 1, 15)
    assert not is_idle(1e12, 0)
