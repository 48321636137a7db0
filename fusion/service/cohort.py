"""Cohort-level use cases: the registry, test-split predictions, performance and bias audits.

Owns the views over many patients that the Model pages and the command line call: the model
registry as listed (complete versions only), the test split's predictions of the active model
and its baselines, performance, the bias audit, global SHAP, modality reliance and per-group
curves, each behind the suppression floor of :func:`min_cell_for`. Every read is one
split-filtered query set. Also owns the rule that keeps them fresh: every view, cache and index
is keyed by the :func:`data_stamp` of what it was computed from (:class:`StampedViews` holds
the service's own), so a ``riskfusion score`` or an import under the same version is never
answered with the numbers from before it. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from data.store import CohortStore, DataStamp
from data.store.registry import BASELINE_KIND, parts_of
from fusion.admin.access import Identity
from fusion.evaluation.disclosure import resolve_min_cell
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.fairness import audit as fairness_audit
from fusion.evaluation.flags import AuditOptions
from fusion.evaluation.groups import (
    DEFAULT_AGE_CUTS,
    add_age_band,
    audit_scope,
    audit_threshold,
    check_attributes,
    group_curves,
    modality_reliance,
)
from fusion.evaluation.importance import ShapSummary, summarise_shap
from fusion.evaluation.performance import (
    PerformanceReport,
    evaluate_performance,
    performance_threshold,
)
from fusion.explain import shap_values
from fusion.features import build_feature_matrix, image_scores
from fusion.service.audit_trail import record_event
from fusion.service.loaded_models import LoadedModels, model_info
from fusion.training.versions import check_version

__all__ = [
    "REGISTRY_COLUMNS",
    "StampedViews",
    "age_cuts",
    "audit",
    "baseline_versions",
    "curves_by_group",
    "data_stamp",
    "global_shap",
    "list_models",
    "min_cell_for",
    "performance",
    "rebanded",
    "reliance_by_group",
    "test_predictions",
    "view_threshold",
]

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


T = TypeVar("T")


def data_stamp(store: CohortStore, fusion_version: str) -> DataStamp:
    """What ``fusion_version``'s cohort views are computed from, read in one small query.

    The version, its last scoring batch (each scoring chunk and training's predictions record
    one), the last cohort import (which can change labels and attributes, and drops the
    predictions of updated patients) and the newest similar-patient index (which
    ``riskfusion score`` refreshes); see :meth:`data.store.CohortStore.data_stamp`. Every cohort
    view, cache and index is keyed by it.
    """
    return store.data_stamp(fusion_version)


class StampedViews:
    """Cohort views computed in this process, each kept only under the stamp it was made for.

    A view asked for under another :class:`~data.store.DataStamp` than the held one drops every
    held view and is computed afresh, so the service never answers from data that a later
    score or import changed. Shared by the threads of a serving process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: DataStamp | None = None
        self._views: dict[Hashable, Any] = {}

    def get(self, stamp: DataStamp, key: Hashable, compute: Callable[[], T]) -> T:
        """The view ``key`` under ``stamp``, computed by ``compute`` when not held for it."""
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._views = stamp, {}
            if key in self._views:
                return self._views[key]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if stamp == self._stamp:
                self._views[key] = value
        return value


def baseline_versions(store: CohortStore, fusion_version: str) -> dict[str, str]:
    """Name -> version of the baselines fitted with ``fusion_version`` (kind ``baseline_<name>``).

    Found through the registry's ``parent_version`` and ``kind`` (:meth:`CohortStore.parts_of`),
    so any baseline registered with the version is listed, whatever its name.
    """
    return {
        record.kind.removeprefix(BASELINE_KIND): record.version
        for record in store.parts_of(fusion_version)
        if record.kind.startswith(BASELINE_KIND)
    }


