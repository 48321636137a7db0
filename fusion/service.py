"""Use cases the dashboard pages and the command line call.

Owns :class:`RiskService`: loading the active models (SHA-256 verified), and per-patient risk,
SHAP explanation and image maps, each returned as a frozen record or a DataFrame. Every query
touches one patient or one page of patients, so it stays fast with 1M stored patients.
Streamlit is never imported here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.errors import ArtifactIntegrityError, CohortError
from data.store import CohortStore, ModelRecord, PatientRecord, make_engine
from fusion.explain import make_explainer, modality_sums, shap_values
from fusion.explain_eval import MapTrustReport
from fusion.fairness import FairnessReport
from fusion.fairness import audit as fairness_audit
from fusion.features import (
    DERIVED_DEMOGRAPHICS,
    IMAGE_FEATURE,
    MODALITIES,
    FeatureSet,
    build_feature_matrix,
    image_scores,
)
from fusion.model import REBUILD_HINT, FusionClassifier, file_sha256
from fusion.occlusion import FusedImageScorer, occlusion_map
from fusion.performance import (
    PerformanceReport,
    ShapSummary,
    add_age_band,
    check_attributes,
    evaluate_performance,
    group_curves,
    modality_reliance,
    summarise_shap,
)
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

MapMethod = Literal["gradcam", "gradcampp", "occlusion"]
MAP_METHODS: tuple[MapMethod, ...] = ("gradcam", "gradcampp", "occlusion")


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

    # ------------------------------------------------------------------ issue 4: research
    def baseline_versions(self) -> dict[str, str]:
        """Name -> version of the single-modality baselines fitted with the active model."""
        prefix = f"{self._fusion_record.version}-"
        return {
            record.version.removeprefix(prefix): record.version
            for record in self.store.list_models()
            if record.kind.startswith("baseline_") and record.version.startswith(prefix)
        }

    def test_predictions(self) -> pd.DataFrame:
        """Test-split risks of the active model and its baselines, with attributes (one query).

        Returns
        -------
        DataFrame
            One row per test patient: ``patient_id, sex, age, age_band, ethnicity, site,
            label, true_risk, risk`` (fusion) and ``risk_<baseline>`` per stored baseline.
        """
        fusion = self._fusion_record.version
        baselines = self.baseline_versions()
        long = self.store.split_predictions([fusion, *baselines.values()], "test")
        names = {fusion: "risk", **{v: f"risk_{k}" for k, v in baselines.items()}}
        wide = long.pivot(index="patient_id", columns="model_version", values="risk")
        wide = wide.rename(columns=names).reindex(columns=list(names.values()))
        attributes = long.loc[long["model_version"] == fusion].drop(
            columns=["model_version", "risk"]
        )
        frame = attributes.join(wide, on="patient_id").reset_index(drop=True)
        return add_age_band(frame)

    def performance(
        self, *, threshold: float | None = None, n_resamples: int = 200, random_state: int = 0
    ) -> PerformanceReport:
        """Test-split performance and modality ablation (default: the model's threshold)."""
        return evaluate_performance(
            self.test_predictions(),
            model_version=self._fusion_record.version,
            threshold=self.model_info().threshold if threshold is None else threshold,
            n_resamples=n_resamples,
            random_state=random_state,
        )

    def audit(
        self,
        by: Sequence[str],
        *,
        threshold: float | None = None,
        reference: str | None = None,
        min_cell: int = 11,
        n_resamples: int = 200,
        random_state: int = 0,
    ) -> FairnessReport:
        """Bias audit of the active model on the test split over 1-3 attributes (intersected).

        ``by`` names attributes of :data:`fusion.performance.AUDIT_ATTRIBUTES`; see
        :func:`fusion.fairness.audit` for the metrics, disparities and suppression.
        """
        names = check_attributes(by)
        frame = self.test_predictions()
        return fairness_audit(
            frame["label"].to_numpy(),
            frame["risk"].to_numpy(),
            frame.loc[:, list(names)],
            threshold=self.model_info().threshold if threshold is None else threshold,
            reference=reference,
            n_resamples=n_resamples,
            random_state=random_state,
            min_cell=min_cell,
        )

    def test_shap(self, *, top_n: int = 10) -> ShapSummary:
        """Global TreeSHAP importance of the active model over the test split.

        Reads the test patients' inputs with two split-filtered queries (patients, logits);
        cost grows with the test split only (TreeSHAP ~0.7 ms a row).
        """
        frame = self.store.load_patient_frame(split="test")
        logits = self.store.split_logits(self._imaging_record.version, "test")
        scores = image_scores(logits, self._imaging_record.params["logit_scaling"])
        X = build_feature_matrix(frame.join(scores, on="patient_id"), self.features)
        result = shap_values(self.model, X, explainer=self._tree_explainer)
        return summarise_shap(
            result.values,
            X,
            labels=self.features.labels,
            modalities=self.features.modalities,
            order=MODALITIES,
            top_n=top_n,
        )

    def modality_reliance(self, by: Sequence[str], *, min_cell: int = 11) -> pd.DataFrame:
        """Mean |SHAP| per modality by group of 1-3 attributes (test split, suppressed <11).

        See :func:`fusion.performance.modality_reliance`.
        """
        names = check_attributes(by)
        attributes = self.test_predictions().set_index("patient_id").loc[:, list(names)]
        return modality_reliance(self.test_shap().per_patient, attributes, min_cell=min_cell)

    def group_curves(
        self, by: Sequence[str], *, min_cell: int = 11
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """ROC and calibration curves per shown group of the test split.

        See :func:`fusion.performance.group_curves` (suppression included).
        """
        names = check_attributes(by)
        return group_curves(self.test_predictions(), names, min_cell=min_cell)

    def list_models(self) -> pd.DataFrame:
        """The model registry: ``version, kind, created_at, active, test_auroc``, newest first."""
        records = self.store.list_models()
        return pd.DataFrame(
            {
                "version": [r.version for r in records],
                "kind": [r.kind for r in records],
                "created_at": [r.created_at.isoformat(timespec="seconds") for r in records],
                "active": [r.is_active for r in records],
                "test_auroc": [float(r.metrics.get("test_auroc", np.nan)) for r in records],
            }
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
        if method == "occlusion":  # one map of the fused risk, through all scoring nets at once
            maps = [occlusion_map(self.fused_scorer(record, folds), scan).saliency]
        else:
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

    # ------------------------------------------------------------------ issue 3: trust
    def fused_scorer(self, record: PatientRecord, folds: Sequence[int]) -> FusedImageScorer:
        """The patient's fused risk as a function of its scan (other inputs fixed)."""
        return FusedImageScorer.from_folds(
            self.model,
            self.feature_row(record),
            self.nets,
            self._imaging_record.params["logit_scaling"],
            [int(k) for k in folds],
        )

    def map_trust(self) -> MapTrustReport | None:
        """Localisation, faithfulness and additivity measured at build time (None if absent)."""
        metrics = self._fusion_record.metrics.get("map_trust")
        return None if metrics is None else MapTrustReport.from_metrics(metrics)

    def modality_what_if(self, patient_id: str) -> pd.DataFrame:
        """Fused risk if one modality were not available (its inputs set to missing).

        LightGBM scores a missing input the way it learnt missing values in training, so this
        is the risk a clinician would see without that test.

        Returns
        -------
        DataFrame
            One row per scenario (``all available``, ``without scan``, ``without genomics``,
            ``without EHR``): ``scenario, modality, risk, change`` (risk minus the full risk).
        """
        X = self.feature_row(self.patient(patient_id))
        names = np.asarray(self.features.names)
        modalities = np.asarray(self.features.modalities)
        scenarios: list[tuple[str, str | None]] = [
            ("all available", None),
            ("without scan", "imaging"),
            ("without genomics", "genomics"),
            ("without EHR", "ehr"),
        ]
        rows = []
        for _, modality in scenarios:
            edited = X.copy()
            if modality is not None:
                edited.loc[:, list(names[modalities == modality])] = np.nan
            rows.append(edited)
        risks = self.model.predict_proba(pd.concat(rows))[:, 1]
        return pd.DataFrame(
            {
                "scenario": [name for name, _ in scenarios],
                "modality": [m or "" for _, m in scenarios],
                "risk": risks,
                "change": risks - risks[0],
            }
        )

    def top_features(self, patient_id: str, *, per_modality: int = 3) -> pd.DataFrame:
        """The largest SHAP contributions within each modality, with the patient's values.

        Returns
        -------
        DataFrame
            ``modality, label, value, unit, shap``; at most ``per_modality`` rows per
            modality, modalities in :data:`fusion.features.MODALITIES` order, each sorted by
            ``|shap|`` descending.
        """
        if per_modality < 1:
            raise ValueError(f"per_modality={per_modality}; pass an integer >= 1.")
        contributions = self.explain(patient_id).contributions  # sorted by |shap|
        parts = [
            contributions[contributions["modality"] == m].head(per_modality) for m in MODALITIES
        ]
        columns = ["modality", "label", "value", "unit", "shap"]
        return pd.concat(parts).loc[:, columns].reset_index(drop=True)
