"""The audit trail as the service writes and exports it.

Owns writing one event under the active model version (:func:`record_event`) and exporting the
whole trail as CSV in keyset pages (:func:`audit_trail_csv`). Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from data.store import AuditEntry, CohortStore
from fusion.admin.access import Identity
from fusion.reports.exports import safe_csv

__all__ = ["audit_trail_csv", "record_event"]


def record_event(
    store: CohortStore,
    model_version: str,
    identity: Identity,
    action: str,
    *,
    patient_id: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Append ``action`` by ``identity`` to the audit trail, under ``model_version``.

    See :data:`data.store.AUDIT_ACTIONS` for the actions; ``detail`` is small JSON-able
    context (page, overrides, export format). Never logs the patient id.
    """
    store.record_event(
        AuditEntry(
            actor=identity.user,
            role=identity.role,
            action=action,
            patient_id=patient_id,
            model_version=model_version,
            detail=dict(detail or {}),
        )
    )


def audit_trail_csv(
    store: CohortStore, *, action: str | None = None, chunk_size: int = 10_000
) -> str:
    """The whole audit trail (optionally one action) as CSV, read in keyset pages."""
    pages: list[pd.DataFrame] = []
    before_id: int | None = None
    while True:
        page = store.audit_events(limit=chunk_size, before_id=before_id, action=action)
        if page.empty:
            break
        pages.append(page)
        before_id = int(page["event_id"].min())
    columns = list(store.audit_events(limit=1).columns)
    frame = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=columns)
    return safe_csv(frame)
