"""The facade the dashboard pages and the command line call: :class:`RiskService`.

Owns the serving process's loaded models (:mod:`fusion.service.loaded_models`), loading one
patient per request (:meth:`RiskService.load_patient`) and handing the case to the use-case
modules: :mod:`~fusion.service.patient` (risk, interval, explanations, what-ifs),
:mod:`~fusion.service.evidence` (image maps, similar patients),
:mod:`~fusion.service.forecasting` (treatment forecasts, guided demo),
:mod:`~fusion.service.cohort` (registry, performance, audits) and
:mod:`~fusion.service.audit_trail`. Patient methods take a loaded case or a patient id (then
the case is loaded for that call). Every query touches one patient or one page of patients.
Renders no HTML (see :mod:`fusion.reports.patient_report`); must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from data.store import CohortStore, DataStamp, PatientRecord, make_engine
from data.vocabulary import MaskableModality
from fusion.admin.access import Identity
from fusion.evaluation.disclosure import ThresholdChoice
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.flags import AuditOptions
from fusion.evaluation.importance import ShapSummary
from fusion.evaluation.performance import PerformanceReport
from fusion.explanations.imaging_trust import imaging_map_trust
from fusion.explanations.map_trust import MapTrustReport
from fusion.explanations.similar import SimilarityIndex
from fusion.forecast.patient import PatientForecast
from fusion.records import (
    ImageMaps,
    MapMethod,
    ModelInfo,
    PatientExplanation,
    RiskResult,
    WhatIfResult,
)
from fusion.service import audit_trail, cohort, evidence, forecasting, patient
from fusion.service.cohort_views import CohortViews
from fusion.service.guided_demo import StoryPatient
from fusion.service.loaded_models import (
    LoadedModels,
    configure_threads,
    load_models,
    model_info,
    with_explanations,
)
from fusion.service.patient_case import PatientCase, load_case
from fusion.settings import DEFAULT_MIN_CELL, Settings
from fusion.uncertainty import RiskInterval

__all__ = ["RiskService", "configure_threads"]


class RiskService:
    """Per-patient and cohort use cases over the active models.

    Parameters
    ----------
    store : CohortStore
        The cohort store.
    artifacts_dir : Path
        Where model files and scans live (paths in the store are relative to it).
    min_cell : int, default=DEFAULT_MIN_CELL
        The configured suppression floor of cohort views (``RISKFUSION_MIN_CELL``).

    Raises ``data.errors.StoreNotBuiltError`` if no fusion or imaging model is active, and
    ``data.errors.ArtifactIntegrityError`` if a model file is missing or differs from its SHA-256.
    """

    def __init__(
        self, store: CohortStore, artifacts_dir: Path, *, min_cell: int = DEFAULT_MIN_CELL
    ) -> None:
        self.store = store
        self.artifacts_dir = Path(artifacts_dir)
        self.min_cell_floor = int(min_cell)
        self.models = load_models(store, self.artifacts_dir)
        self.version = self.models.version  # the active fusion version
        self.model = self.models.model
        self.nets = list(self.models.nets)
        self.features = self.models.features
        self.interval_calibration = self.models.interval_calibration
        self.interval_reason = self.models.interval_reason  # why none is served ("" if one is)
        self._forecasts = forecasting.ForecastLoader()
        # Cohort views: stored per data stamp in the store, computed once (cohort_views).
        self.cohort = CohortViews(store, self.models, lambda: self.min_cell_floor)

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskService:
        """Open the store named by ``settings`` and load its active models."""
        store = CohortStore(make_engine(settings.database_url))
        return cls(store, settings.artifacts_dir, min_cell=settings.min_cell)

    def load_patient(self, patient_id: str) -> PatientCase:
        """One patient for one request, read with one query set (see :func:`load_case`)."""
        return load_case(self.store, self.models, patient_id)

    def _case(self, case: PatientCase | str) -> PatientCase:
        return case if isinstance(case, PatientCase) else self.load_patient(case)

    def patient(self, patient_id: str) -> PatientRecord:
        """Everything stored about one patient (raises PatientNotFoundError)."""
        return self.store.get_patient(patient_id)

    def predict(self, case: PatientCase | str) -> RiskResult:
        """Fused risk of one patient under the active model."""
        return patient.predict(self.models, self._case(case))

    def explain(self, case: PatientCase | str) -> PatientExplanation:
        """Exact TreeSHAP attribution of one patient's fused risk (stored when present)."""
        return patient.explain(self.models, self._case(case))

    def explain_live(self, case: PatientCase | str) -> PatientExplanation:
        """Like :meth:`explain`, always computed now (for checks and timing)."""
        return patient.explain_features(self.models, self._case(case).X)

    def explain_without(
        self, case: PatientCase | str, missing: Sequence[MaskableModality]
    ) -> PatientExplanation:
        """Live attribution of the risk if the ``missing`` modalities were unavailable."""
        return patient.explain_without(self.models, self._case(case), missing)

    def what_if(self, case: PatientCase | str, overrides: Mapping[str, float]) -> WhatIfResult:
        """Risk and attribution before and after what-if edits (:func:`patient.what_if`)."""
        return patient.what_if(self.models, self._case(case), overrides)

    def modality_what_if(self, case: PatientCase | str) -> pd.DataFrame:
        """Fused risk if one modality were not available (:func:`patient.modality_what_if`)."""
        return patient.modality_what_if(self.models, self._case(case))

    def top_features(self, case: PatientCase | str, *, per_modality: int = 3) -> pd.DataFrame:
        """The largest SHAP contributions within each modality, with the patient's values."""
        return patient.top_features(self.explain(case), per_modality=per_modality)

    def risk_interval(
        self, case: PatientCase | str, *, missing: Sequence[MaskableModality] = ()
    ) -> RiskInterval:
        """Calibrated interval of one patient's fused risk; CohortError(interval_reason) if none."""
        return patient.risk_interval(self.models, self._case(case), missing)

    def image_maps(self, case: PatientCase | str, method: MapMethod = "gradcam") -> ImageMaps:
        """Scan and saliency map of one patient (:func:`evidence.image_maps`)."""
        return evidence.image_maps(self.models, self._case(case), self.artifacts_dir, method)

    def data_stamp(self) -> DataStamp:
        """What the active version's cohort views are computed from (:func:`cohort.data_stamp`)."""
        return cohort.data_stamp(self.store, self.version)

    def _indexed(self) -> LoadedModels:
        """The models with the newest similar-patient index (``score`` refreshes it)."""
        explanations = self.data_stamp().explanations
        self.models = with_explanations(self.store, self.models, self.artifacts_dir, explanations)
        return self.models

    @property
    def similarity_index(self) -> SimilarityIndex | None:
        """The active version's newest similar-patient index (None if it has none)."""
        return self._indexed().similarity_index

    def similar_patients(
        self, case: PatientCase | str, *, k: int = 5, missing: Sequence[MaskableModality] = ()
    ) -> pd.DataFrame:
        """The ``k`` nearest reference patients in SHAP space (see :mod:`evidence`)."""
        return evidence.similar_patients(
            self.store, self._indexed(), self._case(case), k=k, missing=missing
        )

    def forecast(
        self, case: PatientCase | str, *, overrides: Mapping[str, float] | None = None
    ) -> PatientForecast:
        """Risk over time under each treatment option (:func:`forecasting.forecast`)."""
        model, version = self._forecasts.load(self.store, self.artifacts_dir, self.version)
        return forecasting.forecast(self.models, model, version, self._case(case), overrides)

    def forecast_proof(self) -> pd.DataFrame | None:
        """Test-split effect recovery of the forecast methods (None if absent)."""
        return forecasting.forecast_proof(forecasting.forecast_record(self.store, self.version))

    def forecast_calibration(self) -> tuple[pd.DataFrame, Mapping[str, float]] | None:
        """Calibration of the horizon risk under the received treatment (None if absent)."""
        record = forecasting.forecast_record(self.store, self.version)
        return forecasting.forecast_calibration(record)

    def guided_demo_patients(self, *, n_candidates: int = 20) -> tuple[StoryPatient, StoryPatient]:
        """The guided demo's two patients (:func:`forecasting.guided_demo_patients`)."""
        model, _ = self._forecasts.load(self.store, self.artifacts_dir, self.version)
        return forecasting.guided_demo_patients(
            self.store, self.models, model, self.artifacts_dir, n_candidates=n_candidates
        )

    def model_info(self) -> ModelInfo:
        """The active fusion model, its test AUROC, baselines and threshold."""
        return model_info(self.models)

    def map_trust(self) -> MapTrustReport | None:
        """Localisation, faithfulness and additivity measured at build time (None if absent)."""
        metrics = self.models.fusion_record.metrics.get("map_trust")
        return None if metrics is None else MapTrustReport.from_metrics(metrics)

    imaging_map_trust = imaging_map_trust  # issue 16: the imaging maps' stored trust figures

    def interval_metrics(self) -> Mapping[str, Any] | None:
        """Method, level, size and test coverage of the interval (None if not built)."""
        record = self.models.interval_record
        return None if record is None else dict(record.metrics)

    def explanation_metrics(self) -> Mapping[str, Any] | None:
        """Batch explanation job: rows stored, reference size, additivity (None if absent)."""
        record = self._indexed().explanations_record
        return None if record is None else dict(record.metrics)

    def build_params(self) -> dict[str, Any]:
        """How the active model was built (``n_patients, seed, ..., bias``); {} if unknown."""
        return dict(self.models.fusion_record.params.get("build", {}))

    def search_patients(self, query: str = "", **page: Any) -> pd.DataFrame:
        """One keyset page of patients (id prefix search) with their stored risk.

        ``page``: ``split``, ``limit`` and the anchor (``after``, ``before`` or ``from_end``)
        of :meth:`data.store.CohortStore.search_patients`.
        """
        return self.store.search_patients(query, model_version=self.version, **page)

    def count_patients(self, split: str | None = None, query: str = "") -> int:
        """Number of stored patients (optionally in one split, with an id prefix)."""
        return self.store.count_patients(split, query)

    def iter_predictions(self, *, chunk_size: int = 50_000) -> Iterator[pd.DataFrame]:
        """Stream the active version's predictions for export, in chunks."""
        yield from self.store.iter_prediction_rows(self.version, chunk_size=chunk_size)

    def list_models(self) -> pd.DataFrame:
        """The model registry, one row per complete fusion version (:func:`cohort.list_models`)."""
        return cohort.list_models(self.store, self.artifacts_dir)

    def test_predictions(self, options: AuditOptions | None = None) -> pd.DataFrame:
        """Test-split risks and attributes (a copy; ``options.age_cuts``: other age bands)."""
        return cohort.rebanded(self.cohort.test_predictions(), options)

    def min_cell_for(
        self, identity: Identity | None, requested: int | None = None, *, view: str = "cohort"
    ) -> int:
        """The suppression floor of a cohort view for ``identity`` (:func:`cohort.min_cell_for`)."""
        floor = self.min_cell_floor
        return cohort.min_cell_for(self.store, self.version, floor, identity, requested, view=view)

    def threshold_choice(
        self, requested: float, identity: Identity | None, min_cell: int, by: Sequence[str] = ()
    ) -> ThresholdChoice:
        """The threshold a cohort view applies (a researcher's snaps to stored cut points)."""
        return self.cohort.threshold_choice(requested, identity, min_cell, by)

    def performance(
        self,
        *,
        threshold: float | None = None,
        n_resamples: int = 200,
        random_state: int = 0,
        min_cell: int | None = None,
        identity: Identity | None = None,
    ) -> PerformanceReport:
        """Test-split performance and modality ablation (default: the model's threshold)."""
        resamples = {"n_resamples": n_resamples, "random_state": random_state}
        return self.cohort.performance(
            threshold=threshold, min_cell=min_cell, identity=identity, **resamples
        )

    def performance_through(
        self, report: PerformanceReport, cuts: Sequence[float]
    ) -> PerformanceReport:
        """``report`` with its curves drawn through a researcher's ``cuts`` only."""
        return self.cohort.through(report, cuts)

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
        options: AuditOptions | None = None,
    ) -> FairnessReport:
        """Bias audit of the test split over 1-3 attributes (:func:`cohort.audit`)."""
        return self.cohort.audit(
            by,
            threshold=threshold,
            reference=reference,
            min_cell=min_cell,
            n_resamples=n_resamples,
            random_state=random_state,
            identity=identity,
            options=options,
        )

    def test_shap(self, *, top_n: int = 10) -> ShapSummary:
        """Global TreeSHAP importance over the test split (no per-patient table)."""
        return self.cohort.test_shap(top_n=top_n)

    def modality_reliance(
        self, by: Sequence[str], *, min_cell: int | None = None, identity: Identity | None = None
    ) -> pd.DataFrame:
        """Mean |SHAP| per modality by group (:func:`cohort.reliance_by_group`)."""
        return self.cohort.modality_reliance(by, min_cell=min_cell, identity=identity)

    def group_curves(
        self,
        by: Sequence[str],
        *,
        min_cell: int | None = None,
        identity: Identity | None = None,
        threshold: float | None = None,
        cut_points: Sequence[float] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """ROC and calibration curves per shown group (:func:`cohort.curves_by_group`)."""
        return self.cohort.group_curves(
            by, min_cell=min_cell, identity=identity, threshold=threshold, cut_points=cut_points
        )

    def record_event(
        self,
        identity: Identity,
        action: str,
        *,
        patient_id: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Append ``action`` by ``identity`` to the audit trail, under the active version."""
        audit_trail.record_event(
            self.store, self.version, identity, action, patient_id=patient_id, detail=detail
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
        return audit_trail.audit_trail_csv(self.store, action=action, chunk_size=chunk_size)
