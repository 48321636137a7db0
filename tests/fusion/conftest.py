from __future__ import annotations

import pytest


@pytest.fixture
def home_env(tiny_demo, monkeypatch):
    """The CLI's environment pointed at the tiny demo build (default SQLite inside it)."""
    settings, _ = tiny_demo
    monkeypatch.setenv("RISKFUSION_HOME", str(settings.artifacts_dir))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    return settings
