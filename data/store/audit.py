"""The audit trail: an append-only, hash-chained log of who saw or changed what.

Owns :data:`AUDIT_ACTIONS`, the event hash (:func:`audit_event_hash`), appending inside a
caller's transaction (:func:`append_audit`, used by the writes that must commit with their
event), the chain lock, the upgrade of older tables, and :class:`AuditTrail` (append, page
through, count, verify). It must not import torch, streamlit or the
``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from data.errors import CohortError
from data.store.engine import StoreBase
from data.store.records import AuditChainCheck, AuditEntry
from data.store.schema import AUDIT_SQLITE_TRIGGERS, AuditEvent

__all__ = ["AUDIT_ACTIONS", "AUDIT_GENESIS", "AuditTrail", "append_audit", "audit_event_hash"]

logger = logging.getLogger(__name__)

AUDIT_ACTIONS = (
    "sign_in",
    "sign_out",
    "view_patient",
    "what_if",
    "forecast",
    "export",
    "import",
    "train",
    "score",
    "activate_model",
    "lower_suppression",
)
"""What the audit trail records; anything else is refused."""
AUDIT_COLUMNS = ("event_id", "at", "actor", "role", "action", "patient_id", "model_version")


def append_audit(conn: Connection, entry: AuditEntry) -> None:
    """Append one audit event inside the caller's transaction."""
    if entry.action not in AUDIT_ACTIONS:
        raise ValueError(
            f"Unknown audit action {entry.action!r}; allowed are {list(AUDIT_ACTIONS)}."
        )
    if not entry.actor.strip():
        raise ValueError("An audit event needs an actor; pass the signed-in user name.")
    _lock_audit_chain(conn)
    head = conn.execute(_AUDIT_HEAD).first()
    if head is not None and head.event_hash is None:
        raise CohortError(_UNSEALED)
    row: dict[str, Any] = {
        "event_id": 1 if head is None else int(head.event_id) + 1,
        "at": datetime.now(UTC),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "patient_id": entry.patient_id,
        "model_version": entry.model_version,
        # What the JSON column will give back, so the hash can be recomputed from the row.
        "detail": json.loads(json.dumps(dict(entry.detail))),
        "prev_hash": AUDIT_GENESIS if head is None else head.event_hash,
    }
    row["event_hash"] = audit_event_hash(row)
    conn.execute(_AUDIT_INSERT, row)  # statements built once: their compiled form is cached


_AUDIT_HEAD = (
    select(AuditEvent.event_id, AuditEvent.event_hash).order_by(AuditEvent.event_id.desc()).limit(1)
)
_AUDIT_INSERT = insert(AuditEvent)


AUDIT_GENESIS = "0" * 64
"""The ``prev_hash`` of the first event of a trail."""
_AUDIT_HASH_FIELDS = (
    "event_id",
    "at",
    "actor",
    "role",
    "action",
    "patient_id",
    "model_version",
    "detail",
    "prev_hash",
)
_AUDIT_LOCK_KEY = 0x7269736B_61756474  # pg_advisory_xact_lock key of the chain ("riskaudt")
_UNSEALED = (
    "The audit trail was written before events were hash-chained; open the store once with "
    "`riskfusion audit-trail verify` (it upgrades the table) as the database owner."
)


