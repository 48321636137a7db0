"""The demo build: synthetic cohort -> SQL store -> imaging nets -> embeddings -> fusion -> risk.

Owns the batch job behind ``riskfusion demo``: each stage logs its counts and elapsed time, long
loops show a progress bar, scans and embeddings stream in chunks so memory stays bounded, and
every store write is one transaction. Must not import streamlit.

Leakage guard (cross-fitting): the training split is cut into ``folds`` parts; fold net ``k`` is
trained on every training patient outside part ``k``. A training patient's image score is the
logit of the net that never saw it; validation and test patients get the mean logit of all fold
nets. The fusion model therefore never trains on an over-confident image score.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import inspect
from tqdm.auto import tqdm

from data.schema import Base
from data.store import CohortStore, CohortTables, ModelRecord, make_engine
from data.synthetic import (
    DEMO_BIAS,
    FEATURE_SPECS,
    TREATMENTS,
    SyntheticCohort,
    assign_splits,
    generate_cohort,
    oracle_aurocs,
)
from fusion.evaluation import auroc_with_ci, youden_threshold
from fusion.explain_eval import evaluate_test_maps
from fusion.explorer_build import build_interval, store_explanations
from fusion.features import FeatureSet, build_feature_matrix, image_scores
from fusion.forecast import build_forecast
from fusion.model import FusionClassifier, file_sha256
from fusion.settings import DATABASE_FILE, Settings
from models.embed import embed
from models.nets import RiskCNN, build_net, save_net
from models.train import TrainConfig, fit_cross_fitted
from models.transforms import normalize_scan

__all__ = [
    "BASELINES",
    "BuildConfig",
    "BuildSummary",
    "build_demo",
    "built_config",
    "load_scans",
    "logit_scaling",
    "reset_store",
]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "build_summary.json"
SCAN_CHUNK = 256
# Single-modality (and fusion) feature sets, each fitted on the same split.
BASELINES: dict[str, tuple[str, ...]] = {
    "imaging": ("imaging",),
    "ehr": ("ehr",),
    "genomics": ("genomics",),
    "ehr_genomics": ("ehr", "genomics"),
}
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """What the demo build makes.

    Attributes
    ----------
    n_patients : int
        Cohort size.
    seed : int
        Seed of the cohort, the splits and every model.
    image_size : int
        Scan side in pixels.
    folds : int
        Cross-fitting folds of the imaging net (>= 2).
    norm_groups : int
        GroupNorm groups of the imaging net (8: measured better on the demo scans, see
        ``docs/models.md``).
    imaging : TrainConfig
        Imaging training settings.
    bias : bool, default=True
        Inject the documented demo bias (:data:`data.synthetic.DEMO_BIAS`: a degraded scanner
        at one site, an under-recruited group) so the bias audit finds something; False builds
        the unbiased world.
    interval_models : int, default=10
        Bootstrap refits of the fusion model behind the risk interval
        (:mod:`fusion.uncertainty`).
    forecast_models : int, default=12
        Bootstrap members of the treatment-forecast model (:mod:`fusion.forecast`).
    """

    n_patients: int = 2000
    seed: int = 0
    image_size: int = 128
    folds: int = 2
    norm_groups: int = 8
    imaging: TrainConfig = field(default_factory=TrainConfig)
    bias: bool = True
    interval_models: int = 10
    forecast_models: int = 12

    def identity(self) -> dict[str, int]:
        """The parameters that make two builds the same."""
        return {
            "n_patients": self.n_patients,
            "seed": self.seed,
            "image_size": self.image_size,
            "folds": self.folds,
            "bias": self.bias,
        }


@dataclass(frozen=True, slots=True)
class BuildSummary:
    """Outcome of a build: versions, test AUROCs with CIs, oracle AUROCs and stage timings."""

    fusion_version: str
    imaging_version: str
    n_patients: int
    test_auroc: dict[str, dict[str, float]]
    oracle_auroc_test: dict[str, float]
    threshold: float
    seconds: dict[str, float]
    bias: bool = True
    forecast: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(asdict(self), indent=2)


class _Stages:
    """Logs ``[i/n] stage ... done in s`` lines and keeps the timings."""

    def __init__(self, total: int, report: Progress) -> None:
        self.total, self.index, self.report = total, 0, report
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        self.index += 1
        self.report(f"[{self.index}/{self.total}] {name}{': ' + detail if detail else ''} ...")
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.seconds[name] = round(elapsed, 2)
        self.report(f"[{self.index}/{self.total}] {name} done in {elapsed:.1f} s")


def _engine_store(settings: Settings) -> CohortStore:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    store = CohortStore(make_engine(settings.database_url))
    store.create_schema()
    return store


def built_config(store: CohortStore) -> dict[str, Any] | None:
    """The build parameters of the active fusion model, or None if nothing is built."""
    if not inspect(store.engine).has_table("model_registry"):
        return None
    for record in store.list_models("fusion"):
        if record.is_active:
            return dict(record.params.get("build", {}))
    return None


def reset_store(settings: Settings) -> None:
    """Delete the built demo: the database (tables or SQLite file) and generated files."""
    engine = make_engine(settings.database_url)
    if settings.uses_default_sqlite:
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.artifacts_dir / DATABASE_FILE}{suffix}").unlink(missing_ok=True)
    else:
        Base.metadata.drop_all(engine)
        engine.dispose()
    for folder in ("scans", "masks", "models"):
        shutil.rmtree(settings.artifacts_dir / folder, ignore_errors=True)
    (settings.artifacts_dir / SUMMARY_FILE).unlink(missing_ok=True)


def _save_array(path: Path, array: npt.NDArray[Any]) -> str:
    """Write ``.npy`` bytes (no pickle) and return their SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    data = buffer.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _write_scans(cohort: SyntheticCohort, artifacts_dir: Path, report: Progress) -> pd.DataFrame:
    """Render every scan in chunks to ``scans/<id>.npy`` (+ ``masks/``); return image rows."""
    scans, masks = artifacts_dir / "scans", artifacts_dir / "masks"
    scans.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    sites = cohort.patients["site"].to_numpy()
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=cohort.n_patients, desc="scans", unit="scan", leave=False)
    index = 0
    for ids, images, lesion_masks in cohort.iter_scans(SCAN_CHUNK):
        for pid, image, mask in zip(ids, images, lesion_masks, strict=True):
            rel = f"scans/{pid}.npy"
            sha = _save_array(artifacts_dir / rel, image.astype(np.float32))
            mask_rel = f"masks/{pid}.npy"
            _save_array(artifacts_dir / mask_rel, mask.astype(np.uint8))
            rows.append(
                {
                    "patient_id": pid,
                    "path": rel,
                    "sha256": sha,
                    "height": int(image.shape[0]),
                    "width": int(image.shape[1]),
                    "site": str(sites[index]),
                    "mask_path": mask_rel,
                }
            )
            index += 1
        bar.update(len(ids))
    bar.close()
    report(f"      {len(rows)} scans written under {scans}")
    return pd.DataFrame(rows)


