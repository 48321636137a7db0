"""Use cases the dashboard pages and the command line call.

Owns :class:`RiskService`: loading the active models (SHA-256 verified), and per-patient risk,
SHAP explanation and image maps, each returned as a frozen record or a DataFrame. Every query
touches one patient or one page of patients, so it stays fast with 1M stored patients. Must not
import streamlit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.errors import ArtifactIntegrityError, CohortError
from data.store import CohortStore, ModelRecord, PatientRecord, make_engine
from fusion.explain import make_explainer, modality_sums, shap_values
from fusion.features import (
    DERIVED_DEMOGRAPHICS,
    IMAGE_FEATURE,
    MODALITIES,
    FeatureSet,
    build_feature_matrix,
    image_scores,
)
from fusion.model import REBUILD_HINT, FusionClassifier, file_sha256
from fusion.settings import Settings
from models.gradcam import GradCamExplainer
from models.nets import RiskCNN, load_net
from models.transforms import normalize_scan

__all__ = [
    "ImageMaps",
    "ModelInfo",
    "PatientExplanation",
    "RiskResult",
    "RiskService",
]

logger = logging.getLogger(__name__)

MapMethod = Literal["gradcam", "gradcampp"]
MAP_METHODS: tuple[MapMethod, ...] = ("gradcam", "gradcampp")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The active fusion model as the pages describe it."""

    version: str
    imaging_version: str
    created_at: str
    test_auroc: float
    test_auroc_ci: tuple[float, float]
    baselines: Mapping[str, float]
    oracle: Mapping[str, float]
    threshold: float
    n_features: int


@dataclass(frozen=True, slots=True)
class RiskResult:
    """One patient's fused risk under the active model."""

    patient_id: str
    risk: float
    model_version: str
    threshold: float
    split: str
    label: int | None
    true_risk: float | None
    image_score: float | None

    @property
    def flagged(self) -> bool:
        """Whether the risk is at or above the decision threshold."""
        return self.risk >= self.threshold


@dataclass(frozen=True, slots=True)
class PatientExplanation:
    """Exact TreeSHAP attribution of one patient's fused risk, in log-odds.

    Attributes
    ----------
    risk : float
        Fused risk.
    base_value : float
        Model's average margin (log-odds).
    margin : float
        ``base_value + contributions["shap"].sum()``; ``sigmoid(margin) == risk``.
    contributions : DataFrame
        One row per input, sorted by ``|shap|`` descending: ``feature, label, unit, modality,
        value, shap``.
    modality_totals : Mapping[str, float]
        SHAP summed per modality.
    """

    risk: float
    base_value: float
    margin: float
    contributions: pd.DataFrame
    modality_totals: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ImageMaps:
    """A scan with one saliency map and, for synthetic cohorts, the true lesion mask.

    ``image`` is min-max scaled to [0, 1] for display; ``saliency`` is in [0, 1] with
    1 = most important; both have the scan's shape (H, W).
    """

    image: npt.NDArray[np.float32]
    saliency: npt.NDArray[np.float32]
    lesion_mask: npt.NDArray[np.uint8] | None
    method: MapMethod
    n_nets: int