def audit_event_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of one audit event's content and the hash of the event before it.

    Parameters
    ----------
    row : Mapping[str, Any]
        ``event_id, at, actor, role, action, patient_id, model_version, detail, prev_hash``;
        ``at`` is a datetime (naive values are UTC, as SQLite returns them).

    Returns
    -------
    str
        64 hex digits; any change to a field, or to the previous event, changes it.

    Examples
    --------
    >>> from datetime import datetime
    >>> row = dict(event_id=1, at=datetime(2026, 1, 1), actor="ana", role="admin",
    ...            action="export", patient_id=None, model_version=None, detail={},
    ...            prev_hash=AUDIT_GENESIS)
    >>> audit_event_hash(row) == audit_event_hash({**row, "actor": "mallory"})
    False
    """
    at: datetime = row["at"]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    values = {name: row[name] for name in _AUDIT_HASH_FIELDS}
    values["event_id"] = int(values["event_id"])
    values["at"] = at.isoformat(timespec="microseconds")
    payload = json.dumps(["riskfusion-audit-v1", values], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _lock_audit_chain(conn: Connection) -> None:
    """Serialise appends to the chain until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock (needs no privilege beyond connecting).
    SQLite: take the write lock before reading the head (``BEGIN IMMEDIATE``), unless the
    transaction has written already (then it holds the lock and sees the latest head).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is not None and not dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class AuditTrail(StoreBase):
    """Append to, page through and verify the audit trail (one repository of the store)."""

    def record_event(self, entry: AuditEntry) -> None:
        """Append one event to the audit trail (its own transaction).

        Writes that change data take the entry instead, so the event and the change commit
        together (see :meth:`activate_model`).

        Raises
        ------
        ValueError
            If the action is not one of :data:`AUDIT_ACTIONS` or the actor is empty.
        """
        with self.engine.begin() as conn:
            append_audit(conn, entry)

    def audit_events(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        action: str | None = None,
        patient_id: str | None = None,
    ) -> pd.DataFrame:
        """One page of the audit trail, newest first (keyset pagination on ``event_id``).

        Columns: ``event_id, at, actor, role, action, patient_id, model_version, detail``.
        Pass the smallest ``event_id`` of a page as ``before_id`` to get the next one; the
        query uses the primary key (and the action / patient indexes), so it stays fast at
        millions of events.
        """
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit={limit} is out of range; use 1..10000 events per page.")
        if action is not None and action not in AUDIT_ACTIONS:
            raise ValueError(f"Unknown audit action {action!r}; allowed are {list(AUDIT_ACTIONS)}.")
        stmt = select(AuditEvent).order_by(AuditEvent.event_id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(AuditEvent.event_id < before_id)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        if patient_id is not None:
            stmt = stmt.where(AuditEvent.patient_id == patient_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        frame = pd.DataFrame(
            [
                {
                    **{column: row[column] for column in AUDIT_COLUMNS},
                    "detail": json.dumps(row["detail"], sort_keys=True),
                }
                for row in rows
            ],
            columns=[*AUDIT_COLUMNS, "detail"],
        )
        return frame

    def count_audit_events(self) -> int:
        """Number of events in the audit trail."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one())

    def upgrade_audit_trail(self) -> int:
        """Bring an audit table made by an earlier version up to date (idempotent).

        Adds the hash-chain columns and seals the events already there (hashes computed in
        ``event_id`` order), and creates missing SQLite triggers. A store that is up to date
        is only read, so this runs as an insert-and-select role too; an upgrade needs the
        table's owner (PostgreSQL) because it lifts the append-only trigger while it seals.

        Returns
        -------
        int
            Number of events sealed (0 when nothing was to do).
        """
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(AuditEvent.__tablename__):
                return 0
            columns = {column["name"] for column in inspect(conn).get_columns("audit_events")}
            missing = _missing_audit_triggers(conn)
            if {"prev_hash", "event_hash"} <= columns and not missing:
                unsealed = conn.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.event_hash.is_(None))
                ).scalar_one()
                if not unsealed:
                    return 0
        try:
            with self.engine.begin() as conn:
                _lock_audit_chain(conn)
                columns = {c["name"] for c in inspect(conn).get_columns("audit_events")}
                for name in ("prev_hash", "event_hash"):
                    if name not in columns:
                        conn.exec_driver_sql(
                            f"ALTER TABLE audit_events ADD COLUMN {name} VARCHAR(64)"
                        )
                sealed = _seal_audit_events(conn)
                for ddl in _missing_audit_triggers(conn).values():
                    conn.exec_driver_sql(ddl)
        except DBAPIError as err:
            raise CohortError(
                f"The audit trail needs a one-time upgrade (hash chain) that this database "
                f"user may not make ({type(err.orig).__name__}). Run `riskfusion audit-trail "
                "verify` once as the tables' owner (docs/deployment.md), then start again."
            ) from err
        if sealed:
            logger.info(
                "audit trail upgraded: %d earlier events sealed into the hash chain", sealed
            )
        return sealed

    def verify_audit_chain(
        self, *, expect: tuple[int, str] | None = None, chunk: int = 10_000
    ) -> AuditChainCheck:
        """Recompute every event's hash and check that each follows the one before it.

        Parameters
        ----------
        expect : tuple of (int, str) or None, default=None
            A head recorded earlier (event id and hash): that event must still be in the
            chain with that hash, which also detects removed newest events and a chain
            recomputed from scratch by someone with write access to the database file.
        chunk : int, default=10000
            Events read per query (memory stays bounded at millions of events).

        Returns
        -------
        AuditChainCheck
            ``ok`` is false with the first bad event named when anything was changed,
            removed or inserted out of order since it was written.
        """
        events, previous_hash, previous_id = 0, AUDIT_GENESIS, 0
        expected_seen = False
        size = chunk
        with self.engine.connect() as conn:
            while True:
                try:
                    rows = (
                        conn.execute(
                            select(AuditEvent)
                            .where(AuditEvent.event_id > previous_id)
                            .order_by(AuditEvent.event_id)
                            .limit(size)
                        )
                        .mappings()
                        .all()
                    )
                except (ValueError, TypeError):  # a time or detail no longer parses
                    if size > 1:
                        size = 1  # find the event: read on one at a time
                        continue
                    bad = conn.execute(
                        select(func.min(AuditEvent.event_id)).where(
                            AuditEvent.event_id > previous_id
                        )
                    ).scalar_one()
                    return AuditChainCheck(
                        events,
                        previous_id or None,
                        previous_hash if previous_id else None,
                        int(bad),
                        f"event #{bad} cannot be read (its time or detail is not valid any more): "
                        "it was changed after it was written",
                    )
                for row in rows:
                    event_id = int(row["event_id"])
                    problem = None
                    if row["prev_hash"] != previous_hash:
                        after = f"event #{previous_id}" if previous_id else "the start"
                        problem = (
                            f"event #{event_id} does not follow {after}: an event between "
                            "them was removed or changed, or this one was inserted out of order"
                        )
                    elif row["event_hash"] != audit_event_hash(dict(row)):
                        problem = (
                            f"event #{event_id} was changed after it was written (its content "
                            "no longer matches its hash)"
                        )
                    if problem is not None:
                        return AuditChainCheck(
                            events, previous_id or None, previous_hash, event_id, problem
                        )
                    if expect is not None and event_id == expect[0]:
                        expected_seen = row["event_hash"] == expect[1]
                    events, previous_hash, previous_id = events + 1, row["event_hash"], event_id
                if len(rows) < size:
                    break
        head = (previous_id or None, previous_hash if previous_id else None)
        if expect is not None and not expected_seen:
            return AuditChainCheck(
                events,
                *head,
                expect[0],
                f"event #{expect[0]} with hash {expect[1][:12]}... (the head recorded earlier) "
                "is not in the chain: events were removed or the chain was rewritten",
            )
        return AuditChainCheck(events, *head)


def _missing_audit_triggers(conn: Connection) -> dict[str, str]:
    """The SQLite append-only triggers this table lacks (PostgreSQL's came with the table)."""
    if conn.dialect.name != "sqlite":
        return {}
    present = set(
        conn.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'audit_events'"
            )
        ).scalars()
    )
    return {name: ddl for name, ddl in AUDIT_SQLITE_TRIGGERS.items() if name not in present}


def _seal_audit_events(conn: Connection, chunk: int = 10_000) -> int:
    """Hash-chain the events that have no hash yet, in ``event_id`` order; return how many.

    The update trigger is lifted inside this transaction only (SQLite: dropped here and
    re-created by the caller; PostgreSQL: disabled, which needs the owner, and enabled again).
    """
    unsealed = conn.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.event_hash.is_(None))
    ).scalar_one()
    if not unsealed:
        return 0
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
    else:
        conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    previous, previous_id = AUDIT_GENESIS, 0
    while True:
        rows = (
            conn.execute(
                select(AuditEvent)
                .where(AuditEvent.event_id > previous_id)
                .order_by(AuditEvent.event_id)
                .limit(chunk)
            )
            .mappings()
            .all()
        )
        for row in rows:
            if row["event_hash"] is None:
                sealed = {**row, "prev_hash": previous}
                sealed["event_hash"] = audit_event_hash(sealed)
                conn.execute(
                    update(AuditEvent)
                    .where(AuditEvent.event_id == row["event_id"])
                    .values(prev_hash=previous, event_hash=sealed["event_hash"])
                )
                previous = sealed["event_hash"]
            else:
                previous = row["event_hash"]
            previous_id = int(row["event_id"])
        if len(rows) < chunk:
            break
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    return int(unsealed)