def cohort_tables(
    cohort: SyntheticCohort, splits: npt.ArrayLike, images: pd.DataFrame
) -> CohortTables:
    """The synthetic cohort as store tables (feature catalogue included)."""
    patients = cohort.patients
    features = pd.DataFrame(
        [
            {
                "name": spec.name,
                "modality": spec.modality,
                "label": spec.label,
                "unit": spec.unit,
                "kind": spec.kind,
                "low": spec.low,
                "high": spec.high,
                "description": spec.description,
            }
            for spec in FEATURE_SPECS
        ]
    )
    counterfactuals = cohort.truth.melt(
        id_vars="patient_id",
        value_vars=[f"true_risk_{t}" for t in TREATMENTS],
        var_name="treatment",
        value_name="risk",
    )
    counterfactuals["treatment"] = counterfactuals["treatment"].str.removeprefix("true_risk_")
    return CohortTables(
        patients=patients.loc[:, ["patient_id", "age", "sex", "ethnicity", "site"]].assign(
            split=np.asarray(splits)
        ),
        outcomes=patients.loc[:, ["patient_id", "treatment", "label", "event_time", "event"]],
        ehr=cohort.ehr,
        genomics=cohort.genomics,
        features=features,
        images=images,
        truth=cohort.truth,
        counterfactuals=counterfactuals,
        source="synthetic",
    )


def load_scans(artifacts_dir: Path, paths: pd.Series) -> npt.NDArray[np.float32]:
    """Load and intensity-normalise scans, shape (n, H, W); never unpickles."""
    images = [np.load(artifacts_dir / str(p), allow_pickle=False) for p in paths]
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


