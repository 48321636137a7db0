"""What the store holds, for the Data page, and the page's entries in the audit trail.

Works on a store that does not exist yet (creates its folder and empty tables). Must not import
streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data.store import AuditEntry, CohortStore, make_engine
from fusion.settings import Settings

__all__ = ["DataStoreSummary", "record_data_event", "store_summary"]


@dataclass(frozen=True, slots=True)
class DataStoreSummary:
    """What the store holds, for the Data page (works on an empty store).

    Attributes
    ----------
    n_patients : int
        Stored patients.
    active_version : str or None
        The active fusion model, None before the first training.
    training_data : Mapping[str, Any]
        ``params["training_data"]`` of the active fusion model (``sources``, ``n_patients``,
        ``import_batches``, ``fingerprint``, ...:
        :func:`fusion.training.training_data.describe_training_data`);
        empty when not recorded.
    """

    n_patients: int
    active_version: str | None
    training_data: Mapping[str, Any]


def _store(settings: Settings) -> CohortStore:
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)  # the SQLite file's folder
    store = CohortStore(make_engine(settings.database_url))
    store.create_schema()  # empty tables only; a fresh store answers "0 patients"
    return store


def store_summary(settings: Settings) -> DataStoreSummary:
    """Patients, the active fusion version and its training data, read from the store.

    Works on a store that does not exist yet (creates its folder and empty tables).
    """
    store = _store(settings)
    try:
        active = next((r for r in store.list_models("fusion") if r.is_active), None)
        return DataStoreSummary(
            n_patients=store.count_patients(),
            active_version=None if active is None else active.version,
            training_data=dict(active.params.get("training_data", {})) if active else {},
        )
    finally:
        store.engine.dispose()


def record_data_event(
    settings: Settings,
    *,
    actor: str,
    role: str,
    action: str,
    model_version: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Append a Data-page action to the audit trail, also on a store without a model.

    Raises
    ------
    ValueError
        If ``action`` is not one of :data:`data.store.AUDIT_ACTIONS` or ``actor`` is empty.
    """
    store = _store(settings)
    try:
        store.record_event(
            AuditEntry(
                actor=actor,
                role=role,
                action=action,
                model_version=model_version,
                detail=dict(detail or {}),
            )
        )
    finally:
        store.engine.dispose()
