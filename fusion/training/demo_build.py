"""The demo build: synthetic cohort -> scans -> SQL store, then the shared training job.

Owns the batch job behind ``riskfusion demo``: it writes the seeded synthetic cohort (scans,
lesion masks, ground truth) and trains on it with the same code as ``riskfusion train`` on an
imported cohort. Each stage logs its counts and elapsed time, long loops show a progress bar,
scans stream in chunks so memory stays bounded, and every store write is one transaction. Must
not import streamlit.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import inspect
from tqdm.auto import tqdm

from data.splits import assign_splits
from data.store import AuditEntry, CohortStore, CohortTables, make_engine
from data.store.schema import Base
from data.synthetic import DEMO_BIAS, SyntheticCohort, generate_cohort
from data.vocabulary import FEATURE_SPECS, TREATMENTS
from fusion.settings import DATABASE_FILE, Settings
from fusion.training.embeddings import SCAN_CHUNK
from fusion.training.stages import TRAIN_STAGES, EventSink, Progress, Stages
from fusion.training.train import TrainingConfig, train_cohort
from models.train import TrainConfig

__all__ = [
    "BuildConfig",
    "BuildSummary",
    "build_demo",
    "built_config",
    "reset_store",
]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "build_summary.json"
DEMO_STAGES = 3  # cohort, scans, store; then the training stages


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
        and poorer data capture at one site, an under-recruited group) so the bias audit has
        something to find; False builds the unbiased world.
    forecast_models : int, default=12
        Bootstrap members of the treatment-forecast model (:mod:`fusion.forecast.hazard`).
    """

    n_patients: int = 2000
    seed: int = 0
    image_size: int = 128
    folds: int = 2
    norm_groups: int = 8
    imaging: TrainConfig = field(default_factory=TrainConfig)
    bias: bool = True
    forecast_models: int = 12

    def training(self) -> TrainingConfig:
        """The training half of the build (LightGBM leaves fixed at 20, as measured)."""
        return TrainingConfig(
            seed=self.seed,
            folds=self.folds,
            norm_groups=self.norm_groups,
            imaging=self.imaging,
            forecast_models=self.forecast_models,
            min_child_samples=20,
        )

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


def build_demo(
    settings: Settings,
    config: BuildConfig,
    *,
    report: Progress | None = None,
    on_event: EventSink | None = None,
    audit: AuditEntry | None = None,
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
    on_event : callable, optional
        Receives a :class:`fusion.training.stages.StageEvent` per stage start/end.
    audit : AuditEntry, optional
        The ``train`` audit event, written with the activation in one transaction.

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
    stages = Stages(DEMO_STAGES + TRAIN_STAGES, say, on_event)

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

    trained = train_cohort(
        store, home, config.training(), build=config.identity(), stages=stages, audit=audit
    )
    summary = BuildSummary(
        fusion_version=trained.fusion_version,
        imaging_version=trained.imaging_version,
        n_patients=config.n_patients,
        test_auroc=trained.test_auroc,
        oracle_auroc_test=trained.oracle_auroc_test,
        threshold=trained.threshold,
        seconds=stages.seconds,
        bias=config.bias,
        forecast=trained.forecast,
    )
    (home / SUMMARY_FILE).write_text(summary.to_json())
    return summary
