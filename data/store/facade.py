"""The :class:`CohortStore` facade: every repository of the store behind one object.

Owns only the composition and the schema creation, including the indexes that a store made by
an earlier version lacks (``create_all`` adds tables, never an index to a table that exists). It
must not import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

import logging
import warnings

from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from data.store.aggregates import AggregateResults
from data.store.audit import AuditTrail
from data.store.cohort_writes import CohortWrites
from data.store.embeddings import EmbeddingResults
from data.store.explanations import ExplanationResults
from data.store.frames import FrameReads
from data.store.outcomes import OutcomeReads
from data.store.pages import PageReads
from data.store.predictions import PredictionResults
from data.store.registry import ModelRegistry
from data.store.schema import Base

__all__ = ["CohortStore"]

logger = logging.getLogger(__name__)


class CohortStore(
    CohortWrites,
    ModelRegistry,
    EmbeddingResults,
    PredictionResults,
    ExplanationResults,
    FrameReads,
    PageReads,
    OutcomeReads,
    AuditTrail,
    AggregateResults,
):
    """Transactional reads and writes of cohorts, models, embeddings and predictions.

    Every repository works on the one engine that :class:`~data.store.engine.StoreBase` holds;
    the facade adds nothing but the schema creation.

    Parameters
    ----------
    engine : Engine
        From :func:`~data.store.engine.make_engine`.

    Examples
    --------
    >>> from data.store import make_engine
    >>> store = CohortStore(make_engine("sqlite://"))
    >>> store.create_schema()
    >>> store.count_patients()
    0
    """

    def create_schema(self) -> None:
        """Create every table and index that does not exist yet (idempotent); upgrade the trail."""
        Base.metadata.create_all(self.engine)
        self.upgrade_indexes()
        self.upgrade_audit_trail()

    def upgrade_indexes(self) -> list[str]:
        """Create the schema's indexes that the existing tables lack (idempotent).

        A store opened by a later version gets the indexes its reads rely on (the picker's
        ``(split, patient_id)``, the audit trail's filters). An up-to-date store is only
        inspected, so this runs as a read-only role too; where the role may not create an
        index, the pages still work (slower) and a warning says how to add it.

        Returns
        -------
        list of str
            Names of the indexes created (empty when nothing was missing).
        """
        with self.engine.connect() as conn:
            inspector = inspect(conn)
            tables = set(inspector.get_table_names())
            present = {
                (table, index["name"]) for table in tables for index in inspector.get_indexes(table)
            }
        missing = [
            index
            for table in Base.metadata.sorted_tables
            if table.name in tables
            for index in sorted(table.indexes, key=lambda index: str(index.name))
            if (table.name, index.name) not in present
        ]
        if not missing:
            return []
        names = [str(index.name) for index in missing]
        try:
            with self.engine.begin() as conn:
                for index in missing:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        except DBAPIError as err:
            warnings.warn(
                f"The store lacks the indexes {names} and this database user may not create "
                f"them ({type(err.orig).__name__}); pages read more rows until they exist. Run "
                "`riskfusion audit-trail verify` once as the tables' owner to add them.",
                stacklevel=2,
            )
            return []
        logger.info("store upgraded: created indexes %s", names)
        return names