def _new_version(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"


def build_demo(
    settings: Settings, config: BuildConfig, *, report: Progress | None = None
) -> BuildSummary:
    """Build the whole demo into ``settings`` (store must be empty; see :func:`reset_store`).

    Parameters
    ----------
    settings : Settings
        Where to write (artifacts directory and database URL).
    config : BuildConfig
        Cohort size, seed, scan size, folds and imaging training settings.
    report : callable, optional
        Receives one line per stage event (default: the module logger).

    Returns
    -------
    BuildSummary
        Also written to ``<artifacts>/build_summary.json``.
    """
    say: Progress = report or logger.info
    if config.folds < 2:
        raise ValueError(f"folds={config.folds}; cross-fitting needs at least 2 folds.")
    store = _engine_store(settings)
    if store.count_patients():
        raise ValueError(
            "The store already holds patients; run `riskfusion demo --rebuild` to replace them."
        )
    home = settings.artifacts_dir
    stages = _Stages(9, say)

    with stages.stage(
        "cohort",
        f"{config.n_patients} synthetic patients, seed {config.seed}, "
        f"demo bias {'on' if config.bias else 'off'}",
    ):
        cohort = generate_cohort(
            config.n_patients,
            config.seed,
            image_size=config.image_size,
            bias=DEMO_BIAS if config.bias else None,
        )
        splits = assign_splits(cohort.patients["label"].to_numpy(), seed=config.seed)
    with stages.stage("scans", f"{config.image_size}x{config.image_size} px"):
        images = _write_scans(cohort, home, say)
    with stages.stage("store", settings.database_url.split("://")[0]):
        store.write_cohort(cohort_tables(cohort, splits, images))

    frame = store.load_patient_frame()
    image_rows = store.image_index()
    frame = frame.merge(image_rows[["patient_id", "path"]], on="patient_id", how="left")
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    val = frame[frame["split"] == "val"].reset_index(drop=True)
    rng = np.random.default_rng(config.seed)
    folds = np.empty(len(train), dtype=np.int64)
    for label in (0, 1):  # stratified fold assignment
        idx = np.flatnonzero(train["label"].to_numpy() == label)
        folds[idx] = rng.permutation(np.arange(len(idx)) % config.folds)
    fold_of = dict(zip(train["patient_id"], folds, strict=True))

    imaging_version = _new_version("imaging")
    model_dir = home / "models" / imaging_version
    with stages.stage("imaging", f"{config.folds} cross-fitted nets on {len(train)} scans"):
        val_scans = load_scans(home, val["path"])
        nets, oof = fit_cross_fitted(
            load_scans(home, train["path"]),
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
        oof_auroc = auroc_with_ci(train["label"], oof).auroc
        store.register_model(
            ModelRecord(
                version=imaging_version,
                kind="imaging",
                created_at=datetime.now(UTC),
                artifact_path=str(model_dir.relative_to(home)),
                sha256=file_sha256(manifest),
                metrics={"train_oof_auroc": oof_auroc},
                params={
                    "build": config.identity(),
                    "epochs": config.imaging.epochs,
                    "nets": net_files,
                    "logit_scaling": scaling,
                },
            )
        )

    with stages.stage("embeddings", f"{len(image_rows)} scans x {config.folds} nets"):
        bar = tqdm(total=len(image_rows), desc="embeddings", unit="scan", leave=False)
        for start in range(0, len(image_rows), SCAN_CHUNK):
            chunk = image_rows.iloc[start : start + SCAN_CHUNK]
            scans = load_scans(home, chunk["path"])
            patient_folds = np.array([fold_of.get(pid, -1) for pid in chunk["patient_id"]])
            for k, net in enumerate(nets):
                vectors, logits = embed(net, scans)
                store.write_embeddings(
                    imaging_version,
                    chunk["image_id"].to_numpy(),
                    np.full(len(chunk), k),
                    (patient_folds >= 0) & (patient_folds != k),
                    logits,
                    vectors,
                )
            bar.update(len(chunk))
        bar.close()

    scores = image_scores(store.load_embeddings(imaging_version), scaling)
    frame = frame.join(scores, on="patient_id")
    catalog = store.feature_catalog()
    full = FeatureSet.from_catalog(catalog)
    masks = {s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    y = frame["label"].to_numpy()

    test_auroc: dict[str, dict[str, float]] = {}
    with stages.stage("fusion", f"LightGBM on {len(full.names)} inputs + baselines"):
        fitted: dict[str, tuple[FusionClassifier, FeatureSet]] = {}
        for name, modalities in {"fusion": (), **BASELINES}.items():
            features = full if name == "fusion" else full.subset(modalities)
            X = build_feature_matrix(frame, features)
            model = FusionClassifier(random_state=config.seed).fit(
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
            say(f"      {name:<9} test AUROC {test_auroc[name]['auroc']:.3f}")
        oracle = oracle_aurocs(cohort, masks["test"])
        test_auroc["oracle"] = auroc_with_ci(
            y[masks["test"]], frame.loc[masks["test"], "true_risk"], random_state=config.seed
        ).as_dict()

    fusion_version = _new_version("fusion")
    with stages.stage("predictions", f"{len(frame)} patients"):
        model, features = fitted["fusion"]
        X = build_feature_matrix(frame, features)
        risk_all = model.predict_proba(X)[:, 1]
        threshold = youden_threshold(y[masks["val"]], risk_all[masks["val"]])
        fusion_dir = home / "models" / fusion_version
        fusion_path = fusion_dir / "fusion.txt"
        sha = model.save(fusion_path)
        metrics = {
            "test_auroc": test_auroc["fusion"]["auroc"],
            "test_auroc_ci": [test_auroc["fusion"]["low"], test_auroc["fusion"]["high"]],
            "baselines": {k: v["auroc"] for k, v in test_auroc.items() if k in BASELINES},
            "oracle_test_auroc": oracle,
            "threshold": threshold,
            "n_train": int(masks["train"].sum()),
            "n_val": int(masks["val"].sum()),
            "n_test": int(masks["test"].sum()),
            # Issue 3: how far the explanations can be trusted (read by the explorer page).
            "map_trust": evaluate_test_maps(
                model, X[masks["test"]], image_rows, home, nets, scaling, random_state=config.seed
            ).to_metrics(),
        }
        for name in BASELINES:
            baseline, baseline_features = fitted[name]
            path = fusion_dir / f"baseline_{name}.txt"
            store.register_model(
                ModelRecord(
                    version=f"{fusion_version}-{name}",
                    kind=f"baseline_{name}",
                    created_at=datetime.now(UTC),
                    artifact_path=str(path.relative_to(home)),
                    sha256=baseline.save(path),
                    metrics={"test_auroc": test_auroc[name]["auroc"]},
                    params={"build": config.identity(), "modalities": list(BASELINES[name])},
                    parent_version=imaging_version,
                )
            )
            # Test-split risks of the baseline: the ablation table only queries them.
            X_test = build_feature_matrix(frame.loc[masks["test"]], baseline_features)
            store.write_predictions(
                f"{fusion_version}-{name}",
                X_test.index.tolist(),
                baseline.predict_proba(X_test)[:, 1],
            )
        store.register_model(
            ModelRecord(
                version=fusion_version,
                kind="fusion",
                created_at=datetime.now(UTC),
                artifact_path=str(fusion_path.relative_to(home)),
                sha256=sha,
                metrics=metrics,
                params={"build": config.identity(), "features": list(features.names)},
                parent_version=imaging_version,
            ),
            activate=False,
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
            home,
            n_models=config.interval_models,
            random_state=config.seed,
        )
        explained = store_explanations(
            store,
            fusion_version,
            model,
            X,
            frame["split"].to_numpy(),
            fusion_dir / "similar.npz",
            home,
            random_state=config.seed,
        )
        say(
            f"      stored TreeSHAP of {explained['n_stored']} patients; additivity max abs "
            f"error {explained['additivity_max_abs']:.1e}"
        )

    with stages.stage("forecast", "discrete-time hazard S-learner vs T-learner"):
        # Issue 5: treatment forecasts (fitted on train, proof on the test split).
        forecast = build_forecast(
            store,
            fusion_version,
            X,
            frame.loc[:, ["split", "treatment", "event_time", "event"]],
            cohort.truth,
            fusion_dir / "forecast",
            home,
            n_bootstrap=config.forecast_models,
            build=config.identity(),
            random_state=config.seed,
        )
        for row in forecast["effects"]:
            say(
                f"      {row['method']:<18} {row['contrast']:<17} PEHE {row['pehe']:.4f} "
                f"Spearman {row['spearman'] if row['spearman'] is not None else float('nan'):.3f}"
            )

    with stages.stage("activate", fusion_version):
        # Activate only once every prediction is stored: pages never see a half-scored version.
        store.activate_model(fusion_version)

    summary = BuildSummary(
        fusion_version=fusion_version,
        imaging_version=imaging_version,
        n_patients=config.n_patients,
        test_auroc=test_auroc,
        oracle_auroc_test=oracle,
        threshold=threshold,
        seconds=stages.seconds,
        bias=config.bias,
        forecast=forecast,
    )
    (home / SUMMARY_FILE).write_text(summary.to_json())
    return summary