def test_predictions(store: CohortStore, fusion_version: str) -> pd.DataFrame:
    """Test-split risks of the model and its baselines, with attributes (one query).

    Returns
    -------
    DataFrame
        One row per test patient: ``patient_id, sex, age, age_band, ethnicity, site,
        label, true_risk, risk`` (fusion) and ``risk_<baseline>`` per stored baseline.
    """
    baselines = baseline_versions(store, fusion_version)
    long = store.split_predictions([fusion_version, *baselines.values()], "test")
    names = {fusion_version: "risk", **{v: f"risk_{k}" for k, v in baselines.items()}}
    wide = long.pivot(index="patient_id", columns="model_version", values="risk")
    wide = wide.rename(columns=names).reindex(columns=list(names.values()))
    attributes = long.loc[long["model_version"] == fusion_version].drop(
        columns=["model_version", "risk"]
    )
    frame = attributes.join(wide, on="patient_id").reset_index(drop=True)
    return add_age_band(frame, age_cuts(store))


def rebanded(frame: pd.DataFrame, options: AuditOptions | None) -> pd.DataFrame:
    """``frame`` with ``age_band`` cut at ``options.age_cuts`` when a run asks for other bands."""
    if options is None or options.age_cuts is None:
        return frame
    return add_age_band(frame, options.age_cuts)


def age_cuts(store: CohortStore) -> tuple[float, ...]:
    """The audit's age band cuts: the imported cohort's ``[audit] age_bands``, else the default."""
    declared = store.cohort_settings().get("age_bands") or DEFAULT_AGE_CUTS
    return tuple(float(cut) for cut in declared)


def min_cell_for(
    store: CohortStore,
    model_version: str,
    floor: int,
    identity: Identity | None,
    requested: int | None = None,
    *,
    view: str = "cohort",
) -> int:
    """The suppression floor of a cohort view for ``identity``.

    ``requested`` None takes the configured ``floor`` (``RISKFUSION_MIN_CELL``). Anyone may
    raise it; only an admin may lower it, and each lowering is written to the audit trail
    (action ``lower_suppression``, with the view and both values). A caller without an
    identity gets the floor or more.

    Raises
    ------
    fusion.admin.access.AccessDeniedError
        If a non-admin asks for less than the configured floor.
    """
    min_cell = resolve_min_cell(identity, requested, floor)
    if identity is not None and min_cell < floor:
        record_event(
            store,
            model_version,
            identity,
            "lower_suppression",
            detail={"view": view, "min_cell": min_cell, "configured": floor},
        )
    return min_cell


def global_shap(
    store: CohortStore, models: LoadedModels, *, top_n: int, min_cell: int
) -> ShapSummary:
    """Global TreeSHAP importance of the active model over the test split.

    Reads the test patients' inputs with two split-filtered queries (patients, logits);
    cost grows with the test split only (TreeSHAP cost per row: docs/models.md).
    """
    frame = store.load_patient_frame(split="test")
    logits = store.split_logits(models.imaging_record.version, "test")
    scores = image_scores(logits, models.logit_scaling)
    X = build_feature_matrix(frame.join(scores, on="patient_id"), models.features)
    result = shap_values(models.model, X, explainer=models.tree_explainer)
    return summarise_shap(
        result.values,
        X,
        labels=models.features.labels,
        modalities=models.features.modalities,
        order=models.features.present_modalities,  # only the modalities it has
        top_n=top_n,
        min_cell=min_cell,
    )


def list_models(store: CohortStore, artifacts_dir: Path) -> pd.DataFrame:
    """The model registry, one row per complete fusion version, newest first.

    A version is listed only when its training finished and every part is registered and
    its files match their SHA-256 (:func:`fusion.training.versions.check_version`); the active
    version is always listed.

    Returns
    -------
    DataFrame
        ``version, created_at, active, test_auroc, imaging_version, trained_on, patients,
        data_fingerprint`` (first 12 hex digits of the training data's SHA-256, empty for
        versions trained before it was recorded) and ``parts`` (the baselines, interval,
        explanations and forecast registered with the version).
    """
    records = store.list_models()
    by_version = {record.version: record for record in records}
    rows = []
    for record in records:
        if record.kind != "fusion":
            continue
        if (
            not record.is_active
            and not check_version(by_version, artifacts_dir, record.version).complete
        ):
            continue  # unfinished or damaged: never offered (riskfusion activate refuses it)
        prefix = f"{record.version}-"
        parts = [r.version.removeprefix(prefix) for r in parts_of(records, record.version)]
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


