"""The :class:`CohortStore` facade: every repository of the store behind one object.

Owns only the composition and the schema creation. It must not import torch, streamlit or the
``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from data.store.audit import AuditTrail
from data.store.cohort_writes import CohortWrites
from data.store.embeddings import EmbeddingResults
from data.store.explanations import ExplanationResults
from data.store.frames import FrameReads
from data.store.pages import PageReads
from data.store.predictions import PredictionResults
from data.store.registry import ModelRegistry
from data.store.schema import Base

__all__ = ["CohortStore"]


class CohortStore(
    CohortWrites,
    ModelRegistry,
    EmbeddingResults,
    PredictionResults,
    ExplanationResults,
    FrameReads,
    PageReads,
    AuditTrail,
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
        """Create every table that does not exist yet (idempotent); upgrade the audit trail."""
        Base.metadata.create_all(self.engine)
        self.upgrade_audit_trail()
