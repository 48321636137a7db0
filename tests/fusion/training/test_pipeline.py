from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from data.store import CohortStore, make_engine
from fusion.features import image_scores
from fusion.settings import Settings
from fusion.training.demo_build import build_demo
from fusion.training.train import BASELINES
from tests.fixtures_demo import TINY_CONFIG


def _store(settings: Settings) -> CohortStore:
    return CohortStore(make_engine(settings.database_url))


def test_build_writes_every_stage(tiny_demo) -> None:
    settings, summary = tiny_demo
    store = _store(settings)
    n = TINY_CONFIG.n_patients
    assert store.count_patients() == n
    assert {store.count_patients(s) for s in ("train", "val", "test")} != {0}
    fusion = store.active_model("fusion")
    imaging = store.active_model("imaging")
    assert fusion.version == summary.fusion_version
    assert fusion.parent_version == imaging.version
    assert store.count_predictions(fusion.version) == n
    embeddings = store.load_embeddings(imaging.version)
    assert len(embeddings) == n * TINY_CONFIG.folds
    assert embeddings["vector"].map(len).nunique() == 1
    assert set(fusion.metrics["baselines"]) == {*BASELINES, "logistic"}
    assert set(summary.test_auroc) == {"fusion", *BASELINES, "logistic", "oracle"}
    for kind in BASELINES:
        assert store.active_model(f"baseline_{kind}").parent_version == fusion.version
    assert store.active_model("baseline_logistic").parent_version == fusion.version
    written = json.loads((settings.artifacts_dir / "build_summary.json").read_text())
    assert written["fusion_version"] == summary.fusion_version
    assert 0.0 <= summary.threshold <= 1.0


def test_cross_fitting_scores_each_training_patient_with_an_unseen_net(tiny_demo) -> None:
    settings, _ = tiny_demo
    store = _store(settings)
    embeddings = store.load_embeddings(store.active_model("imaging").version)
    splits = store.load_patient_frame().set_index("patient_id")["split"]
    embeddings = embeddings.join(splits, on="patient_id")
    unseen = embeddings[~embeddings["in_training"]].groupby("patient_id")["fold"].count()
    train_ids = splits[splits == "train"].index
    other_ids = splits[splits != "train"].index
    # Training patients: exactly one fold net (their own fold's) never saw them.
    assert (unseen.loc[train_ids] == 1).all()
    # Validation/test patients: no net saw them.
    assert (unseen.loc[other_ids] == TINY_CONFIG.folds).all()
    assert not embeddings.loc[embeddings["split"] != "train", "in_training"].any()
    # The unseen row of a training patient is the out-of-fold logit of cross-fitting (the net
    # that held the patient out), not the logit of a net that trained on it.
    imaging = store.active_model("imaging")
    labels = store.load_patient_frame().set_index("patient_id")["label"]
    oof = embeddings[(embeddings["split"] == "train") & ~embeddings["in_training"]]
    auroc = roc_auc_score(labels.loc[oof["patient_id"]], oof["logit"])
    assert auroc == pytest.approx(imaging.metrics["train_oof_auroc"], abs=1e-9)


def test_image_scores_ignore_rows_of_nets_that_trained_on_the_patient() -> None:
    rows = pd.DataFrame(
        {
            "patient_id": ["A", "A", "B", "B"],
            "fold": [0, 1, 0, 1],
            "in_training": [True, False, False, False],
            "logit": [100.0, 1.0, 2.0, 4.0],
        }
    )
    scores = image_scores(rows, {"0": [0.0, 1.0], "1": [0.0, 1.0]})
    assert scores["A"] == 1.0
    assert scores["B"] == 3.0
    # Each net's logits are standardised before they are averaged.
    scaled = image_scores(rows, {"0": [2.0, 1.0], "1": [0.0, 2.0]})
    assert scaled["A"] == 0.5
    assert scaled["B"] == pytest.approx((0.0 + 2.0) / 2)


def test_build_refuses_a_store_that_already_holds_patients(tiny_demo) -> None:
    settings, _ = tiny_demo
    with pytest.raises(ValueError, match="--rebuild"):
        build_demo(settings, TINY_CONFIG)


def test_build_rejects_a_single_fold(tmp_path) -> None:
    settings = Settings.from_env({"RISKFUSION_HOME": str(tmp_path)})
    from dataclasses import replace

    with pytest.raises(ValueError, match="at least 2 folds"):
        build_demo(settings, replace(TINY_CONFIG, folds=1))


def test_predictions_are_probabilities_and_rank_the_outcome(tiny_demo) -> None:
    settings, _ = tiny_demo
    store = _store(settings)
    version = store.active_model("fusion").version
    frame = pd.concat(store.iter_prediction_rows(version, chunk_size=37))
    assert frame["patient_id"].is_unique
    assert len(frame) == TINY_CONFIG.n_patients
    assert frame["risk"].between(0, 1).all()
    # On the training split the fused risk must track the labels it was fit on.
    train = frame[frame["split"] == "train"]
    events = train.loc[train["label"] == 1, "risk"].mean()
    non_events = train.loc[train["label"] == 0, "risk"].mean()
    assert events > non_events
    assert np.isfinite(frame["true_risk"]).all()


@pytest.mark.postgres
def test_the_whole_build_runs_on_postgresql(postgres_database, tmp_path) -> None:
    from dataclasses import replace

    from fusion.service.facade import RiskService

    url = postgres_database()
    settings = Settings.from_env({"RISKFUSION_HOME": str(tmp_path), "RISKFUSION_DATABASE_URL": url})
    summary = build_demo(settings, replace(TINY_CONFIG, n_patients=60), report=lambda _: None)
    service = RiskService.from_settings(settings)
    assert service.store.count_predictions(summary.fusion_version) == 60
    pid = str(service.search_patients(split="test", limit=1)["patient_id"].iloc[0])
    stored = service.store.get_prediction(pid, summary.fusion_version)
    assert service.predict(pid).risk == pytest.approx(stored, abs=1e-9)
    service.store.engine.dispose()
