"""Use cases the dashboard pages and the command line call.

Owns :class:`RiskService`: loading the active models (SHA-256 verified), and per-patient risk,
SHAP explanation and image maps, each returned as a frozen record or a DataFrame. Every query
touches one patient or one page of patients, so it stays fast with 1M stored patients.
Streamlit is never imported here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from data.errors import ArtifactIntegrityError, CohortError, NotScoredError, StoreNotBuiltError
from data.store import AuditEntry, CohortStore, ModelRecord, PatientRecord, make_engine
from data.vocabulary import MASKABLE_MODALITIES, MODALITIES, MaskableModality
from fusion.admin.access import Identity
from fusion.evaluation.disclosure import resolve_min_cell
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.fairness import audit as fairness_audit
from fusion.evaluation.performance import (
    PerformanceReport,
    ShapSummary,
    add_age_band,
    check_attributes,
    evaluate_performance,
    group_curves,
    modality_reliance,
    summarise_shap,
)
from fusion.explain import make_explainer, modality_sums, shap_values
from fusion.explanations.map_trust import MapTrustReport
from fusion.explanations.occlusion import FusedImageScorer, occlusion_map
from fusion.explanations.similar import SimilarityIndex, load_index
from fusion.features import (
    DERIVED_DEMOGRAPHICS,
    IMAGE_FEATURE,
    FeatureSet,
    build_feature_matrix,
    image_scores,
)
from fusion.forecast.hazard import (
    FORECAST_KIND,
    FORECAST_SUFFIX,
    REFERENCE_TREATMENT,
    TREATMENTS,
    HazardForecaster,
    PatientForecast,
    compare_options,
    make_patient_forecast,
)
from fusion.model import REBUILD_HINT, FusionClassifier, file_sha256
from fusion.reports.exports import safe_csv
from fusion.reports.patient_report import render_patient_report
from fusion.service.guided_demo import StoryPatient, choose_high_risk, choose_treatment_benefit
from fusion.settings import DEFAULT_MIN_CELL, Settings
from fusion.training.serving_artifacts import EXPLANATIONS_SUFFIX, INTERVAL_SUFFIX
from fusion.training.versions import check_version
from fusion.uncertainty import IntervalCalibration, RiskInterval, load_calibration, risk_interval
from fusion.what_if import WhatIfResult, apply_overrides
from models.gradcam import GradCamExplainer
from models.nets import RiskCNN, load_net
from models.transforms import normalize_scan

__all__ = [
    "ImageMaps",
    "ModelInfo",
    "PatientExplanation",
    "PatientForecast",
    "RiskInterval",
    "RiskResult",
    "RiskService",
    "configure_threads",
]

logger = logging.getLogger(__name__)

REGISTRY_COLUMNS = (
    "version",
    "created_at",
    "active",
    "test_auroc",
    "imaging_version",
    "trained_on",
    "patients",
    "data_fingerprint",
    "parts",
)

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
    age: float | None = None
    sex: str | None = None
    site: str | None = None
    cohort: str | None = None  # the identity facts above are read with the risk's inputs

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
    source : {"live", "store"}
        ``"store"``: read from the batch explanations of the model version; ``"live"``:
        computed for this request (new patients, what-ifs).
    """

    risk: float
    base_value: float
    margin: float
    contributions: pd.DataFrame
    modality_totals: Mapping[str, float]
    source: Literal["live", "store"] = "live"


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


