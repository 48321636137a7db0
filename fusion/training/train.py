"""Training on the stored cohort: imaging nets -> embeddings -> fusion -> risk, then activation.

Owns ``riskfusion train`` (the training half of the demo build too): each stage logs its counts
and elapsed time and can emit :class:`~fusion.training.stages.StageEvent` records (the
dashboard's Data page follows a job through them), scans and embeddings stream in chunks so
memory stays bounded, and every store write is one transaction. A new fusion version is
activated last, together with its audit event, so an interrupted run leaves the previous
model active and can simply be run again. Works on any stored cohort: the synthetic demo
(ground truth adds oracle AUROCs, interval coverage, map trust and the forecast proof) or an
imported one (``docs/import.md``). Must not import streamlit.

Leakage guard (cross-fitting): the training split is cut into ``folds`` parts; fold net ``k`` is
trained on every training patient outside part ``k``. A training patient's image score is the
logit of the net that never saw it; validation and test patients get the mean logit of all fold
nets. The fusion model therefore never trains on an over-confident image score.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from data.artifacts import file_digest
from data.store import AuditEntry, CohortStore
from fusion.evaluation.metrics import auroc_with_ci, youden_threshold
from fusion.explanations.imaging_trust import evaluate_test_imaging_maps
from fusion.explanations.map_trust import evaluate_test_maps
from fusion.features import FeatureSet, build_feature_matrix, image_scores
from fusion.forecast.build import FORECAST_SUFFIX, build_forecast
from fusion.service.cohort_views import precompute
from fusion.service.facade import RiskService
from fusion.training.capacity import CapacityChoice
from fusion.training.embeddings import SCAN_CHUNK, embed_every_scan, load_scans, logit_scaling
from fusion.training.fusion_stage import fit_fusion_stage
from fusion.training.logistic_baseline import (
    COMPARISON_METRIC,
    LOGISTIC_PART,
    BaselineComparison,
    register_logistic_baseline,
)
from fusion.training.serving_artifacts import (
    EXPLANATIONS_SUFFIX,
    INTERVAL_SUFFIX,
    build_interval,
    store_explanations,
)
from fusion.training.stages import TRAIN_STAGES, Stages
from fusion.training.training_data import (
    check_trainable,
    describe_training_data,
    forecast_skip_reason,
    oracle_aurocs,
    stratified_folds,
)
from fusion.training.versions import PLANNED_PARAM, completion_record
from models.nets import build_net, save_net
from models.train import TrainConfig, fit_cross_fitted

__all__ = [
    "BASELINES",
    "TrainingConfig",
    "TrainingSummary",
    "new_version",
    "train_cohort",
]

logger = logging.getLogger(__name__)

INTERVAL_PART = INTERVAL_SUFFIX.removeprefix("-")
EXPLANATIONS_PART = EXPLANATIONS_SUFFIX.removeprefix("-")
FORECAST_PART = FORECAST_SUFFIX.removeprefix("-")
# Single-modality (and fusion) feature sets, each fitted on the same split.
BASELINES: dict[str, tuple[str, ...]] = {
    "imaging": ("imaging",),
    "ehr": ("ehr",),
    "genomics": ("genomics",),
    "ehr_genomics": ("ehr", "genomics"),
}


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """How ``riskfusion train`` fits the imaging nets and the fusion model.

    Attributes
    ----------
    seed : int, default=0
        Seed of the folds and every model.
    folds : int, default=2
        Cross-fitting folds of the imaging net (>= 2).
    norm_groups : int, default=8
        GroupNorm groups of the imaging net (measured, ``docs/models.md``).
    imaging : TrainConfig
        Imaging training settings.
    forecast_models : int, default=12
        Bootstrap members of the treatment-forecast model (:mod:`fusion.forecast.hazard`).
    min_child_samples : int or None, default=None
        With ``capacity="fixed"``: LightGBM's smallest leaf; None adapts it to the training
        split (``n_train // 20`` within 5-20). Ignored with ``capacity="cv"``.
    capacity : {"cv", "fixed"}, default="cv"
        ``"cv"`` chooses LightGBM's leaves, smallest leaf and L2 penalty by stratified K-fold
        cross-validation inside train+validation (:mod:`fusion.training.capacity`);
        ``"fixed"`` keeps 15 leaves and ``min_child_samples`` (the settings measured on the
        2,000-patient demo).
    """

    seed: int = 0
    folds: int = 2
    norm_groups: int = 8
    imaging: TrainConfig = field(default_factory=TrainConfig)
    forecast_models: int = 12
    min_child_samples: int | None = None
    capacity: Literal["cv", "fixed"] = "cv"


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """Outcome of a training run: versions, test AUROCs with CIs and stage timings.

    ``oracle_auroc_test`` is empty for a cohort without ground truth; ``forecast`` holds the
    forecast metrics, or ``{"skipped": reason}``; ``training_data`` is what the registry
    records about the data the models were trained on.
    """

    fusion_version: str
    imaging_version: str
    n_patients: int
    test_auroc: dict[str, dict[str, float]]
    oracle_auroc_test: dict[str, float]
    threshold: float
    seconds: dict[str, float]
    forecast: dict[str, Any]
    training_data: dict[str, Any]
    modality_value: dict[str, Any] = field(default_factory=dict)
    comparison: BaselineComparison | None = None
    capacity: dict[str, Any] = field(default_factory=dict)


def new_version(kind: str) -> str:
    """A new, time-ordered model version name such as ``fusion-20261129-153000-123456``."""
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"


def train_cohort(
    store: CohortStore,
    artifacts_dir: Path,
    config: TrainingConfig,
    *,
    build: Mapping[str, Any] | None = None,
    stages: Stages | None = None,
    audit: AuditEntry | None = None,
) -> TrainingSummary:
    """Train imaging nets and the fusion model on the stored cohort, score it, activate it.

    Parameters
    ----------
    store : CohortStore
        The cohort (synthetic or imported) with ``train``/``val``/``test`` splits.
    artifacts_dir : Path
        Root of the scan files and of the model folders written here.
    config : TrainingConfig
        Seeds, folds and model settings.
    build : mapping, optional
        Build identity stored with every model (the demo's parameters; default
        ``{"source": <cohort sources>}``).
    stages : Stages, optional
        The caller's stage logger (the demo build has three stages before these six).
    audit : AuditEntry, optional
        Written with the activation, in its transaction (action ``train``; the new fusion
        version, the imaging version and the data fingerprint are filled in).

    Returns
    -------
    TrainingSummary

    Raises
    ------
    StoreNotBuiltError
        If the store holds no patients.
    CohortError
        If a split lacks a class or the scans differ in size (the message says how to fix it).
    """
    stages = stages or Stages(TRAIN_STAGES, logger.info)
    say = stages.report
    if config.folds < 2:
        raise ValueError(f"folds={config.folds}; cross-fitting needs at least 2 folds.")
    frame = store.load_patient_frame()
    image_rows = store.image_index()
    frame = frame.merge(image_rows[["patient_id", "path"]], on="patient_id", how="left")
    scans = frame.loc[frame["path"].notna(), ["patient_id", "split", "label", "path"]].merge(
        image_rows[["patient_id", "sha256", "height", "width"]], on="patient_id"
    )
    check_trainable(frame, scans)
    build = dict(build) if build is not None else {"source": store.cohort_sources()}
    catalog = store.feature_catalog()
    full = FeatureSet.from_catalog(catalog)
    training_data = describe_training_data(store, frame, scans, full)
    train = scans[scans["split"] == "train"].reset_index(drop=True)
    val = scans[scans["split"] == "val"].reset_index(drop=True)
    folds = stratified_folds(train["label"].to_numpy(), config.folds, config.seed)
    fold_of = dict(zip(train["patient_id"], folds, strict=True))

    imaging_version = new_version("imaging")
    model_dir = artifacts_dir / "models" / imaging_version
    with stages.stage("imaging", f"{config.folds} cross-fitted nets on {len(train)} scans"):
        val_scans = load_scans(artifacts_dir, val["path"])
        nets, oof = fit_cross_fitted(
            load_scans(artifacts_dir, train["path"]),
            train["label"].to_numpy(),
            folds,
            val_scans,
            val["label"].to_numpy(),
            config=config.imaging,
            net_factory=lambda k: build_net(
                norm_groups=config.norm_groups, random_state=config.imaging.random_state + k
            ),
        )
        scaling = logit_scaling(nets, val_scans)
        model_dir.mkdir(parents=True, exist_ok=True)
        net_files = {}
        for k, net in enumerate(nets):
            path = model_dir / f"fold_{k}.pt"
            net_files[path.name] = save_net(net, path)
        oof_auroc = auroc_with_ci(train["label"], oof, random_state=config.seed)
        map_trust = evaluate_test_imaging_maps(  # trust in the imaging maps (issue 16)
            nets,
            scaling,
            image_rows,
            scans.loc[scans["split"] == "test", "patient_id"].tolist(),
            artifacts_dir,
            auroc=(oof_auroc.auroc, oof_auroc.low, oof_auroc.high),
            random_state=config.seed,
        )
        manifest = model_dir / "manifest.json"
        manifest.write_text(json.dumps({"folds": config.folds, "nets": net_files}, indent=2))
        store.register_artifact(
            imaging_version,
            "imaging",
            str(model_dir.relative_to(artifacts_dir)),
            file_digest(manifest),
            metrics={
                "train_oof_auroc": oof_auroc.auroc,
                "train_oof_auroc_ci": [oof_auroc.low, oof_auroc.high],
                **({} if map_trust is None else {"map_trust": map_trust.to_metrics()}),
            },
            params={
                "build": build,
                "epochs": config.imaging.epochs,
                "nets": net_files,
                "logit_scaling": scaling,
                "training_data": training_data,
            },
        )

    with stages.stage("embeddings", f"{len(image_rows)} scans x {config.folds} nets"):
        embed_every_scan(
            store, imaging_version, nets, image_rows, fold_of, artifacts_dir, chunk_size=SCAN_CHUNK
        )

    scores = image_scores(store.load_embeddings(imaging_version), scaling)
    frame = frame.join(scores, on="patient_id")
    masks = {s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    y = frame["label"].to_numpy()
    n_train = int(masks["train"].sum())
    present = set(full.modalities)
    baselines = {
        name: modalities
        for name, modalities in BASELINES.items()
        if set(modalities) <= present  # e.g. no genomics file: no genomics baseline
    }

    with stages.stage("fusion", f"LightGBM on {len(full.names)} inputs + baselines"):
        stage = fit_fusion_stage(
            frame,
            full,
            baselines,
            masks,
            capacity=config.capacity,
            min_child_samples=config.min_child_samples,
            seed=config.seed,
            say=say,
        )
        fitted, test_auroc, comparison = stage.fitted, stage.test_auroc, stage.comparison
        truth = store.load_truth()
        oracle = oracle_aurocs(truth, frame)
        if truth is not None:
            test_auroc["oracle"] = auroc_with_ci(
                y[masks["test"]], frame.loc[masks["test"], "true_risk"], random_state=config.seed
            ).as_dict()

    fusion_version = new_version("fusion")
    skip = forecast_skip_reason(frame)
    # Every part this version is going to have; the registry keeps the plan, so an unfinished
    # version can say what it lacks (fusion.training.versions). Parts are registered inactive; the
    # whole
    # version is activated at the end, once each part is written and verified.
    planned = [
        *baselines,
        LOGISTIC_PART,
        INTERVAL_PART,
        EXPLANATIONS_PART,
        *([FORECAST_PART] if skip is None else []),
    ]
    with stages.stage("predictions", f"{len(frame)} patients"):
        model, features = fitted["fusion"]
        X = build_feature_matrix(frame, features)
        risk_all = model.predict_proba(X)[:, 1]
        threshold = youden_threshold(y[masks["val"]], risk_all[masks["val"]])
        fusion_dir = artifacts_dir / "models" / fusion_version
        fusion_path = fusion_dir / "fusion.txt"
        sha = model.save(fusion_path)
        has_masks = bool(image_rows["mask_path"].notna().any())
        metrics = {
            "test_auroc": test_auroc["fusion"]["auroc"],
            "test_auroc_ci": [test_auroc["fusion"]["low"], test_auroc["fusion"]["high"]],
            "baselines": {
                k: v["auroc"] for k, v in test_auroc.items() if k in baselines or k == LOGISTIC_PART
            },
            COMPARISON_METRIC: comparison.to_metrics(),
            "oracle_test_auroc": oracle,
            "threshold": threshold,
            "n_train": n_train,
            "n_val": int(masks["val"].sum()),
            "n_test": int(masks["test"].sum()),
            "modality_value": stage.value.to_metrics(),
        }
        if has_masks:  # How far the image maps can be trusted (true lesion masks).
            metrics["map_trust"] = evaluate_test_maps(
                model,
                X[masks["test"]],
                image_rows,
                artifacts_dir,
                nets,
                scaling,
                random_state=config.seed,
            ).to_metrics()
        store.register_artifact(
            fusion_version,
            "fusion",
            str(fusion_path.relative_to(artifacts_dir)),
            sha,
            metrics=metrics,
            params={
                "build": build,
                "features": list(features.names),
                **stage.capacity_params,
                "capacity": {"method": config.capacity} | params_of(stage.choice),
                "unused_modalities": list(stage.value.dropped),
                "training_data": training_data,
                PLANNED_PARAM: planned,
            },
            parent_version=imaging_version,
        )
        for name in baselines:
            baseline, baseline_features = fitted[name]
            path = fusion_dir / f"baseline_{name}.txt"
            store.register_artifact(
                f"{fusion_version}-{name}",
                f"baseline_{name}",
                str(path.relative_to(artifacts_dir)),
                baseline.save(path),
                metrics={"test_auroc": test_auroc[name]["auroc"]},
                params={"build": build, "modalities": list(BASELINES[name])},
                parent_version=fusion_version,
            )
            # Test-split risks of the baseline: the ablation table only queries them.
            X_test = build_feature_matrix(frame.loc[masks["test"]], baseline_features)
            store.write_predictions(
                f"{fusion_version}-{name}",
                X_test.index.tolist(),
                baseline.predict_proba(X_test)[:, 1],
            )
        register_logistic_baseline(
            store,
            artifacts_dir,
            fusion_version,
            stage.logistic,
            X.index[masks["test"]].tolist(),
            test_auroc=test_auroc[LOGISTIC_PART],
            build=build,
        )
        store.write_predictions(fusion_version, X.index.tolist(), risk_all)
        # Risk interval models, stored TreeSHAP per patient, similar-patient index.
        build_interval(
            store,
            fusion_version,
            model,
            X[masks["train"]],
            y[masks["train"]],
            X[masks["test"]],
            frame.loc[masks["test"], "true_risk"].to_numpy(np.float64),
            fusion_dir / "interval",
            artifacts_dir,
            X_val=X[masks["val"]],
            y_val=y[masks["val"]],
            true_risk_val=frame.loc[masks["val"], "true_risk"].to_numpy(np.float64),
            true_risk_train=frame.loc[masks["train"], "true_risk"].to_numpy(np.float64),
            y_test=y[masks["test"]],
            random_state=config.seed,
        )
        explained = store_explanations(
            store,
            fusion_version,
            model,
            X,
            frame["split"].to_numpy(),
            fusion_dir / "similar.npz",
            artifacts_dir,
            random_state=config.seed,
        )
        say(
            f"      stored TreeSHAP of {explained['n_stored']} patients; additivity max abs "
            f"error {explained['additivity_max_abs']:.1e}"
        )

    forecast: dict[str, Any]
    with stages.stage("forecast", "discrete-time hazard S-learner vs T-learner"):
        if skip is not None:
            forecast = {"skipped": skip}
            say(f"      skipped: {skip}")
        else:  # Treatment forecasts (fitted on train, proof on the test split).
            forecast = build_forecast(
                store,
                fusion_version,
                X,
                frame.loc[:, ["split", "treatment", "event_time", "event"]],
                truth,
                fusion_dir / "forecast",
                artifacts_dir,
                n_bootstrap=config.forecast_models,
                build=build,
                random_state=config.seed,
                anchor_risk=risk_all,  # served curves reach the fused risk (one risk)
            )
            for row in forecast["effects"]:
                spearman = row["spearman"] if row["spearman"] is not None else float("nan")
                say(
                    f"      {row['method']:<18} {row['contrast']:<17} PEHE {row['pehe']:.4f} "
                    f"Spearman {spearman:.3f}"
                )

    with stages.stage("activate", fusion_version):
        # Activate only once every part is written and verified, and record the version as
        # complete in the same transaction: pages never see a half-built version, and a kill
        # before this point leaves a version nobody can list or activate.
        completion = completion_record(
            store,
            artifacts_dir,
            fusion_version,
            planned,
            n_patients=len(frame),
            n_embeddings=len(image_rows) * config.folds,
        )
        store.complete_version(
            fusion_version,
            completion,
            activate=[fusion_version, *completion["parts"]],
            audit=None
            if audit is None
            else replace(
                audit,
                model_version=fusion_version,
                detail={
                    **audit.detail,
                    "imaging_version": imaging_version,
                    "fingerprint": training_data["fingerprint"],
                    "n_patients": training_data["n_patients"],
                },
            ),
        )

        # The cohort pages' views of the new version, stored once (fusion.service.cohort_views).
        precompute(RiskService(store, artifacts_dir).cohort)

    return TrainingSummary(
        fusion_version=fusion_version,
        imaging_version=imaging_version,
        n_patients=len(frame),
        test_auroc=test_auroc,
        oracle_auroc_test=oracle,
        threshold=threshold,
        seconds=stages.seconds,
        forecast=forecast,
        training_data=training_data,
        modality_value=stage.value.to_metrics(),
        comparison=comparison,
        capacity=params_of(stage.choice),
    )


def params_of(choice: CapacityChoice | None) -> dict[str, Any]:
    """The capacity choice as recorded in the registry (empty with ``capacity="fixed"``)."""
    return {} if choice is None else choice.to_params()
