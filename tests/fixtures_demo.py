"""Session fixtures: one tiny demo (synthetic cohort -> store -> nets -> fusion) built once.

Registered from ``tests/conftest.py`` through ``pytest_plugins``. The build uses the real
pipeline at test scale (1x32x32 scans, ~120 patients, 2 epochs), so every layer above the data
is tested on real artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion.service.facade import RiskService
from fusion.settings import Settings
from fusion.training.demo_build import BuildConfig, BuildSummary, build_demo
from models.train import TrainConfig

TINY_CONFIG = BuildConfig(
    n_patients=120,
    seed=3,
    image_size=32,
    folds=2,
    imaging=TrainConfig(epochs=2, batch_size=32, patience=2, random_state=3),
)


def tiny_settings(home: Path) -> Settings:
    return Settings.from_env({"RISKFUSION_HOME": str(home)})


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, BuildSummary]:
    home = tmp_path_factory.mktemp("tiny-demo")
    settings = tiny_settings(home)
    summary = build_demo(settings, TINY_CONFIG, report=lambda _line: None)
    return settings, summary


@pytest.fixture(scope="session")
def tiny_service(tiny_demo: tuple[Settings, BuildSummary]) -> Iterator[RiskService]:
    settings, _ = tiny_demo
    service = RiskService.from_settings(settings)
    yield service
    service.store.engine.dispose()