def configure_threads(torch_threads: int = 1) -> None:
    """Set torch's intra-op threads for per-request work (call once per serving process).

    One request explains one scan; with 2 cores shared by LightGBM's OpenMP threads and other
    sessions, a second torch thread oversubscribes the cores (``riskfusion bench``,
    ``patient_explorer.page_compute_ms_stored_patient``; see ``docs/models.md``).

    Raises
    ------
    ValueError
        If ``torch_threads`` is below 1.
    """
    if torch_threads < 1:
        raise ValueError(f"torch_threads={torch_threads}; pass a positive thread count (1).")
    torch.set_num_threads(torch_threads)


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

    def __init__(
        self, store: CohortStore, artifacts_dir: Path, *, min_cell: int = DEFAULT_MIN_CELL
    ) -> None:
        self.store = store
        self.artifacts_dir = Path(artifacts_dir)
        # Issue 13: the configured suppression floor (RISKFUSION_MIN_CELL) of cohort views.
        self.min_cell_floor = int(min_cell)
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
        # Issue 5: the treatment-forecast model, loaded on first use (see forecast()).
        self._forecaster: HazardForecaster | None = None
        self._forecast_lock = threading.Lock()
        # Issue 3: interval calibration and similar-patient index of this version (None if
        # absent; a build from before the calibrated interval has none until it is rebuilt).
        self._interval_record, self._explanations_record = self._explorer_records()
        self.interval_calibration: IntervalCalibration | None = (
            None
            if self._interval_record is None or "target" not in self._interval_record.params
            else load_calibration(
                self.artifacts_dir / self._interval_record.artifact_path,
                expected_sha256=self._interval_record.sha256,
            )
        )
        self.similarity_index: SimilarityIndex | None = (
            None
            if self._explanations_record is None
            else load_index(
                self.artifacts_dir / self._explanations_record.artifact_path,
                expected_sha256=self._explanations_record.sha256,
            )
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskService:
        """Open the store named by ``settings`` and load its active models."""
        return cls(
            CohortStore(make_engine(settings.database_url)),
            settings.artifacts_dir,
            min_cell=settings.min_cell,
        )

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
    def build_params(self) -> dict[str, Any]:
        """How the active model was built (``n_patients, seed, ..., bias``); {} if unknown."""
        return dict(self._fusion_record.params.get("build", {}))

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

    def min_cell_for(
        self, identity: Identity | None, requested: int | None = None, *, view: str = "cohort"
    ) -> int:
        """The suppression floor of a cohort view for ``identity`` (issue 13).

        ``requested`` None takes the configured floor (``RISKFUSION_MIN_CELL``). Anyone may
        raise it; only an admin may lower it, and each lowering is written to the audit trail
        (action ``lower_suppression``, with the view and both values). A caller without an
        identity gets the floor or more.

        Raises
        ------
        fusion.admin.access.AccessDeniedError
            If a non-admin asks for less than the configured floor.
        """
        floor = self.min_cell_floor
        min_cell = resolve_min_cell(identity, requested, floor)
        if identity is not None and min_cell < floor:
            self.record_event(
                identity,
                "lower_suppression",
                detail={"view": view, "min_cell": min_cell, "configured": floor},
            )
        return min_cell

    def performance(
        self,
        *,
        threshold: float | None = None,
        n_resamples: int = 200,
        random_state: int = 0,
        min_cell: int | None = None,
        identity: Identity | None = None,
    ) -> PerformanceReport:
        """Test-split performance and modality ablation (default: the model's threshold).

        ``min_cell`` (default the configured floor) goes through :meth:`min_cell_for`.
        """
        return evaluate_performance(
            self.test_predictions(),
            model_version=self._fusion_record.version,
            threshold=self.model_info().threshold if threshold is None else threshold,
            n_resamples=n_resamples,
            random_state=random_state,
            min_cell=self.min_cell_for(identity, min_cell, view="performance"),
        )

    def audit(
        self,
        by: Sequence[str],
        *,
        threshold: float | None = None,
        reference: str | None = None,
        min_cell: int | None = None,
        n_resamples: int = 200,
        random_state: int = 0,
        identity: Identity | None = None,
    ) -> FairnessReport:
        """Bias audit of the active model on the test split over 1-3 attributes (intersected).

        ``by`` names attributes of :data:`fusion.evaluation.performance.AUDIT_ATTRIBUTES`; see
        :func:`fusion.evaluation.fairness.audit` for the metrics, disparities and suppression.
        ``min_cell`` (default the configured floor) goes through :meth:`min_cell_for`.
        """
        names = check_attributes(by)
        min_cell = self.min_cell_for(identity, min_cell, view="audit")
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
            min_cell=self.min_cell_floor,
        )

    def modality_reliance(
        self,
        by: Sequence[str],
        *,
        min_cell: int | None = None,
        identity: Identity | None = None,
    ) -> pd.DataFrame:
        """Mean |SHAP| per modality by group of 1-3 attributes (test split, small suppressed).

        See :func:`fusion.evaluation.performance.modality_reliance`; ``min_cell`` as in
        :meth:`audit`.
        """
        names = check_attributes(by)
        min_cell = self.min_cell_for(identity, min_cell, view="reliance")
        attributes = self.test_predictions().set_index("patient_id").loc[:, list(names)]
        return modality_reliance(self.test_shap().per_patient, attributes, min_cell=min_cell)

    def group_curves(
        self,
        by: Sequence[str],
        *,
        min_cell: int | None = None,
        identity: Identity | None = None,
        threshold: float | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """ROC and calibration curves per shown group of the test split.

        See :func:`fusion.evaluation.performance.group_curves` (suppression included); ``min_cell``
        as
        in :meth:`audit`, ``threshold`` (default the model's) a boundary of the coarse ROC.
        """
        names = check_attributes(by)
        min_cell = self.min_cell_for(identity, min_cell, view="group curves")
        return group_curves(
            self.test_predictions(),
            names,
            min_cell=min_cell,
            threshold=self.model_info().threshold if threshold is None else threshold,
        )

    def list_models(self) -> pd.DataFrame:
        """The model registry, one row per complete fusion version, newest first.

        A version is listed only when its training finished and every part is registered and
        its files match their SHA-256 (:func:`fusion.training.versions.check_version`); the active
        version is always listed.

        Columns: ``version, created_at, active, test_auroc, imaging_version, trained_on,
        patients, data_fingerprint`` (first 12 hex digits of the training data's SHA-256, empty
        for versions trained before it was recorded) and ``parts`` (the baselines, interval,
        explanations and forecast registered with the version).
        """
        records = self.store.list_models()
        by_version = {record.version: record for record in records}
        rows = []
        for record in records:
            if record.kind != "fusion":
                continue
            if (
                not record.is_active
                and not check_version(by_version, self.artifacts_dir, record.version).complete
            ):
                continue  # unfinished or damaged: never offered (riskfusion activate refuses it)
            prefix = f"{record.version}-"
            parts = sorted(
                r.version.removeprefix(prefix) for r in records if r.version.startswith(prefix)
            )
            data = record.params.get("training_data", {})
            rows.append(
                {
                    "version": record.version,
                    "created_at": record.created_at.isoformat(timespec="seconds"),
                    "active": record.is_active,
                    "test_auroc": float(record.metrics.get("test_auroc", np.nan)),
                    "imaging_version": record.parent_version or "",
                    "trained_on": ", ".join(data.get("sources", [])),
                    "patients": data.get("n_patients"),
                    "data_fingerprint": str(data.get("fingerprint", ""))[:12],
                    "parts": ", ".join(parts),
                }
            )
        return pd.DataFrame(rows, columns=REGISTRY_COLUMNS)

    # ------------------------------------------------------------------ one patient
    def patient(self, patient_id: str) -> PatientRecord:
        """Everything stored about one patient (raises PatientNotFoundError)."""
        return self.store.get_patient(patient_id)

    def _scan_logits(self, record: PatientRecord, image_id: int) -> pd.DataFrame:
        """The scan's logit under every active imaging net (``fold, in_training, logit``).

        Raises
        ------
        data.errors.NotScoredError
            If some net has not embedded the scan yet (``riskfusion score`` has not reached
            the patient): a risk from the other nets, or without the scan, would be partial.
        """
        rows = self.store.image_logits(image_id, self._imaging_record.version)
        if rows["fold"].nunique() < len(self.nets):
            raise NotScoredError(
                f"Patient {record.patient_id!r} has a scan that the active imaging model "
                f"{self._imaging_record.version} has not embedded yet, so no risk is shown; "
                "run `riskfusion score` (or Score on the Data page) and open the patient again."
            )
        return rows

    def _image_score(self, record: PatientRecord) -> float | None:
        if record.image is None:
            return None
        rows = self._scan_logits(record, record.image.image_id)
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
            age=record.age,
            sex=record.sex,
            site=record.site,
            cohort=record.source or None,
        )

    def explain(self, patient_id: str) -> PatientExplanation:
        """Exact TreeSHAP attribution of one patient's fused risk.

        Read from the explanations stored for the active version when present (``source ==
        "store"``, one indexed row); computed live otherwise.
        """
        X = self.feature_row(self.patient(patient_id))
        stored = self.store.get_explanation(self._fusion_record.version, patient_id)
        if stored is None:
            return self.explain_features(X)
        return self._explanation_from(X, stored[0], stored[1], source="store")

    def explain_live(self, patient_id: str) -> PatientExplanation:
        """Like :meth:`explain`, always computed now (for checks and timing)."""
        return self.explain_features(self.feature_row(self.patient(patient_id)))

    def explain_features(self, X: pd.DataFrame) -> PatientExplanation:
        """Exact TreeSHAP attribution of one feature row, shape (1, n_features)."""
        if len(X) != 1:
            raise ValueError(f"Got {len(X)} feature rows; pass exactly one (one patient).")
        result = shap_values(self.model, X, explainer=self._tree_explainer)
        values = np.asarray(result.values[0], dtype=np.float64)
        return self._explanation_from(X, result.base_value, values, source="live")

    def what_if(self, patient_id: str, overrides: Mapping[str, float]) -> WhatIfResult:
        """Risk and SHAP attribution of one patient before and after editing modifiable inputs.

        The edited row goes through the same model and explainer as :meth:`explain`; the image
        score (the scan embedding) stays fixed.

        Parameters
        ----------
        patient_id : str
            The patient.
        overrides : mapping of str to float
            Edits of inputs in :data:`fusion.what_if.EDITABLE`, e.g. ``{"smoking": 0}``; an
            empty mapping gives ``after == before``.

        Returns
        -------
        WhatIfResult
            ``before`` and ``after`` explanations and the table of edited values.

        Raises
        ------
        ValueError
            If an override is unknown, not modifiable, not finite or out of range (see
            :func:`fusion.what_if.validate_overrides`).
        data.errors.PatientNotFoundError
            If the patient is not in the store.
        """
        X = self.feature_row(self.patient(patient_id))
        edited = apply_overrides(X, overrides)
        names = [name for name in self.features.names if name in overrides]
        position = {name: i for i, name in enumerate(self.features.names)}
        changes = pd.DataFrame(
            {
                "feature": names,
                "label": [self.features.labels[position[n]] for n in names],
                "unit": [self.features.units[position[n]] for n in names],
                "before": [float(X[n].iloc[0]) for n in names],
                "after": [float(edited[n].iloc[0]) for n in names],
            }
        )
        return WhatIfResult(
            patient_id=patient_id,
            overrides={n: float(edited[n].iloc[0]) for n in names},
            before=self.explain_features(X),
            after=self.explain_features(edited),
            changes=changes,
        )

    def guided_demo_patients(self, *, n_candidates: int = 20) -> tuple[StoryPatient, StoryPatient]:
        """The guided demo's two patients, chosen deterministically from the test split.

        Among the ``n_candidates`` highest-risk test patients (ties by id): first, the
        highest-risk one whose scan shows a lesion (see
        :func:`fusion.service.guided_demo.choose_high_risk`); second, another one whose best
        treatment
        has the largest model-estimated absolute risk reduction at the forecast horizon (see
        :func:`fusion.service.guided_demo.choose_treatment_benefit`). Costs one top-k query on the
        ``(model_version, risk)`` index, ``n_candidates`` patient look-ups and one batched
        forecast, whatever the cohort size.

        Raises
        ------
        ValueError
            If ``n_candidates < 1`` or the test split has no scored patients.
        """
        if n_candidates < 1:
            raise ValueError(f"n_candidates={n_candidates}; pass an integer >= 1.")
        top = self.store.top_risks(self._fusion_record.version, split="test", limit=n_candidates)
        if top.empty:
            raise ValueError("The test split has no scored patients; run `riskfusion score`.")
        records = [self.patient(str(pid)) for pid in top["patient_id"]]
        top["has_scan"] = [record.image is not None for record in records]
        top["has_lesion"] = [self._has_lesion(record) for record in records]
        first = choose_high_risk(top)
        model, _ = self.forecast_model()  # one batched forecast of every candidate
        X = pd.concat([self.feature_row(record) for record in records])
        # Anchored as served: the story shows the same curves as the forecast page.
        curves = model.predict_anchored(
            X, [record.treatment for record in records], self.model.predict_proba(X)[:, 1]
        )[0]
        risk = curves[:, :, -1]
        reference = risk[:, TREATMENTS.index(REFERENCE_TREATMENT)]
        arr = reference - risk.min(axis=1)  # ARR of the best option (lowest risk) vs none
        second = choose_treatment_benefit(top.assign(arr=arr), exclude=first.patient_id)
        return first, second

    def _has_lesion(self, record: PatientRecord) -> bool:
        """Whether the patient's true lesion mask (synthetic cohorts) has any lesion pixel."""
        if record.image is None or record.image.mask_path is None:
            return False
        path = self.artifacts_dir / record.image.mask_path
        return path.is_file() and bool(np.load(path, allow_pickle=False).any())

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
        rows = self._scan_logits(record, record.image.image_id)
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
            ``modality, label, value, unit, shap, feature``; at most ``per_modality`` rows per
            modality, modalities in :data:`fusion.features.MODALITIES` order, each sorted by
            ``|shap|`` descending.
        """
        if per_modality < 1:
            raise ValueError(f"per_modality={per_modality}; pass an integer >= 1.")
        contributions = self.explain(patient_id).contributions  # sorted by |shap|
        parts = [
            contributions[contributions["modality"] == m].head(per_modality) for m in MODALITIES
        ]
        columns = ["modality", "label", "value", "unit", "shap", "feature"]
        return pd.concat(parts).loc[:, columns].reset_index(drop=True)

    # ------------------------------------------------------------------ issue 3: explorer
    def _explorer_records(self) -> tuple[ModelRecord | None, ModelRecord | None]:
        """The interval and explanations records built with the active fusion version."""
        version = self._fusion_record.version
        by_version = {record.version: record for record in self.store.list_models()}
        return (
            by_version.get(f"{version}{INTERVAL_SUFFIX}"),
            by_version.get(f"{version}{EXPLANATIONS_SUFFIX}"),
        )

    def _explanation_from(
        self,
        X: pd.DataFrame,
        base_value: float,
        values: npt.NDArray[np.float64],
        *,
        source: Literal["live", "store"],
    ) -> PatientExplanation:
        """A :class:`PatientExplanation` from one row's SHAP values (model input order)."""
        if values.shape != (len(self.features.names),):
            raise ArtifactIntegrityError(
                f"Stored SHAP vector has shape {values.shape}; the model has "
                f"{len(self.features.names)} inputs; {REBUILD_HINT}."
            )
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
        totals = modality_sums(values[np.newaxis, :], self.features.modalities, MODALITIES)
        margin = float(base_value + values.sum())
        return PatientExplanation(
            risk=float(1.0 / (1.0 + np.exp(-margin))),
            base_value=float(base_value),
            margin=margin,
            contributions=contributions.iloc[order].reset_index(drop=True),
            modality_totals={str(k): float(v) for k, v in totals.iloc[0].items()},
            source=source,
        )

    def _without(self, X: pd.DataFrame, missing: Sequence[str]) -> pd.DataFrame:
        """``X`` with every input of the ``missing`` modalities set to missing."""
        unknown = sorted(set(missing) - set(MASKABLE_MODALITIES))
        if unknown:
            raise ValueError(
                f"Unknown what-if modalities {unknown}; choose from {list(MASKABLE_MODALITIES)}."
            )
        edited = X.copy()
        modalities = np.asarray(self.features.modalities)
        names = np.asarray(self.features.names)
        columns = list(names[np.isin(modalities, list(missing))])
        if columns:
            edited.loc[:, columns] = np.nan
        return edited

    def interval_of(self, X: pd.DataFrame) -> RiskInterval:
        """Calibrated interval of the fused risk of one feature row, shape (1, n_features).

        What it covers (``target``) and how is in :mod:`fusion.uncertainty`; modalities whose
        inputs are all missing in ``X`` select the calibration fitted without them.

        Raises
        ------
        data.errors.CohortError
            If the active version was built without a calibrated interval.
        """
        if self.interval_calibration is None:
            raise CohortError(
                "The active model was built without a calibrated risk interval; rebuild the "
                "demo (`riskfusion demo --no-serve --rebuild`)."
            )
        return risk_interval(self.interval_calibration, self.model, X)

    def risk_interval(
        self, patient_id: str, *, missing: Sequence[MaskableModality] = ()
    ) -> RiskInterval:
        """Calibrated interval of one patient's fused risk (optionally without some modalities).

        See :mod:`fusion.uncertainty` for the method and ``interval_metrics`` for its measured
        coverage of the true risk.
        """
        return self.interval_of(self._without(self.feature_row(self.patient(patient_id)), missing))

    def interval_metrics(self) -> Mapping[str, Any] | None:
        """Method, level, size and test coverage of the interval (None if not built)."""
        return None if self._interval_record is None else dict(self._interval_record.metrics)

    def explanation_metrics(self) -> Mapping[str, Any] | None:
        """Batch explanation job: rows stored, reference size, additivity (None if absent)."""
        record = self._explanations_record
        return None if record is None else dict(record.metrics)

    def explain_without(
        self, patient_id: str, missing: Sequence[MaskableModality]
    ) -> PatientExplanation:
        """Live TreeSHAP attribution of the risk if the ``missing`` modalities were unavailable.

        Raises
        ------
        ValueError
            If a modality is not one of :data:`MASKABLE_MODALITIES`.
        """
        X = self._without(self.feature_row(self.patient(patient_id)), missing)
        return self.explain_features(X)

    def similar_patients(
        self, patient_id: str, *, k: int = 5, missing: Sequence[MaskableModality] = ()
    ) -> pd.DataFrame:
        """The ``k`` nearest reference patients in SHAP space (:mod:`fusion.explanations.similar`).

        The query is the patient's stored SHAP vector (or a live one for a what-if); only the
        ``k`` neighbours are read from the store.

        Returns
        -------
        DataFrame
            ``patient_id, distance, split, age, sex, label, true_risk, risk``, nearest first.

        Raises
        ------
        data.errors.CohortError
            If the active version was built without the similar-patient index.
        """
        if self.similarity_index is None:
            raise CohortError(
                "The active model was built without a similar-patient index; rebuild the demo "
                "(`riskfusion demo --no-serve --rebuild`)."
            )
        version = self._fusion_record.version
        stored = None if missing else self.store.get_explanation(version, patient_id)
        if stored is not None:
            vector = stored[1]
        else:
            X = self._without(self.feature_row(self.patient(patient_id)), missing)
            vector = shap_values(self.model, X, explainer=self._tree_explainer).values[0]
        ids, distances = self.similarity_index.nearest(vector, k=k, exclude=[patient_id])
        summaries = self.store.patient_summaries(ids, self._fusion_record.version)
        frame = pd.DataFrame({"patient_id": ids, "distance": distances})
        return frame.merge(summaries, on="patient_id", how="inner")

    def patient_report(self, patient_id: str, method: MapMethod = "gradcam") -> str:
        """One patient's page as a self-contained HTML file (:mod:`fusion.reports.patient_report`).

        A patient without a scan file gets a report that says so instead of the overlay. When
        the active version has a forecast model, the report ends with the treatment forecast,
        anchored to the same fused risk (:meth:`forecast`).
        """
        try:
            maps: ImageMaps | None = self.image_maps(patient_id, method)
        except CohortError:
            maps = None
        forecast = self.forecast(patient_id) if self._forecast_record() is not None else None
        return render_patient_report(
            result=self.predict(patient_id),
            interval=self.risk_interval(patient_id) if self.interval_calibration else None,
            explanation=self.explain(patient_id),
            what_if=self.modality_what_if(patient_id),
            top_features=self.top_features(patient_id),
            maps=maps,
            info=self.model_info(),
            forecast=forecast,
        )

    def record_event(
        self,
        identity: Identity,
        action: str,
        *,
        patient_id: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Append ``action`` by ``identity`` to the audit trail, under the active model version.

        See :data:`data.store.AUDIT_ACTIONS` for the actions; ``detail`` is small JSON-able
        context (page, overrides, export format). Never logs the patient id.
        """
        self.store.record_event(
            AuditEntry(
                actor=identity.user,
                role=identity.role,
                action=action,
                patient_id=patient_id,
                model_version=self._fusion_record.version,
                detail=dict(detail or {}),
            )
        )

    def audit_trail(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        action: str | None = None,
        patient_id: str | None = None,
    ) -> pd.DataFrame:
        """One page of the audit trail, newest first (see :meth:`CohortStore.audit_events`)."""
        return self.store.audit_events(
            limit=limit, before_id=before_id, action=action, patient_id=patient_id
        )

    def audit_trail_csv(self, *, action: str | None = None, chunk_size: int = 10_000) -> str:
        """The whole audit trail (optionally one action) as CSV, read in keyset pages."""
        pages: list[pd.DataFrame] = []
        before_id: int | None = None
        while True:
            page = self.audit_trail(limit=chunk_size, before_id=before_id, action=action)
            if page.empty:
                break
            pages.append(page)
            before_id = int(page["event_id"].min())
        columns = list(self.store.audit_events(limit=1).columns)
        frame = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=columns)
        return safe_csv(frame)

    # ------------------------------------------------------------------ issue 5: forecasts
    def _forecast_record(self) -> ModelRecord | None:
        """The forecast model built with the active fusion version (None if absent)."""
        version = f"{self._fusion_record.version}{FORECAST_SUFFIX}"
        for record in self.store.list_models(FORECAST_KIND):
            if record.version == version:
                return record
        return None

    def forecast_model(self) -> tuple[HazardForecaster, str]:
        """The active version's forecast model (SHA-256 verified, loaded once) and its version.

        Raises
        ------
        data.errors.StoreNotBuiltError
            If the active fusion version was built without a forecast model.
        data.errors.ArtifactIntegrityError
            If a model file is missing or differs from its registered SHA-256.
        """
        record = self._forecast_record()
        if record is None:
            raise StoreNotBuiltError(
                "The active model was built without a treatment-forecast model; rebuild the "
                "demo (`riskfusion demo --no-serve --rebuild`)."
            )
        with self._forecast_lock:
            if self._forecaster is None:
                self._forecaster = HazardForecaster.load(
                    self.artifacts_dir / record.artifact_path, expected_sha256=record.sha256
                )
        return self._forecaster, record.version

    def forecast(
        self, patient_id: str, *, overrides: Mapping[str, float] | None = None
    ) -> PatientForecast:
        """Cumulative risk over time under each treatment option for one patient.

        A research and demonstration estimate (see :data:`fusion.forecast.hazard.FORECAST_NOTE` and
        ``docs/forecast.md``): the model adjusts for the measured confounders only. The curves
        are anchored to the fused risk (:meth:`predict`, or the what-if risk with
        ``overrides``): the curve under the treatment received reaches it at the horizon and
        the other options are the hazard model's treatment effects on top of it. The band is
        the fused risk's calibrated interval (:meth:`interval_of`) carried through the
        treatment effects, widened by their bootstrap spread.

        Parameters
        ----------
        patient_id : str
            A stored patient.
        overrides : mapping of str to float, optional
            What-if edits of modifiable inputs, validated by
            :func:`fusion.what_if.validate_overrides`. With edits the true curves are not
            shown (``true_risk`` NaN): the ground truth belongs to the recorded patient.

        Returns
        -------
        PatientForecast
            Curves from 0 to the horizon with their band, ARR / NNT against no treatment, the
            best option and whether it is distinguishable (``comparison``), the fused risk the
            curves are anchored to (``anchor_risk``) and (synthetic cohorts) the true curves.

        Raises
        ------
        ValueError
            If an override is unknown, not modifiable or out of range.
        data.errors.PatientNotFoundError
            If the patient is not in the store.
        data.errors.StoreNotBuiltError
            If the active version has no forecast model.
        """
        model, version = self.forecast_model()
        record = self.patient(patient_id)
        X = self.feature_row(record)
        if overrides:
            X = apply_overrides(X, overrides)
        fused = float(self.model.predict_proba(X)[0, 1])
        interval = None if self.interval_calibration is None else self.interval_of(X)
        risk, lower, upper, members = model.predict_anchored(
            X,
            [record.treatment],
            [fused],
            low=None if interval is None else [interval.low],
            high=None if interval is None else [interval.high],
        )
        band = (
            "band: the fused risk's interval carried through the treatment effects"
            if interval is not None
            else "band: bootstrap spread of the treatment effects only"
        )
        return make_patient_forecast(
            patient_id=record.patient_id,
            model_version=version,
            method=f"{model.describe()}; anchored to the fused risk under the treatment "
            f"received ({band})",
            times=model.times_,
            risk=risk[0],
            lower=lower[0],
            upper=upper[0],
            true_risks=None if overrides else record.counterfactual_risks,
            received_treatment=record.treatment,
            comparison=compare_options(members[:, 0, :], band=model.band),
            anchor_risk=fused,
        )

    def forecast_proof(self) -> pd.DataFrame | None:
        """Test-split effect recovery of the forecast methods and baselines (None if absent).

        Returns
        -------
        DataFrame or None
            One row per method and contrast: ``method, contrast, pehe, spearman,
            mean_effect, true_mean_effect`` (see :func:`fusion.forecast.hazard.effect_metrics`);
            methods ``s_learner`` (served), ``t_learner``, ``treatment_agnostic`` and
            ``naive_unadjusted``. None without a forecast model or ground truth.
        """
        record = self._forecast_record()
        rows = [] if record is None else record.metrics.get("effects", [])
        if not rows:
            return None
        frame = pd.DataFrame(rows)
        numeric = ["pehe", "spearman", "mean_effect", "true_mean_effect"]
        frame[numeric] = frame[numeric].astype(np.float64)
        return frame

    def forecast_calibration(self) -> tuple[pd.DataFrame, Mapping[str, float]] | None:
        """Calibration of the horizon risk under the received treatment (test split).

        Returns
        -------
        tuple (DataFrame, mapping) or None
            Deciles of predicted risk (``bin, n, predicted, observed_km, true_risk``) and the
            errors ``ece_true`` / ``ece_km``; None without a forecast model.
        """
        record = self._forecast_record()
        if record is None:
            return None
        table = pd.DataFrame(record.metrics["calibration"])
        numeric = ["predicted", "observed_km", "true_risk"]
        table[numeric] = table[numeric].astype(np.float64)
        errors = {
            key: float("nan") if record.metrics.get(key) is None else float(record.metrics[key])
            for key in ("ece_true", "ece_km")
        }
        return table, errors
