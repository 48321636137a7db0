"""`riskfusion train` / `score` on an imported cohort, and retraining safety.

The cohort is the shipped example folder's writer at test size; the models are trained for one
epoch with few bootstrap members, so the tests check the wiring and the guarantees (activation
last, audit in the activation's transaction, stale predictions rescored, a killed retrain leaves
the previous model active), not model quality.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.cohort_import import import_cohort
from data.errors import ArtifactIntegrityError, CohortError, IncompleteVersionError
from data.store import AuditEntry, CohortStore, make_engine
from data.synthetic.example_cohort import write_example_cohort
from fusion.cli import main
from fusion.service.facade import RiskService
from fusion.training import train
from fusion.training.score import score_cohort
from fusion.training.stages import TRAIN_STAGES, StageEvent, Stages
from fusion.training.train import TrainingConfig, train_cohort
from fusion.training.training_data import describe_training_data
from fusion.training.versions import activate_version
from models.scans import read_scan
from models.train import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

ROOT = Path(__file__).resolve().parents[3]
N_PATIENTS = 160
FAST = TrainingConfig(
    seed=1,
    imaging=TrainConfig(epochs=1, batch_size=32, patience=1, random_state=1),
    forecast_models=2,
)
ADMIN = AuditEntry(actor="test:admin", role="admin", action="train", detail={"command": "test"})


def _store(home: Path) -> CohortStore:
    home.mkdir(parents=True, exist_ok=True)
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    store.create_schema()
    return store


def _import(folder: Path, home: Path) -> CohortStore:
    store = _store(home)
    import_cohort(folder, store, artifacts_dir=home, reader=read_scan, progress=False)
    return store


@pytest.fixture(scope="module")
def cohort_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train-cohort") / "cohort"
    write_example_cohort(folder, n_patients=N_PATIENTS)
    return folder


@pytest.fixture(scope="module")
def trained(cohort_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """An imported example cohort trained once (home, summary, stage events)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    store = _import(cohort_folder, home)
    events: list[StageEvent] = []
    stages = Stages(TRAIN_STAGES, lambda _line: None, events.append)
    summary = train_cohort(store, home, FAST, stages=stages, audit=ADMIN)
    store.engine.dispose()
    return home, summary, events


def test_train_on_an_imported_cohort_scores_explains_and_activates_it(trained) -> None:
    home, summary, _ = trained
    store = _store(home)
    fusion = store.active_model("fusion")
    assert fusion.version == summary.fusion_version
    assert store.active_model("imaging").version == summary.imaging_version
    assert fusion.parent_version == summary.imaging_version
    assert store.count_predictions(fusion.version) == N_PATIENTS
    assert store.count_explanations(fusion.version) == N_PATIENTS
    # No ground truth in an imported cohort: no oracle, no map trust; the forecast is fitted.
    assert summary.oracle_auroc_test == {}
    assert "oracle" not in summary.test_auroc
    assert "map_trust" not in fusion.metrics
    assert "effects" in summary.forecast
    service = RiskService(store, home)  # every artifact loads and matches its SHA-256
    patient = store.image_index()["patient_id"].iloc[0]
    assert 0.0 <= service.predict(patient).risk <= 1.0


def test_the_registry_records_which_data_each_model_was_trained_on(trained) -> None:
    home, summary, _ = trained
    store = _store(home)
    data = store.active_model("fusion").params["training_data"]
    assert data == store.active_model("imaging").params["training_data"]
    assert data["sources"] == ["import:example"]
    assert data["n_patients"] == N_PATIENTS
    assert data["n_scans"] == N_PATIENTS - 2  # the example's last two patients have no scan
    assert data["import_batches"] == [b["batch_id"] for b in store.import_batches()]
    assert len(data["fingerprint"]) == 64
    assert summary.training_data == data


def test_fingerprint_changes_with_the_data_and_not_otherwise(trained) -> None:
    home, _, _ = trained
    store = _store(home)
    frame = store.load_patient_frame()
    scans = frame[["patient_id"]].merge(store.image_index(), on="patient_id")
    features = RiskService(store, home).features
    same = describe_training_data(store, frame, scans, features)["fingerprint"]
    assert same == store.active_model("fusion").params["training_data"]["fingerprint"]
    changed = frame.copy()
    changed.loc[3, "bmi"] = float(changed.loc[3, "bmi"]) + 1.0
    other = describe_training_data(store, changed, scans, features)["fingerprint"]
    assert other != same