def role_threshold(
    frame: pd.DataFrame,
    requested: float,
    identity: Identity | None,
    *,
    by: Sequence[str] = (),
    default: float,
    min_cell: int,
) -> float:
    """The threshold a cohort view applies for ``identity`` (a researcher's snaps to cut points).

    The pages snap a researcher's threshold and say so; the service snaps it again, so no other
    caller (command line, export, script) can read counts at a threshold the page would refuse.
    See :func:`fusion.evaluation.performance.performance_threshold` (``by`` empty) and
    :func:`fusion.evaluation.groups.audit_threshold`.
    """
    role = "admin" if identity is None else identity.role
    if by:
        choice = audit_threshold(
            frame, by, requested, role=role, default=default, min_cell=min_cell
        )
    else:
        choice = performance_threshold(
            frame, requested, role=role, default=default, min_cell=min_cell
        )
    return choice.threshold


def view_threshold(
    models: LoadedModels,
    frame: pd.DataFrame,
    threshold: float | None,
    identity: Identity | None,
    floor: int,
    by: Sequence[str] = (),
) -> float:
    """:func:`role_threshold` of a request (``threshold`` None: the model's own threshold)."""
    default = model_info(models).threshold
    requested = default if threshold is None else threshold
    return role_threshold(frame, requested, identity, by=by, default=default, min_cell=floor)


def performance(
    frame: pd.DataFrame,
    model_version: str,
    *,
    threshold: float,
    n_resamples: int,
    random_state: int,
    min_cell: int,
) -> PerformanceReport:
    """Test-split performance and modality ablation of :func:`test_predictions` ``frame``."""
    return evaluate_performance(
        frame,
        model_version=model_version,
        threshold=threshold,
        n_resamples=n_resamples,
        random_state=random_state,
        min_cell=min_cell,
    )


def audit(
    frame: pd.DataFrame,
    by: Sequence[str],
    *,
    threshold: float,
    reference: str | None,
    min_cell: int,
    n_resamples: int,
    random_state: int,
    options: AuditOptions | None = None,
) -> FairnessReport:
    """Bias audit of the test predictions ``frame`` over 1-3 attributes (intersected).

    ``by`` names attributes of :data:`fusion.evaluation.performance.AUDIT_ATTRIBUTES`; see
    :func:`fusion.evaluation.fairness.audit` for the metrics, disparities and suppression.
    """
    names = check_attributes(by)
    return fairness_audit(
        frame["label"].to_numpy(),
        frame["risk"].to_numpy(),
        frame.loc[:, list(names)],
        threshold=threshold,
        reference=reference,
        n_resamples=n_resamples,
        random_state=random_state,
        min_cell=min_cell,
        scope=audit_scope(frame),
        method=(options or AuditOptions()).method,
        alpha=(options or AuditOptions()).alpha,
        margin=(options or AuditOptions()).margin,
    )


def reliance_by_group(
    frame: pd.DataFrame, shap: ShapSummary, by: Sequence[str], *, min_cell: int
) -> pd.DataFrame:
    """Mean |SHAP| per modality by group of 1-3 attributes (small groups suppressed).

    See :func:`fusion.evaluation.performance.modality_reliance`.
    """
    names = check_attributes(by)
    indexed = frame.set_index("patient_id")
    attributes = indexed.loc[:, list(names)]
    return modality_reliance(
        shap.per_patient, attributes, min_cell=min_cell, scope=audit_scope(indexed)
    )


def curves_by_group(
    frame: pd.DataFrame, by: Sequence[str], *, min_cell: int, threshold: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC and calibration curves per shown group (suppression included).

    See :func:`fusion.evaluation.performance.group_curves`.
    """
    return group_curves(frame, check_attributes(by), min_cell=min_cell, threshold=threshold)
