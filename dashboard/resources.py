"""Composition root: every cached resource and data getter of the dashboard.

The only home of ``st.cache_resource`` / ``st.cache_data``. Cached resources are shared across
sessions and treated as read-only. Every cohort getter is keyed by the active version's
:class:`~data.store.DataStamp` (``RiskService.data_stamp()``, one small query per run), so a
``riskfusion score`` or an import under the same version is recomputed on the next run, never
served from before it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard.state import PickerPage, get_loaded_patient, set_loaded_patient
from data.errors import CohortError
from data.store import CohortStore, DataStamp, make_engine
from fusion.admin.access import Identity
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.flags import DEFAULT_FLAG_METHOD, AuditOptions, FlagMethod
from fusion.evaluation.importance import ShapSummary
from fusion.evaluation.performance import PerformanceReport
from fusion.forecast.patient import PatientForecast
from fusion.reports.model_card import build_model_card
from fusion.service.facade import RiskService
from fusion.service.guided_demo import StoryPatient
from fusion.service.loaded_models import configure_threads
from fusion.service.patient_case import PatientCase
from fusion.service.usefulness import UsefulnessView, clinical_usefulness
from fusion.service.worst_slices import SliceView, worst_slices
from fusion.settings import Settings

__all__ = [
    "count_patients",
    "get_audit",
    "get_forecast",
    "get_forecast_proof",
    "get_group_curves",
    "get_guided_demo_patients",
    "get_model_card",
    "get_patient_summaries",
    "get_performance",
    "get_reliance",
    "get_risk_service",
    "get_settings",
    "get_test_shap",
    "get_usefulness",
    "get_worst_slices",
    "list_models",
    "load_patient_case",
    "require_risk_service",
    "search_patients",
]


@st.cache_resource
def get_settings() -> Settings:
    """Settings, read once from the environment."""
    return Settings.from_env()


@st.cache_resource
def _get_store() -> CohortStore:
    """The store's engine and pool, shared by every session."""
    store = CohortStore(make_engine(get_settings().database_url))
    store.upgrade_indexes()  # an older store gets the indexes its pages read by
    store.upgrade_audit_trail()  # seals an older store's events once (reads only otherwise)
    return store


@st.cache_resource(show_spinner="Loading models ...", max_entries=2)
def _load_risk_service(fusion_version: str) -> RiskService:
    """The risk service over the active models; ``fusion_version`` keys the cache."""
    configure_threads(1)  # one torch thread per request: measured in docs/models.md
    return RiskService(_get_store(), get_settings().artifacts_dir)


def get_risk_service() -> RiskService:
    """The risk service over the models active now.

    One primary-key query per call finds the active fusion version; a version activated since
    (``riskfusion train``, ``activate`` or a Data-page job) loads once and every page follows it,
    so no page keeps showing a replaced model.

    Raises
    ------
    data.errors.StoreNotBuiltError
        If no model is active yet.
    """
    version = _get_store().active_model("fusion").version
    service = _load_risk_service(version)
    if service.model_info().version != version:  # another version activated while loading
        _load_risk_service.clear()
        service = _load_risk_service(_get_store().active_model("fusion").version)
    return service


def require_risk_service() -> RiskService:
    """The risk service, or an error on the page that says how to build it (then stop)."""
    try:
        return get_risk_service()
    except CohortError as err:
        st.error(str(err))
        st.stop()


def load_patient_case(service: RiskService, patient_id: str) -> PatientCase:
    """The patient ``patient_id`` as this script run shows it, loaded from the store once.

    The sidebar and the page share one load per run (one query set, see
    :meth:`fusion.service.facade.RiskService.load_patient`); the next run loads afresh, so a
    page never shows values older than the run.

    Raises
    ------
    data.errors.PatientNotFoundError
        If the patient is not in the store.
    data.errors.NotScoredError
        If the patient's scan is not embedded by every active imaging net yet.
    """
    case = get_loaded_patient(patient_id, service.version)
    if case is None:
        case = service.load_patient(patient_id)
        set_loaded_patient(case)
    return case


@st.cache_data(ttl=60, show_spinner=False)
def search_patients(
    _service: RiskService,
    model_version: str,
    query: str,
    split: str | None,
    page: PickerPage,
    limit: int,
) -> pd.DataFrame:
    """The rows of one picker page (keyset: see :class:`dashboard.state.PickerPage`).

    ``model_version`` keys the cache. ``limit`` may be one more than the page shows, so that
    the picker knows whether rows lie beyond it without counting them.
    """
    return _service.search_patients(
        query,
        split=split,
        limit=limit,
        after=page.after,
        before=page.before,
        from_end=page.last,
    )


@st.cache_data(ttl=60, show_spinner=False)
def count_patients(_service: RiskService, query: str, split: str | None) -> int:
    """Patients the picker lists for ``query`` and ``split`` (an index-only count)."""
    return _service.count_patients(split, query)


PAGE_SIZE = 50


