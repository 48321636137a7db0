"""Access policy: role areas, role mapping, bind-address guard, idle timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.access import (
    AccessDeniedError,
    Identity,
    auth_configured,
    can_open,
    check_bind_address,
    is_idle,
    read_role_mapping,
    read_secrets,
    require_area,
    role_for,
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


def test_secrets_file_decides_whether_sign_in_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    assert read_secrets(path) == {}
    path.write_text('[auth]\nredirect_uri = "https://h.org/oauth2callback"\n')
    assert auth_configured(read_secrets(path))
    path.write_text("[auth]\n")
    assert not auth_configured(read_secrets(path))
    path.write_text("[auth\n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        read_secrets(path)


def test_idle_timeout() -> None:
    assert not is_idle(15 * 60, 15)
    assert is_idle(15 * 60 + 1, 15)
    assert not is_idle(1e12, 0)
