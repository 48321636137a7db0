"""``riskfusion serve`` / ``demo`` refuse a half-configured sign-in before anything binds."""

from __future__ import annotations

import subprocess

import pytest

from fusion.cli import main

HALF_AUTH = '[auth]\nredirect_uri = "https://riskfusion.h.org/oauth2callback"\n'


@pytest.fixture
def no_server(monkeypatch):
    """Fail instead of starting Streamlit, whichever way the CLI would start it."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the dashboard was started")

    monkeypatch.setattr(subprocess, "call", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
def test_serve_refuses_an_incomplete_auth_section_naming_what_is_missing(
    home_env, tmp_path, monkeypatch, caplog, no_server, address
) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(HALF_AUTH)
    monkeypatch.setenv("RISKFUSION_SECRETS", str(secrets))
    assert main(["serve", "--address", address]) == 2
    assert "configured incompletely" in caplog.text
    for key in ("cookie_secret", "client_id", "client_secret", "server_metadata_url"):
        assert f"no {key}" in caplog.text


def test_demo_refuses_an_incomplete_auth_section_before_building(
    tmp_path, monkeypatch, caplog, no_server
) -> None:
    home = tmp_path / "home"
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\ncookie_secret = "short"\n')
    monkeypatch.setenv("RISKFUSION_HOME", str(home))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    monkeypatch.setenv("RISKFUSION_SECRETS", str(secrets))
    small = ["--patients", "40", "--image-size", "32", "--epochs", "1"]
    assert main(["demo", "--address", "0.0.0.0", *small]) == 2
    assert "a cookie_secret of 5 characters" in caplog.text
    assert not (home / "riskfusion.db").exists()  # refused before a minute of building
