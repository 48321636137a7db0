"""Stored cohort views: one JSON payload per (fusion version, data stamp, view).

Owns :class:`AggregateResults`, the repository of ``cohort_aggregates``: the performance and
bias-audit pages read what ``train`` and ``score`` computed once, by primary key, instead of
the test split's raw rows. Rows are keyed by :func:`stamp_key` of the
:class:`~data.store.records.DataStamp` they were computed under, so a newer stamp (a score or an
import) finds nothing and the view is computed afresh; rows of older stamps of the version are
deleted when a new stamp's views are written. Payloads are opaque text here (the fusion layer
encodes them). Must not import torch, streamlit or the ``models``/``fusion``/``dashboard``
packages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from data.errors import CohortError
from data.store.engine import StoreBase
from data.store.records import DataStamp
from data.store.schema import Base, CohortAggregate

__all__ = ["AggregateResults", "stamp_key"]


def stamp_key(stamp: DataStamp) -> str:
    """The text key of ``stamp`` in ``cohort_aggregates`` (everything but the version).

    Examples
    --------
    >>> stamp_key(DataStamp("f1", 3, "imp-1", "f1-explanations-3"))
    '3|imp-1|f1-explanations-3'
    """
    return f"{stamp.scoring_batch}|{stamp.import_batch}|{stamp.explanations}"


class AggregateResults(StoreBase):
    """Write and read stored cohort views (one repository of the store)."""

    def read_aggregates(self, stamp: DataStamp, kinds: Sequence[str]) -> dict[str, str]:
        """The stored payloads of ``kinds`` under ``stamp`` (missing ones absent), one query.

        A store made before this table existed answers nothing stored.
        """
        if not kinds:
            return {}
        query = select(CohortAggregate.kind, CohortAggregate.payload).where(
            CohortAggregate.model_version == stamp.model_version,
            CohortAggregate.stamp_key == stamp_key(stamp),
            CohortAggregate.kind.in_(list(kinds)),
        )
        try:
            with self.engine.connect() as conn:
                return {str(kind): str(payload) for kind, payload in conn.execute(query)}
        except DBAPIError:
            with self.engine.connect() as conn:
                if inspect(conn).has_table(CohortAggregate.__tablename__):
                    raise
            return {}  # a store made before stored views: nothing stored yet

    def write_aggregates(
        self, stamp: DataStamp, payloads: Mapping[str, str], *, drop_older: bool = True
    ) -> None:
        """Store (replace) the views ``payloads`` (kind -> JSON text) under ``stamp``.

        One transaction. ``drop_older`` also deletes the version's views of every other stamp
        (they can never be read again: the stamp only moves forward).

        Raises
        ------
        data.errors.CohortError
            If the version is not registered (nothing is written).
        """
        key = stamp_key(stamp)
        now = datetime.now(UTC)
        rows = [
            {
                "model_version": stamp.model_version,
                "stamp_key": key,
                "kind": kind,
                "payload": payload,
                "created_at": now,
            }
            for kind, payload in payloads.items()
        ]
        table = CohortAggregate
        try:
            with self.engine.begin() as conn:
                # A store made before stored views gains the table (idempotent).
                Base.metadata.tables[table.__tablename__].create(conn, checkfirst=True)
                stale = delete(table).where(table.model_version == stamp.model_version)
                if drop_older:
                    conn.execute(stale.where(table.stamp_key != key))
                if rows:
                    conn.execute(
                        stale.where(table.stamp_key == key, table.kind.in_(list(payloads)))
                    )
                    conn.execute(insert(table), rows)
        except IntegrityError as err:
            raise CohortError(
                f"Cannot store cohort views of model {stamp.model_version!r}: the version is "
                "not registered. Register it first; nothing was written."
            ) from err

    def count_aggregates(self, model_version: str) -> int:
        """Stored views of ``model_version`` (every stamp)."""
        return self._count_of_version(CohortAggregate, model_version)
