"""Runtime settings from the environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fusion.settings import Settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    home = tmp_path.resolve() / "artifacts"
    assert settings.artifacts_dir == home
    assert settings.artifacts_dir.is_absolute()
    assert settings.database_url == f"sqlite:///{home / 'riskfusion.db'}"
    assert settings.uses_default_sqlite
    assert (settings.demo_patients, settings.demo_seed) == (2000, 0)
    assert not home.exists()  # reading settings creates nothing


def test_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "RISKFUSION_HOME": str(tmp_path / "home"),
            "RISKFUSION_DATABASE_URL": "postgresql+psycopg://127.0.0.1/riskfusion",
            "RISKFUSION_DEMO_PATIENTS": "50",
            "RISKFUSION_DEMO_SEED": "7",
        }
    )
    assert settings.artifacts_dir == (tmp_path / "home").resolve()
    assert settings.database_url == "postgresql+psycopg://127.0.0.1/riskfusion"
    assert not settings.uses_default_sqlite
    assert (settings.demo_patients, settings.demo_seed) == (50, 7)


def test_home_override_moves_the_default_database(tmp_path: Path) -> None:
    settings = Settings.from_env({"RISKFUSION_HOME": str(tmp_path), "RISKFUSION_DATABASE_URL": ""})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'riskfusion.db'}"
    assert settings.uses_default_sqlite


def test_home_expands_the_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.from_env({"RISKFUSION_HOME": "~/rf"})
    assert settings.artifacts_dir == tmp_path.resolve() / "rf"


def test_reads_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    monkeypatch.setenv("RISKFUSION_DEMO_PATIENTS", "123")
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    monkeypatch.delenv("RISKFUSION_DEMO_SEED", raising=False)
    settings = Settings.from_env()
    assert settings.artifacts_dir == tmp_path.resolve()
    assert settings.demo_patients == 123
    assert settings.demo_seed == 0


@pytest.mark.parametrize("name", ["RISKFUSION_DEMO_PATIENTS", "RISKFUSION_DEMO_SEED"])
@pytest.mark.parametrize("raw", ["abc", "1.5"])
def test_bad_int_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}='{raw}' is not an integer"):
        Settings.from_env({name: raw})


def test_empty_int_falls_back_to_the_default() -> None:
    settings = Settings.from_env({"RISKFUSION_DEMO_PATIENTS": "", "RISKFUSION_DEMO_SEED": ""})
    assert (settings.demo_patients, settings.demo_seed) == (2000, 0)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.demo_seed = 1  # type: ignore[misc]