@st.cache_data(show_spinner="Evaluating the test split ...")
def get_performance(_service: RiskService, stamp: DataStamp, threshold: float) -> PerformanceReport:
    """Test-split performance and ablation; keyed by the data stamp and threshold."""
    return _service.performance(threshold=threshold)


@st.cache_data(show_spinner="Auditing ...")
def get_audit(
    _service: RiskService,
    stamp: DataStamp,
    by: tuple[str, ...],
    threshold: float,
    reference: str | None,
    min_cell: int,
    identity: Identity | None = None,
    method: str = DEFAULT_FLAG_METHOD,
) -> FairnessReport:
    """Bias audit of the test split; keyed by the data stamp, every setting and the user.

    The service applies the configured suppression floor for ``identity`` (and audits an
    admin's lowering), so a result computed for one user is never served to another.
    ``method`` is the flags' multiplicity adjustment (``holm`` or ``bh``).
    """
    return _service.audit(
        by,
        threshold=threshold,
        reference=reference,
        min_cell=min_cell,
        identity=identity,
        options=AuditOptions(method=method),  # type: ignore[arg-type]
    )


@st.cache_data(ttl=60, show_spinner=False)
def list_models(_service: RiskService, stamp: DataStamp) -> pd.DataFrame:
    """The model registry; the data stamp keys the cache."""
    return _service.list_models()


@st.cache_data(show_spinner="Computing SHAP over the test split ...")
def get_test_shap(_service: RiskService, stamp: DataStamp) -> ShapSummary:
    """Global SHAP importance and beeswarm data; keyed by the data stamp."""
    return _service.test_shap()


@st.cache_data(show_spinner=False)
def get_reliance(
    _service: RiskService,
    stamp: DataStamp,
    by: tuple[str, ...],
    min_cell: int,
    identity: Identity | None = None,
) -> pd.DataFrame:
    """Mean |SHAP| per modality by group; keyed by the data stamp, settings and user."""
    return _service.modality_reliance(by, min_cell=min_cell, identity=identity)


@st.cache_data(show_spinner=False)
def get_group_curves(
    _service: RiskService,
    stamp: DataStamp,
    by: tuple[str, ...],
    min_cell: int,
    identity: Identity | None = None,
    threshold: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC points and calibration bins per shown group; keyed by stamp, settings, user."""
    return _service.group_curves(by, min_cell=min_cell, identity=identity, threshold=threshold)


@st.cache_data(show_spinner="Decision curves and calibration ...")
def get_usefulness(
    _service: RiskService,
    stamp: DataStamp,
    by: tuple[str, ...],
    min_cell: int | None,
    identity: Identity | None = None,
) -> UsefulnessView:
    """Decision curves and calibration statistics; keyed by stamp, attributes, floor and user."""
    return clinical_usefulness(_service, by, identity=identity, min_cell=min_cell)


@st.cache_data(show_spinner="Writing the model card ...")
def get_model_card(
    _service: RiskService, stamp: DataStamp, identity: Identity | None = None
) -> dict[str, Any]:
    """The model card of the active version for ``identity``; keyed by stamp and user."""
    return build_model_card(_service, identity=identity)


@st.cache_data(show_spinner="Searching for the worst slices ...")
def get_worst_slices(
    _service: RiskService,
    stamp: DataStamp,
    min_cell: int | None,
    identity: Identity | None = None,
    adjustment: str = "holm",
) -> SliceView:
    """The slice search of the active version; keyed by stamp, floor, user and adjustment."""
    method: FlagMethod = "bh" if adjustment == "bh" else "holm"
    return worst_slices(_service, identity=identity, min_cell=min_cell, adjustment=method)


# ---------------------------------------------------------------- forecast, guided demo
@st.cache_data(max_entries=256, show_spinner="Forecasting ...")
def get_forecast(
    _service: RiskService,
    model_version: str,
    patient_id: str,
    overrides: tuple[tuple[str, float], ...] = (),
    _case: PatientCase | None = None,
) -> PatientForecast:
    """One patient's treatment forecast, optionally with what-if edits (sorted pairs).

    ``_case`` (not part of the cache key) is the patient loaded by this run, if any.
    """
    return _service.forecast(
        patient_id if _case is None else _case, overrides=dict(overrides) or None
    )


@st.cache_data(show_spinner=False)
def get_forecast_proof(_service: RiskService, model_version: str) -> pd.DataFrame | None:
    """Forecast error vs the true treatment effects on the test split; keyed by version."""
    return _service.forecast_proof()


@st.cache_data(show_spinner="Choosing the demo patients ...")
def get_guided_demo_patients(
    _service: RiskService, model_version: str
) -> tuple[StoryPatient, StoryPatient]:
    """The guided demo's two patients (deterministic per model version)."""
    return _service.guided_demo_patients()


# ---------------------------------------------------------------- the selected patient
@st.cache_data(ttl=60, show_spinner=False)
def get_patient_summaries(
    _service: RiskService, model_version: str, patient_ids: tuple[str, ...]
) -> pd.DataFrame:
    """Split, age, sex and stored risk of a few patients; ``model_version`` keys the cache."""
    return _service.store.patient_summaries(list(patient_ids), model_version)
