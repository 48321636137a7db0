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


def late_patients_copy(source: Path, target: Path) -> tuple[Path, list[str]]:
    """A copy of a built demo in which some patients arrived after training, not yet scored.

    A third of the test patients and every fifth training patient lose their risks and SHAP
    values, and the version's newest similar-patient index is one built without them (as at
    training time, before they were imported). ``riskfusion score`` then scores them under the
    same active version. Returns the copy's home and the late patients' ids.
    """
    import shutil

    import numpy as np
    from sqlalchemy import delete, select

    from data.store import CohortStore, make_engine
    from data.store.schema import Patient, Prediction, StoredExplanation
    from fusion.explanations.similar import SimilarityIndex, load_index, save_index

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.db-shm"))
    store = CohortStore(make_engine(f"sqlite:///{target / 'riskfusion.db'}"))
    version = store.active_model("fusion").version
    with store.engine.begin() as conn:
        splits = dict(conn.execute(select(Patient.patient_id, Patient.split)).all())
        late = sorted(pid for pid, split in splits.items() if split == "test")[::3]
        late += sorted(pid for pid, split in splits.items() if split == "train")[::5]
        for table in (Prediction, StoredExplanation):
            conn.execute(
                delete(table).where(table.model_version == version, table.patient_id.in_(late))
            )
    record = store.artifact_of(version, "explanations")
    assert record is not None
    index = load_index(target / record.artifact_path, expected_sha256=record.sha256)
    keep = ~np.isin(index.patient_ids, late)
    path = (target / record.artifact_path).parent / "similar-before-import.npz"
    sha = save_index(SimilarityIndex(index.patient_ids[keep], index.vectors[keep]), path)
    store.register_artifact(
        f"{version}-explanations-before-import",
        "explanations",
        str(path.relative_to(target)),
        sha,
        metrics={**record.metrics, "n_stored": store.count_explanations(version)},
        params=dict(record.params),
        parent_version=version,
    )
    store.engine.dispose()
    return target, sorted(late)


FEW_INTERVAL_PATIENTS = 6


@pytest.fixture(scope="session")
def few_interval_service(
    tiny_demo: tuple[Settings, BuildSummary], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RiskService]:
    """A copy of the tiny demo whose newest interval was calibrated on too few patients.

    The calibration of 6 patients (below the 9 a 90% interval needs) is registered for the
    active version after the built one, so the service serves no interval and says why.
    """
    import shutil

    import pandas as pd

    from data.store import CohortStore, make_engine
    from fusion.interval_calibration import FORMAT_VERSION, save_calibration
    from fusion.uncertainty import fit_interval_calibration

    settings, _ = tiny_demo
    home = tmp_path_factory.mktemp("few-interval") / "home"
    shutil.copytree(settings.artifacts_dir, home, ignore=shutil.ignore_patterns("*.db-shm"))
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    built = RiskService(store, home)
    ids = built.search_patients(split="val", limit=FEW_INTERVAL_PATIENTS)["patient_id"]
    cases = [built.load_patient(pid) for pid in ids]
    X = pd.concat([case.X for case in cases])
    labels = [int(case.record.label or 0) for case in cases]
    columns = built.models.interval_calibration.modality_columns
    calibration = fit_interval_calibration(built.model, X, labels, None, modality_columns=columns)
    path = home / "models" / built.version / "interval-few" / "calibration.json"
    store.register_artifact(
        f"{built.version}-interval-few",
        "interval",
        str(path.relative_to(home)),
        save_calibration(calibration, path),
        metrics={"available": False, "reason": calibration.reason},
        params={"target": calibration.target, "format_version": FORMAT_VERSION},
        parent_version=built.version,
    )
    service = RiskService.from_settings(tiny_settings(home))
    yield service
    service.store.engine.dispose()
    store.engine.dispose()
