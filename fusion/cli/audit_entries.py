"""Who a command acts as in the audit trail, and how a command records what it did.

The command line is admin (it holds the database). Must not import torch, MONAI, LightGBM or SHAP
at module level.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TYPE_CHECKING

from fusion.settings import Settings

if TYPE_CHECKING:
    from data.store import AuditEntry

__all__ = ["cli_entry", "record_action"]


def cli_entry(
    action: str, *, detail: dict[str, object], args: argparse.Namespace | None = None
) -> AuditEntry:
    """An audit entry of the command's user: ``--actor``/``--role``, else ``cli:<os user>``."""
    from data.store import AuditEntry

    actor = getattr(args, "actor", None) or f"cli:{getpass.getuser()}"
    role = getattr(args, "role", None) or "admin"
    return AuditEntry(actor=actor, role=role, action=action, detail=detail)


def record_action(
    settings: Settings,
    action: str,
    *,
    patient_id: str | None = None,
    model_version: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Append a command's action to the audit trail as ``cli:<os user>`` (the CLI is admin)."""
    from data.store import AuditEntry, CohortStore, make_engine

    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()
        store.record_event(
            AuditEntry(
                actor=f"cli:{getpass.getuser()}",
                role="admin",
                action=action,
                patient_id=patient_id,
                model_version=model_version,
                detail=detail or {},
            )
        )
    finally:
        store.engine.dispose()
