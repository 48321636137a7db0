"""The cohort store: the only package that writes SQL.

Owns the SQL schema, engine creation, the frozen records that cross its boundary, and a few
repositories, one per capability, each a class in its own module working on one shared
engine:

- :mod:`~data.store.cohort_writes`: write a synthetic cohort, import a cohort part by part;
- :mod:`~data.store.registry`: model versions, their artifacts and which one is active;
- :mod:`~data.store.embeddings`, :mod:`~data.store.predictions`,
  :mod:`~data.store.explanations`: the results of imaging and fusion versions;
- :mod:`~data.store.frames` and :mod:`~data.store.pages`: wide frames for training, and the
  narrow, indexed reads of the pages (one patient, the picker, counts);
- :mod:`~data.store.audit`: the append-only, hash-chained audit trail.

:class:`CohortStore` (:mod:`~data.store.facade`) composes them as mixins over
:class:`~data.store.engine.StoreBase`, the small base that holds the engine. Mixins, rather
than a facade that holds one repository object each and forwards every call, keep the fifty
public methods callable as ``store.<method>`` with no forwarding code, and each repository
stays usable and testable on its own (``PageReads(engine).get_patient(...)``).

Every write runs in one transaction (``engine.begin()``): on any error nothing it wrote stays.
Reads that can grow with the cohort are paginated or streamed in chunks. The package must not
import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages, nor
:mod:`data.cohort_import`.
"""

from __future__ import annotations

from data.store.audit import AUDIT_ACTIONS, AUDIT_GENESIS, audit_event_hash
from data.store.engine import make_engine
from data.store.facade import CohortStore
from data.store.records import (
    IMPORT_PARTS,
    AuditChainCheck,
    AuditEntry,
    CohortTables,
    DataStamp,
    EmbeddingBatch,
    ImageRecord,
    ImportCounts,
    ImportTables,
    ModelRecord,
    PatientRecord,
)
from data.store.registry import COMPLETION_PARAM
from data.store.roles import create_database_roles

__all__ = [
    "AUDIT_ACTIONS",
    "AUDIT_GENESIS",
    "COMPLETION_PARAM",
    "IMPORT_PARTS",
    "AuditChainCheck",
    "AuditEntry",
    "CohortStore",
    "CohortTables",
    "DataStamp",
    "EmbeddingBatch",
    "ImageRecord",
    "ImportCounts",
    "ImportTables",
    "ModelRecord",
    "PatientRecord",
    "audit_event_hash",
    "create_database_roles",
    "make_engine",
]
