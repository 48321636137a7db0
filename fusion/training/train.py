"""Training and scoring on the stored cohort: imaging nets -> embeddings -> fusion -> risk.

Owns ``riskfusion train`` (the training half of the demo build too) and ``riskfusion score``:
each stage logs its counts and elapsed time and can emit :class:`StageEvent` records (the
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

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm.auto import tqdm

from data.errors import CohortError, IncompleteVersionError
from data.store import COMPLETION_PARAM, AuditEntry, CohortStore, EmbeddingBatch, ModelRecord
from data.synthetic import truth_aurocs
from data.vocabulary import TREATMENTS
from fusion.evaluation.metrics import auroc_with_ci, youden_threshold
from fusion.explain import shap_values
from fusion.explanations.map_trust import evaluate_test_maps
from fusion.features import FeatureSet, build_feature_matrix, image_scores
from fusion.forecast.hazard import FORECAST_SUFFIX, build_forecast
from fusion.model import FusionClassifier, file_sha256
from fusion.service.facade import RiskService
from fusion.training.serving_artifacts import (
    EXPLANATIONS_SUFFIX,
    INTERVAL_SUFFIX,
    build_interval,
    store_explanations,
)
from fusion.training.versions import (
    PLANNED_PARAM,
    artifact_problems,
    require_complete,
    version_parts,
)
from models.embed import embed
from models.nets import RiskCNN, build_net, save_net
from models.train import TrainConfig, fit_cross_fitted
from models.transforms import normalize_scan

__all__ = [
    "BASELINES",
    "StageEvent",
    "Stages",
    "TrainingConfig",
    "TrainingSummary",
    "activate_version",
    "append_event",
    "describe_training_data",
    "load_scans",
    "logit_scaling",
    "new_version",
    "score_cohort",
    "train_cohort",
]

logger = logging.getLogger(__name__)

SCAN_CHUNK = 256
SCORE_CHUNK = 5_000
SCORE_STAGES = 1
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
# Fewest patients of each class each split must hold for `riskfusion train`.
MIN_PER_CLASS = {"train": 4, "val": 1, "test": 1}
TRAIN_STAGES = 6
Progress = Callable[[str], None]
EventSink = Callable[["StageEvent"], None]
StageState = Literal["start", "done", "failed"]


@dataclass(frozen=True, slots=True)
class StageEvent:
    """One step of a long job, as the Data page and ``--events FILE`` see it.

    Attributes
    ----------
    stage : str
        Stage name (``imaging``, ``fusion``, ...; ``job`` for the job's final event).
    index, total : int
        Position of the stage (1-based) and number of stages of the job.
    state : {"start", "done", "failed"}
    detail : str, default=""
        What the stage works on, or the error message / summary of the job.
    seconds : float or None, default=None
        Elapsed time of a finished stage.
    """

    stage: str
    index: int
    total: int
    state: StageState
    detail: str = ""
    seconds: float | None = None

    def to_json(self) -> str:
        """One JSON line (with the current UTC time)."""
        return json.dumps({**asdict(self), "time": datetime.now(UTC).isoformat()})


def append_event(path: Path, event: StageEvent) -> None:
    """Append ``event`` as one JSON line to ``path`` (flushed at once)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(event.to_json() + "\n")


class Stages:
    """Logs ``[i/n] stage ... done in s`` lines, keeps the timings and emits stage events.

    Parameters
    ----------
    total : int
        Number of stages of the job.
    report : callable
        Receives each log line.
    on_event : callable, optional
        Receives a :class:`StageEvent` when a stage starts, ends or fails.
    """

    def __init__(self, total: int, report: Progress, on_event: EventSink | None = None) -> None:
        self.total, self.index, self.report, self.on_event = total, 0, report, on_event
        self.seconds: dict[str, float] = {}

    def _emit(self, event: StageEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        """Run one stage: announce it, time it, report its end (or its failure)."""
        self.index += 1
        index = self.index
        self.report(f"[{index}/{self.total}] {name}{': ' + detail if detail else ''} ...")
        self._emit(StageEvent(name, index, self.total, "start", detail))
        start = time.perf_counter()
        try:
            yield
        except BaseException as err:
            self._emit(StageEvent(name, index, self.total, "failed", str(err)))
            raise
        elapsed = time.perf_counter() - start
        self.seconds[name] = round(elapsed, 2)
        self.report(f"[{index}/{self.total}] {name} done in {elapsed:.1f} s")
        self._emit(StageEvent(name, index, self.total, "done", detail, round(elapsed, 2)))


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
        LightGBM's smallest leaf; None adapts it to the training split (``n_train // 20``
        within 5-20), so a cohort of a few hundred patients still grows trees.
    """

    seed: int = 0
    folds: int = 2
    norm_groups: int = 8
    imaging: TrainConfig = field(default_factory=TrainConfig)
    forecast_models: int = 12
    min_child_samples: int | None = None


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


def load_scans(artifacts_dir: Path, paths: pd.Series) -> npt.NDArray[np.float32]:
    """Load and intensity-normalise scans, shape (n, H, W); never unpickles.

    Raises
    ------
    data.errors.CohortError
        If a stored scan file is missing (names the file and how to restore it).
    """
    images = []
    for rel in paths:
        path = artifacts_dir / str(rel)
        if not path.is_file():
            raise CohortError(
                f"The stored scan {path} is missing, so nothing was trained or scored; import "
                "the cohort again (`riskfusion import DIR` rewrites missing scans) or rebuild "
                "the demo (`riskfusion demo --rebuild`)."
            )
        images.append(np.load(path, allow_pickle=False))
    return normalize_scan(np.stack(images).astype(np.float32))


def logit_scaling(
    nets: Sequence[RiskCNN], scans: npt.NDArray[np.float32]
) -> dict[str, list[float]]:
    """Per-net mean and standard deviation of the logit over unlabelled reference scans.

    Independently trained fold nets put their logits on different offsets and scales; scores
    are compared across nets only after this label-free standardisation.
    """
    scaling = {}
    for k, net in enumerate(nets):
        _, logits = embed(net, scans)
        scaling[str(k)] = [float(logits.mean()), float(max(logits.std(), 1e-6))]
    return scaling


def new_version(kind: str) -> str:
    """A new, time-ordered model version name such as ``fusion-20261129-153000-123456``."""
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"


def _class_counts(frame: pd.DataFrame, what: str) -> None:
    """Refuse a cohort whose splits cannot train and evaluate a binary model."""
    for split, minimum in MIN_PER_CLASS.items():
        labels = frame.loc[frame["split"] == split, "label"].astype(int)
        counts = {label: int((labels == label).sum()) for label in (0, 1)}
        if min(counts.values()) < minimum:
            raise CohortError(
                f"The {split} split holds {counts[0]} {what} with label 0 and {counts[1]} with "
                f"label 1; training needs at least {minimum} of each class in {split}. Add "
                "patients, or give patients.csv a `split` column stratified by label "
                "(docs/import.md), then import again."
            )


def _check_trainable(frame: pd.DataFrame, scans: pd.DataFrame) -> None:
    _class_counts(frame, "patients")
    _class_counts(scans, "patients with a scan")
    shapes = scans.loc[:, ["height", "width"]].drop_duplicates()
    if len(shapes) > 1:
        found = sorted(f"{h}x{w}" for h, w in shapes.itertuples(index=False, name=None))
        raise CohortError(
            f"Stored scans have {len(shapes)} sizes ({', '.join(found[:5])}); the imaging net "
            "needs one. Import every scan with the same `[images] size` in schema.toml."
        )


def describe_training_data(
    store: CohortStore, frame: pd.DataFrame, scans: pd.DataFrame, features: FeatureSet
) -> dict[str, Any]:
    """What the registry records about the data a model version was trained on.

    ``fingerprint`` is the SHA-256 of the model-input table (patient id, split, label and
    every input, CSV-serialised in id order) and of the scans' SHA-256s: two trainings with the
    same fingerprint saw the same data.
    """
    inputs = [name for name in features.names if name in frame.columns]
    table = frame.loc[:, ["patient_id", "split", "label", *inputs]].sort_values("patient_id")
    digest = hashlib.sha256(table.to_csv(index=False, float_format="%.9g").encode())
    for sha in scans.sort_values("patient_id")["sha256"]:
        digest.update(str(sha).encode())
    batches = store.import_batches()
    return {
        "sources": store.cohort_sources(),
        "n_patients": len(frame),
        "n_scans": len(scans),
        "splits": {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")},
        "import_batches": [str(batch["batch_id"]) for batch in batches],
        "last_import": None if not batches else batches[-1]["created_at"].isoformat(),
        "fingerprint": digest.hexdigest(),
    }


def _oracle_aurocs(truth: pd.DataFrame | None, frame: pd.DataFrame) -> dict[str, float]:
    """Test AUROC of the true risk and of each modality's true logit (synthetic cohorts)."""
    if truth is None:
        return {}
    test = frame.loc[frame["split"] == "test", ["patient_id", "label"]]
    joined = test.join(truth.set_index("patient_id"), on="patient_id")
    return truth_aurocs(joined, joined["label"])


def _forecast_skip_reason(frame: pd.DataFrame) -> str | None:
    """Why the treatment forecast cannot be fitted on this cohort, or None."""
    if frame["event_time"].isna().any() or frame["event"].isna().any():
        return "the outcomes lack event_time/event for some patients"
    unknown = sorted(set(frame["treatment"].dropna().astype(str)) - set(TREATMENTS))
    if frame["treatment"].isna().any() or unknown:
        return f"treatments must be one of {list(TREATMENTS)} for every patient (found {unknown})"
    return None


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
    _check_trainable(frame, scans)
    build = dict(build) if build is not None else {"source": store.cohort_sources()}
    catalog = store.feature_catalog()
    full = FeatureSet.from_catalog(catalog)
    training_data = describe_training_data(store, frame, scans, full)
    train = scans[scans["split"] == "train"].reset_index(drop=True)
    val = scans[scans["split"] == "val"].reset_index(drop=True)
    rng = np.random.default_rng(config.seed)
    folds = np.empty(len(train), dtype=np.int64)
    for label in (0, 1):  # stratified fold assignment
        idx = np.flatnonzero(train["label"].to_numpy() == label)
        folds[idx] = rng.permutation(np.arange(len(idx)) % config.folds)
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
        manifest = model_dir / "manifest.json"
        manifest.write_text(json.dumps({"folds": config.folds, "nets": net_files}, indent=2))
        store.register_model(
            ModelRecord(
                version=imaging_version,
                kind="imaging",
                created_at=datetime.now(UTC),
                artifact_path=str(model_dir.relative_to(artifacts_dir)),
                sha256=file_sha256(manifest),
                metrics={"train_oof_auroc": auroc_with_ci(train["label"], oof).auroc},
                params={
                    "build": build,
                    "epochs": config.imaging.epochs,
                    "nets": net_files,
                    "logit_scaling": scaling,
                    "training_data": training_data,
                },
            ),
            activate=False,
        )

    with stages.stage("embeddings", f"{len(image_rows)} scans x {config.folds} nets"):
        bar = tqdm(total=len(image_rows), desc="embeddings", unit="scan", leave=False)
        for start in range(0, len(image_rows), SCAN_CHUNK):
            chunk = image_rows.iloc[start : start + SCAN_CHUNK]
            patient_folds = np.array([fold_of.get(pid, -1) for pid in chunk["patient_id"]])
            _write_embeddings(
                store,
                imaging_version,
                nets,
                chunk,
                load_scans(artifacts_dir, chunk["path"]),
                patient_folds,
            )
            bar.update(len(chunk))
        bar.close()

    scores = image_scores(store.load_embeddings(imaging_version), scaling)
    frame = frame.join(scores, on="patient_id")
    masks = {s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    y = frame["label"].to_numpy()
    n_train = int(masks["train"].sum())
    leaf = config.min_child_samples or int(np.clip(n_train // 20, 5, 20))
    present = set(full.modalities)
    baselines = {
        name: modalities
        for name, modalities in BASELINES.items()
        if set(modalities) <= present  # e.g. no genomics file: no genomics baseline
    }

    test_auroc: dict[str, dict[str, float]] = {}
    with stages.stage("fusion", f"LightGBM on {len(full.names)} inputs + baselines"):
        fitted: dict[str, tuple[FusionClassifier, FeatureSet]] = {}
        for name, modalities in {"fusion": (), **baselines}.items():
            features = full if name == "fusion" else full.subset(modalities)
            X = build_feature_matrix(frame, features)
            model = FusionClassifier(random_state=config.seed, min_child_samples=leaf).fit(
                X[masks["train"]],
                y[masks["train"]],
                X_val=X[masks["val"]],
                y_val=y[masks["val"]],
            )
            risk = model.predict_proba(X[masks["test"]])[:, 1]
            test_auroc[name] = auroc_with_ci(
                y[masks["test"]], risk, random_state=config.seed
            ).as_dict()
            fitted[name] = (model, features)
            say(f"      {name:<12} test AUROC {test_auroc[name]['auroc']:.3f}")
        truth = store.load_truth()
        oracle = _oracle_aurocs(truth, frame)
        if truth is not None:
            test_auroc["oracle"] = auroc_with_ci(
                y[masks["test"]], frame.loc[masks["test"], "true_risk"], random_state=config.seed
            ).as_dict()

    fusion_version = new_version("fusion")
    skip = _forecast_skip_reason(frame)
    # Every part this version is going to have; the registry keeps the plan, so an unfinished
    # version can say what it lacks (fusion.training.versions). Parts are registered inactive; the
    # whole
    # version is activated at the end, once each part is written and verified.
    planned = [
        *baselines,
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
            "baselines": {k: v["auroc"] for k, v in test_auroc.items() if k in baselines},
            "oracle_test_auroc": oracle,
            "threshold": threshold,
            "n_train": n_train,
            "n_val": int(masks["val"].sum()),
            "n_test": int(masks["test"].sum()),
        }
        if has_masks:  # Issue 3: how far the image maps can be trusted (true lesion masks).
            metrics["map_trust"] = evaluate_test_maps(
                model,
                X[masks["test"]],
                image_rows,
                artifacts_dir,
                nets,
                scaling,
                random_state=config.seed,
            ).to_metrics()
        store.register_model(
            ModelRecord(
                version=fusion_version,
                kind="fusion",
                created_at=datetime.now(UTC),
                artifact_path=str(fusion_path.relative_to(artifacts_dir)),
                sha256=sha,
                metrics=metrics,
                params={
                    "build": build,
                    "features": list(features.names),
                    "min_child_samples": leaf,
                    "training_data": training_data,
                    PLANNED_PARAM: planned,
                },
                parent_version=imaging_version,
            ),
            activate=False,
        )
        for name in baselines:
            baseline, baseline_features = fitted[name]
            path = fusion_dir / f"baseline_{name}.txt"
            store.register_model(
                ModelRecord(
                    version=f"{fusion_version}-{name}",
                    kind=f"baseline_{name}",
                    created_at=datetime.now(UTC),
                    artifact_path=str(path.relative_to(artifacts_dir)),
                    sha256=baseline.save(path),
                    metrics={"test_auroc": test_auroc[name]["auroc"]},
                    params={"build": build, "modalities": list(BASELINES[name])},
                    parent_version=imaging_version,
                ),
                activate=False,
            )
            # Test-split risks of the baseline: the ablation table only queries them.
            X_test = build_feature_matrix(frame.loc[masks["test"]], baseline_features)
            store.write_predictions(
                f"{fusion_version}-{name}",
                X_test.index.tolist(),
                baseline.predict_proba(X_test)[:, 1],
            )
        store.write_predictions(fusion_version, X.index.tolist(), risk_all)
        # Issue 3: risk interval models, stored TreeSHAP per patient, similar-patient index.
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
        else:  # Issue 5: treatment forecasts (fitted on train, proof on the test split).
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
        completion = _completion(
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
    )


def _embed_chunk(
    imaging_version: str,
    nets: Sequence[RiskCNN],
    rows: pd.DataFrame,
    scans: npt.NDArray[np.float32],
    patient_folds: npt.NDArray[np.int64],
) -> EmbeddingBatch:
    """Embed one chunk of scans with every fold net (``patient_folds`` -1: seen by none).

    Returns every net's rows together, so the store writes them in one transaction: no scan
    is ever stored with the embedding of only some nets.
    """
    parts = []
    for k, net in enumerate(nets):
        vectors, logits = embed(net, scans)
        parts.append(
            (np.full(len(rows), k), (patient_folds >= 0) & (patient_folds != k), logits, vectors)
        )
    ids = rows["image_id"].to_numpy()
    return EmbeddingBatch(
        model_version=imaging_version,
        image_ids=np.concatenate([ids] * len(nets)),
        folds=np.concatenate([p[0] for p in parts]),
        in_training=np.concatenate([p[1] for p in parts]),
        logits=np.concatenate([np.asarray(p[2], dtype=np.float64) for p in parts]),
        vectors=np.concatenate([np.asarray(p[3], dtype=np.float32) for p in parts]),
    )


def _write_embeddings(
    store: CohortStore,
    imaging_version: str,
    nets: Sequence[RiskCNN],
    rows: pd.DataFrame,
    scans: npt.NDArray[np.float32],
    patient_folds: npt.NDArray[np.int64],
) -> None:
    """Embed one chunk of scans with every fold net and store all rows in one transaction."""
    batch = _embed_chunk(imaging_version, nets, rows, scans, patient_folds)
    store.write_embeddings(
        batch.model_version,
        batch.image_ids,
        batch.folds,
        batch.in_training,
        batch.logits,
        batch.vectors,
    )


def _completion(
    store: CohortStore,
    artifacts_dir: Path,
    fusion_version: str,
    planned: Sequence[str],
    *,
    n_patients: int,
    n_embeddings: int,
) -> dict[str, Any]:
    """Verify a just-trained version part by part and return its completion record.

    Raises
    ------
    data.errors.IncompleteVersionError
        If a planned part is not registered, a file is missing or differs from its SHA-256,
        or a stored count falls short (nothing is activated then).
    """
    records = {record.version: record for record in store.list_models()}
    parts = version_parts(records, fusion_version)
    problems = [
        f"part {name} was never written"
        for name in planned
        if f"{fusion_version}-{name}" not in records
    ]
    for record in (records[fusion_version], *parts):
        problems += artifact_problems(record, artifacts_dir)
    imaging = records[fusion_version].parent_version or ""
    counts = {
        "predictions": (store.count_predictions(fusion_version), n_patients),
        "explanations": (store.count_explanations(fusion_version), n_patients),
        "embeddings": (store.count_embeddings(imaging), n_embeddings),
    }
    problems += [
        f"{have} of {want} {what} stored" for what, (have, want) in counts.items() if have < want
    ]
    if problems:
        raise IncompleteVersionError(
            f"Model version {fusion_version!r} failed its completion check and was not "
            f"activated: {'; '.join(problems)}. Run `riskfusion train` again."
        )
    return {
        "completed_at": datetime.now(UTC).isoformat(),
        "parts": {record.version: record.sha256 for record in parts},
        "counts": {what: have for what, (have, _) in counts.items()},
    }


def _complete_logits(logits: pd.DataFrame, n_nets: int) -> pd.DataFrame:
    """The rows of images that have the logit of every one of the ``n_nets`` fold nets."""
    folds = logits.groupby("image_id")["fold"].nunique()
    complete = folds.index[folds == n_nets]
    return logits.loc[logits["image_id"].isin(complete)]


def score_cohort(
    store: CohortStore,
    artifacts_dir: Path,
    *,
    stages: Stages | None = None,
    chunk_size: int = SCORE_CHUNK,
    audit: AuditEntry | None = None,
) -> dict[str, Any]:
    """Score every patient the active fusion version has not scored yet (new or updated).

    Streams the unscored patients in chunks. For each chunk it embeds, with every active
    imaging net, the scans that lack the embedding of any net (no net trained on them; a
    partial set left by an older version of this job is replaced), computes risk and TreeSHAP,
    and stores embeddings, risks, SHAP values and the audit event in one transaction. A patient
    therefore has all of them or none, readers never see a partial result, and an interrupted
    run resumes at the first unfinished chunk with exactly the chunks, and so exactly the
    values, of an uninterrupted run.

    Parameters
    ----------
    store : CohortStore
        The store with an active fusion model.
    artifacts_dir : Path
        Root of the scan and model files.
    stages : Stages, optional
        Stage logger (one stage: ``score``).
    chunk_size : int, default=5000
        Patients per chunk (per transaction).
    audit : AuditEntry, optional
        A ``score`` event written with each chunk, in its transaction (detail: patients).

    Returns
    -------
    dict
        ``model_version``, ``scored``, ``embedded`` (scans embedded) and ``seconds``.

    Raises
    ------
    data.errors.StoreNotBuiltError
        If no model is active (train first).
    """
    stages = stages or Stages(SCORE_STAGES, logger.info)
    service = RiskService(store, artifacts_dir)
    info = service.model_info()
    version = info.version
    imaging = store.active_model("imaging")
    scaling = imaging.params["logit_scaling"]
    n_nets = len(service.nets)
    start = time.perf_counter()
    embedded = scored = 0
    detail = f"embeddings ({imaging.version}), risk and TreeSHAP under {version}"
    with stages.stage("score", detail):
        for ids in store.iter_unscored_ids(version, chunk_size=chunk_size):
            logits = _complete_logits(store.patient_logits(imaging.version, ids), n_nets)
            rows = store.image_rows(ids)
            rows = rows[~rows["image_id"].isin(logits["image_id"])].reset_index(drop=True)
            batches = [
                _embed_chunk(
                    imaging.version,
                    service.nets,
                    chunk,
                    load_scans(artifacts_dir, chunk["path"]),
                    np.full(len(chunk), -1, dtype=np.int64),
                )
                for chunk in (
                    rows.iloc[begin : begin + SCAN_CHUNK]
                    for begin in range(0, len(rows), SCAN_CHUNK)
                )
            ]
            batch = _concat_batches(imaging.version, batches)
            new = pd.DataFrame(
                {
                    "image_id": batch.image_ids,
                    "fold": batch.folds,
                    "in_training": batch.in_training,
                    "logit": batch.logits,
                }
            ).merge(rows[["image_id", "patient_id"]], on="image_id")
            frame = store.patient_frame(ids)
            scores = image_scores(pd.concat([logits, new], ignore_index=True), scaling)
            X = build_feature_matrix(frame.join(scores, on="patient_id"), service.features)
            risk = service.model.predict_proba(X)[:, 1]
            result = shap_values(service.model, X)
            store.write_scored(
                version,
                X.index.tolist(),
                risk,
                result.base_value,
                result.values,
                audit=None
                if audit is None
                else replace(
                    audit, model_version=version, detail={**audit.detail, "patients": len(X)}
                ),
                embeddings=batch,
            )
            scored += len(X)
            embedded += len(rows)
    stages.report(f"      scored {scored} patients ({embedded} scans embedded)")
    return {
        "model_version": version,
        "scored": scored,
        "embedded": embedded,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _concat_batches(imaging_version: str, batches: Sequence[EmbeddingBatch]) -> EmbeddingBatch:
    """One batch of the rows of several (an empty batch for none)."""
    if not batches:
        return EmbeddingBatch(
            imaging_version,
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=bool),
            np.empty(0, dtype=np.float64),
            np.empty((0, 0), dtype=np.float32),
        )
    return EmbeddingBatch(
        imaging_version,
        np.concatenate([b.image_ids for b in batches]),
        np.concatenate([b.folds for b in batches]),
        np.concatenate([b.in_training for b in batches]),
        np.concatenate([b.logits for b in batches]),
        np.concatenate([b.vectors for b in batches]),
    )


def activate_version(
    store: CohortStore, artifacts_dir: Path, version: str, *, audit: AuditEntry | None = None
) -> None:
    """Make a registered fusion version active again, with its imaging nets and every part.

    Only a complete version can be activated (:func:`fusion.training.versions.check_version`): its
    training finished and every part it recorded (imaging nets, baselines, risk interval,
    stored explanations, forecast) is registered with its SHA-256 and its files match it.
    Then every kind is switched in one transaction (``audit``, action ``activate_model``, is
    written in it).

    Raises
    ------
    KeyError
        If ``version`` is not a registered fusion version (the message lists them).
    data.errors.IncompleteVersionError
        If the version is incomplete or a file of it is missing or changed (the message names
        every problem); nothing is switched.
    """
    records = {record.version: record for record in store.list_models()}
    require_complete(records, artifacts_dir, version)
    parts = records[version].params[COMPLETION_PARAM]["parts"]
    store.activate_models(
        [version, *parts],
        audit=None if audit is None else replace(audit, model_version=version),
    )