def test_training_is_audited_in_the_activation_transaction(trained) -> None:
    home, summary, events = trained
    store = _store(home)
    [event] = store.audit_events(action="train").to_dict("records")
    assert event["actor"] == "test:admin"
    assert event["model_version"] == summary.fusion_version
    detail = event["detail"] if isinstance(event["detail"], dict) else json.loads(event["detail"])
    assert detail["imaging_version"] == summary.imaging_version
    assert detail["fingerprint"] == summary.training_data["fingerprint"]
    # Every stage announced its start and end, in order, with one total.
    done = [e.stage for e in events if e.state == "done"]
    assert done == ["imaging", "embeddings", "fusion", "predictions", "forecast", "activate"]
    assert {e.total for e in events} == {TRAIN_STAGES}


def test_a_failed_retrain_leaves_the_previous_model_active(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, summary, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    store = _store(copy)

    def broken(*_args: object, **_kwargs: object) -> dict[str, object]:
        raise RuntimeError("injected failure in the forecast stage")

    monkeypatch.setattr(train, "build_forecast", broken)
    with pytest.raises(RuntimeError, match="injected"):
        train_cohort(store, copy, FAST, audit=ADMIN)
    assert store.active_model("fusion").version == summary.fusion_version
    assert store.active_model("imaging").version == summary.imaging_version
    assert len(store.audit_events(action="train")) == 1
    service = RiskService(store, copy)  # the previous version still loads
    # The unfinished version: registered, but no part of it active, not listed, not activatable.
    [half] = [r.version for r in store.list_models("fusion") if r.version != summary.fusion_version]
    assert not [r.version for r in store.list_models() if r.is_active and half in r.version]
    assert service.list_models()["version"].tolist() == [summary.fusion_version]
    with pytest.raises(IncompleteVersionError, match="parts never written: forecast"):
        activate_version(store, copy, half)
    monkeypatch.setenv("RISKFUSION_HOME", str(copy))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    assert main(["activate", half]) == 2
    assert store.active_model("fusion").version == summary.fusion_version
    monkeypatch.undo()
    again = train_cohort(store, copy, FAST, audit=ADMIN)  # the job can simply be re-run
    assert store.active_model("fusion").version == again.fusion_version
    listed = RiskService(store, copy).list_models()["version"].tolist()
    assert listed == [again.fusion_version, summary.fusion_version]


def test_score_redoes_only_the_patients_whose_inputs_changed(
    trained, cohort_folder: Path, tmp_path: Path
) -> None:
    home, summary, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    store = _store(copy)
    version = summary.fusion_version
    assert store.get_prediction("P0000006", version) is not None
    edited = tmp_path / "cohort"
    shutil.copytree(cohort_folder, edited)
    patients = pd.read_csv(edited / "patients.csv", dtype=str, keep_default_na=False)
    patients.loc[patients["patient_id"] == "P0000006", "bmi"] = "45.0"
    patients.to_csv(edited / "patients.csv", index=False)
    import_cohort(edited, store, artifacts_dir=copy, reader=read_scan, progress=False)
    # The stale prediction and explanation are gone with the import; nothing else is.
    assert store.get_prediction("P0000006", version) is None
    assert store.count_predictions(version) == N_PATIENTS - 1
    assert store.count_explanations(version) == N_PATIENTS - 1
    result = score_cohort(store, copy, audit=ADMIN)
    assert (result["scored"], result["embedded"]) == (1, 0)
    after = store.get_prediction("P0000006", version)
    assert after is not None  # rescored (the value may equal `before`: bmi may be unused)
    assert store.count_explanations(version) == N_PATIENTS
    assert score_cohort(store, copy)["scored"] == 0
    service = RiskService(store, copy)
    stored = service.explain("P0000006")
    live = service.explain_live("P0000006")
    assert stored.source == "store"
    assert stored.risk == pytest.approx(after, abs=1e-12)
    pairs = stored.contributions.merge(live.contributions, on="feature")
    np.testing.assert_allclose(pairs["shap_x"], pairs["shap_y"], atol=1e-9)


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_split_without_both_classes_is_refused_with_the_fix(
    cohort_folder: Path, tmp_path: Path, split: str
) -> None:
    folder = tmp_path / "cohort"
    shutil.copytree(cohort_folder, folder)
    patients = pd.read_csv(folder / "patients.csv", dtype=str, keep_default_na=False)
    outcomes = pd.read_csv(folder / "outcomes.csv", dtype=str, keep_default_na=False)
    positives = set(outcomes.loc[outcomes["label"] == "1", "patient_id"])
    moved = patients["patient_id"].isin(positives) & (patients["split"] == split)
    patients.loc[moved, "split"] = "train"
    patients.to_csv(folder / "patients.csv", index=False)
    store = _import(folder, tmp_path / "home")
    with pytest.raises(CohortError, match=f"The {split} split holds .* with label 1; .*split"):
        train_cohort(store, tmp_path / "home", FAST)
    assert store.list_models() == []


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_killed_retrain_leaves_the_previous_model_active_and_can_rerun(
    trained, tmp_path: Path
) -> None:
    home, summary, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    env = {**os.environ, "RISKFUSION_HOME": str(copy)}
    env.pop("RISKFUSION_DATABASE_URL", None)
    events = tmp_path / "events.jsonl"
    command = [sys.executable, "-m", "fusion.cli", "train", "--epochs", "1", "--events"]
    process = subprocess.Popen(
        [*command, str(events)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill once predictions are being written
        lines = events.read_text().splitlines() if events.exists() else []
        if any(json.loads(line)["stage"] == "predictions" for line in lines):
            break
        if process.poll() is not None:
            pytest.fail("the training process ended before it could be killed")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    store = _store(copy)
    assert store.active_model("fusion").version == summary.fusion_version
    assert store.active_model("imaging").version == summary.imaging_version
    assert store.count_predictions(summary.fusion_version) == N_PATIENTS
    assert RiskService(store, copy).list_models()["version"].tolist() == [summary.fusion_version]
    for record in store.list_models():  # no part of the killed version is active
        assert record.is_active == (
            record.version in {summary.fusion_version, summary.imaging_version}
            or record.version.startswith(f"{summary.fusion_version}-")
        )
    again = train_cohort(store, copy, FAST, audit=ADMIN)  # the interrupted job re-runs
    assert store.active_model("fusion").version == again.fusion_version
    RiskService(store, copy)


def test_a_previous_version_can_be_activated_again_with_its_imaging_nets(
    trained, tmp_path: Path
) -> None:
    home, summary, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    store = _store(copy)
    newer = train_cohort(store, copy, FAST)
    assert store.active_model("fusion").version == newer.fusion_version
    entry = AuditEntry(actor="test:admin", role="admin", action="activate_model")
    activate_version(store, copy, summary.fusion_version, audit=entry)
    assert store.active_model("fusion").version == summary.fusion_version
    assert store.active_model("imaging").version == summary.imaging_version
    assert store.active_model("baseline_ehr").version == f"{summary.fusion_version}-ehr"
    events = store.audit_events(action="activate_model")
    assert events["model_version"].tolist() == [summary.fusion_version]
    RiskService(store, copy)
    with pytest.raises(KeyError, match="not a registered fusion version"):
        activate_version(store, copy, summary.imaging_version)
    (copy / store.active_model("fusion").artifact_path).write_text("tampered")
    with pytest.raises(ArtifactIntegrityError, match="registered SHA-256"):
        activate_version(store, copy, summary.fusion_version)
    assert store.active_model("fusion").version == summary.fusion_version


def test_a_missing_scan_file_stops_training_with_its_name_and_the_fix(
    trained, tmp_path: Path
) -> None:
    home, summary, _ = trained
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    store = _store(copy)
    missing = copy / store.image_index()["path"].iloc[0]
    missing.unlink()
    with pytest.raises(CohortError, match=f"{missing} is missing.*riskfusion import"):
        train_cohort(store, copy, FAST)
    assert store.active_model("fusion").version == summary.fusion_version