class RiskService:
    """Per-patient risk, explanation and image maps over the active models.

    Parameters
    ----------
    store : CohortStore
        The cohort store.
    artifacts_dir : Path
        Where model files and scans live (paths in the store are relative to it).

    Raises
    ------
    data.errors.StoreNotBuiltError
        If no fusion or imaging model is active.
    data.errors.ArtifactIntegrityError
        If a model file is missing or differs from its registered SHA-256.
    """

    def __init__(self, store: CohortStore, artifacts_dir: Path) -> None:
        self.store = store
        self.artifacts_dir = Path(artifacts_dir)
        self._fusion_record = store.active_model("fusion")
        self._imaging_record = store.active_model("imaging")
        self.model = FusionClassifier.load(
            self.artifacts_dir / self._fusion_record.artifact_path,
            expected_sha256=self._fusion_record.sha256,
        )
        self._tree_explainer = make_explainer(self.model)
        self.nets = self._load_nets(self._imaging_record)
        self.explainers = [GradCamExplainer(net) for net in self.nets]
        catalog = store.feature_catalog()
        features = FeatureSet.from_catalog(catalog)
        if list(features.names) != list(self.model.feature_names):
            raise ArtifactIntegrityError(
                "The fusion model's feature list differs from the store's feature catalogue; "
                f"{REBUILD_HINT}."
            )
        self.features = features
        self.catalog = catalog.set_index("name")

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskService:
        """Open the store named by ``settings`` and load its active models."""
        return cls(CohortStore(make_engine(settings.database_url)), settings.artifacts_dir)

    def _load_nets(self, record: ModelRecord) -> list[RiskCNN]:
        folder = self.artifacts_dir / record.artifact_path
        manifest = folder / "manifest.json"
        if not manifest.is_file() or file_sha256(manifest) != record.sha256:
            raise ArtifactIntegrityError(
                f"Imaging manifest {manifest} is missing or does not match its registered "
                f"SHA-256; {REBUILD_HINT}."
            )
        nets: dict[str, str] = json.loads(manifest.read_text())["nets"]
        return [load_net(folder / name, expected_sha256=sha) for name, sha in sorted(nets.items())]

    # ------------------------------------------------------------------ cohort-level
    def model_info(self) -> ModelInfo:
        """The active fusion model, its test AUROC, baselines and threshold."""
        record, metrics = self._fusion_record, self._fusion_record.metrics
        ci = metrics.get("test_auroc_ci", [float("nan"), float("nan")])
        return ModelInfo(
            version=record.version,
            imaging_version=self._imaging_record.version,
            created_at=record.created_at.isoformat(timespec="seconds"),
            test_auroc=float(metrics["test_auroc"]),
            test_auroc_ci=(float(ci[0]), float(ci[1])),
            baselines={k: float(v) for k, v in metrics.get("baselines", {}).items()},
            oracle={k: float(v) for k, v in metrics.get("oracle_test_auroc", {}).items()},
            threshold=float(metrics.get("threshold", 0.5)),
            n_features=len(self.features.names),
        )

    def search_patients(
        self, query: str = "", *, split: str | None = None, limit: int = 50, offset: int = 0
    ) -> pd.DataFrame:
        """One page of patients (id prefix search) with their stored risk."""
        return self.store.search_patients(
            query,
            split=split,
            model_version=self._fusion_record.version,
            limit=limit,
            offset=offset,
        )

    def count_patients(self, split: str | None = None) -> int:
        """Number of stored patients (optionally in one split)."""
        return self.store.count_patients(split)

    def iter_predictions(self, *, chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
        """Stream the active version's predictions for export, in chunks."""
        yield from self.store.iter_prediction_rows(
            self._fusion_record.version, chunk_size=chunk_size
        )

    # ------------------------------------------------------------------ one patient
    def patient(self, patient_id: str) -> PatientRecord:
        """Everything stored about one patient (raises PatientNotFoundError)."""
        return self.store.get_patient(patient_id)

    def _image_score(self, record: PatientRecord) -> float | None:
        if record.image is None:
            return None
        rows = self.store.image_logits(record.image.image_id, self._imaging_record.version)
        scores = image_scores(
            rows.assign(patient_id=record.patient_id), self._imaging_record.params["logit_scaling"]
        )
        return float(scores.iloc[0]) if len(scores) else None

    def feature_row(self, record: PatientRecord) -> pd.DataFrame:
        """The patient's model inputs, shape (1, n_features)."""
        row: dict[str, object] = {
            "patient_id": record.patient_id,
            "age": record.age,
            "sex": record.sex,
            IMAGE_FEATURE: self._image_score(record),
        }
        row.update(record.ehr)
        row.update(record.genomics)
        frame = pd.DataFrame([row])
        for name in self.features.names:  # not recorded -> missing, as in training
            if name not in frame.columns and name not in DERIVED_DEMOGRAPHICS:
                frame[name] = np.nan
        return build_feature_matrix(frame, self.features)

    def predict(self, patient_id: str) -> RiskResult:
        """Fused risk of one patient under the active model."""
        record = self.patient(patient_id)
        X = self.feature_row(record)
        risk = float(self.model.predict_proba(X)[0, 1])
        score = X[IMAGE_FEATURE].iloc[0]
        return RiskResult(
            patient_id=record.patient_id,
            risk=risk,
            model_version=self._fusion_record.version,
            threshold=self.model_info().threshold,
            split=record.split,
            label=record.label,
            true_risk=record.true_risk,
            image_score=None if pd.isna(score) else float(score),
        )

    def explain(self, patient_id: str) -> PatientExplanation:
        """Exact TreeSHAP attribution of one patient's fused risk."""
        record = self.patient(patient_id)
        X = self.feature_row(record)
        result = shap_values(self.model, X, explainer=self._tree_explainer)
        values = result.values[0]
        contributions = pd.DataFrame(
            {
                "feature": list(self.features.names),
                "label": list(self.features.labels),
                "unit": list(self.features.units),
                "modality": list(self.features.modalities),
                "value": X.iloc[0].to_numpy(),
                "shap": values,
            }
        )
        order = np.argsort(-np.abs(values), kind="stable")
        totals = modality_sums(result.values, self.features.modalities, MODALITIES).iloc[0]
        margin = float(result.margin()[0])
        return PatientExplanation(
            risk=float(1.0 / (1.0 + np.exp(-margin))),
            base_value=result.base_value,
            margin=margin,
            contributions=contributions.iloc[order].reset_index(drop=True),
            modality_totals={str(k): float(v) for k, v in totals.items()},
        )

    def image_maps(self, patient_id: str, method: MapMethod = "gradcam") -> ImageMaps:
        """Scan and saliency map of one patient, averaged over the nets that scored it.

        Raises
        ------
        ValueError
            If ``method`` is unknown.
        data.errors.CohortError
            If the patient has no scan or its file is missing.
        """
        if method not in MAP_METHODS:
            raise ValueError(f"Unknown map method {method!r}; choose one of {list(MAP_METHODS)}.")
        record = self.patient(patient_id)
        if record.image is None:
            raise CohortError(f"Patient {patient_id!r} has no scan in the store.")
        path = self.artifacts_dir / record.image.path
        if not path.is_file():
            raise CohortError(
                f"Scan file {path} is missing; restore it or rebuild the demo "
                "(`riskfusion demo --no-serve --rebuild`)."
            )
        raw = np.load(path, allow_pickle=False).astype(np.float32)
        scan = normalize_scan(raw)
        rows = self.store.image_logits(record.image.image_id, self._imaging_record.version)
        folds = rows.loc[~rows["in_training"], "fold"].tolist() or list(range(len(self.nets)))
        maps = [self.explainers[int(k)].compute(scan, method=method) for k in folds]
        saliency = np.mean(maps, axis=0)
        span = float(saliency.max() - saliency.min())
        saliency = (saliency - saliency.min()) / span if span > 0 else np.zeros_like(saliency)
        lesion_mask = None
        if record.image.mask_path is not None and record.true_risk is not None:
            mask_file = self.artifacts_dir / record.image.mask_path
            if mask_file.is_file():
                lesion_mask = np.load(mask_file, allow_pickle=False).astype(np.uint8)
        low, high = float(raw.min()), float(raw.max())
        display = (raw - low) / (high - low) if high > low else np.zeros_like(raw)
        return ImageMaps(
            image=display.astype(np.float32),
            saliency=saliency.astype(np.float32),
            lesion_mask=lesion_mask,
            method=method,
            n_nets=len(folds),
        )
