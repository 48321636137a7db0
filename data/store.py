"""The cohort store: the one module that writes SQL.

Owns engine creation (SQLite pragmas), transactional writes of cohorts, models, embeddings and
predictions, and the narrow, indexed reads the pages and batch jobs need. It must not import
torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.

Every write method runs in one transaction (``engine.begin()``): on any error nothing it wrote
stays. Reads that can grow with the cohort are paginated or streamed in chunks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import (
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from data.errors import CohortError, PatientNotFoundError, StoreNotBuiltError
from data.schema import (
    AUDIT_SQLITE_TRIGGERS,
    AuditEvent,
    Base,
    CounterfactualRisk,
    Demographics,
    EhrValue,
    Embedding,
    Feature,
    GenomicValue,
    GroundTruth,
    Image,
    ImportBatch,
    ImportHash,
    ModelVersion,
    Outcome,
    Patient,
    Prediction,
    StoredExplanation,
)

__all__ = [
    "AUDIT_ACTIONS",
    "AUDIT_GENESIS",
    "COMPLETION_PARAM",
    "AuditChainCheck",
    "AuditEntry",
    "CohortStore",
    "CohortTables",
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

logger = logging.getLogger(__name__)

WRITE_CHUNK = 5_000
PATIENT_COLUMNS = ("patient_id", "split", "age", "sex", "ethnicity", "site")
OUTCOME_COLUMNS = ("patient_id", "treatment", "label", "event_time", "event")
IMAGE_COLUMNS = ("patient_id", "path", "sha256", "height", "width", "site", "mask_path")
FEATURE_COLUMNS = ("name", "modality", "label", "unit", "kind", "low", "high", "description")
TRUTH_COLUMNS = (
    "patient_id",
    "true_risk",
    "lesion_count",
    "lesion_area",
    "logit_demographics",
    "logit_ehr",
    "logit_genomics",
    "logit_imaging",
)
SPLITS = ("train", "val", "test")
# Key of a fusion version's registry params that records its completed training (written in
# the activation transaction; see :meth:`CohortStore.complete_version`).
COMPLETION_PARAM = "completion"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    Parameters
    ----------
    url : str
        Any SQLAlchemy URL, e.g. ``sqlite:///artifacts/riskfusion.db`` or
        ``postgresql+psycopg://127.0.0.1/riskfusion``. ``sqlite://`` is an in-memory store
        shared by every connection of the engine (for tests).

    Returns
    -------
    Engine
        The configured engine. Its SQL errors never show the statement's parameters (patient
        ids and values); logs and tracebacks carry the statement only.
    """
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
            hide_parameters=True,  # SQL errors must not print patient rows into logs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # REPLACE then fires delete triggers too (the audit trail's delete trigger refuses).
            cursor.execute("PRAGMA recursive_triggers=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


@dataclass(frozen=True, slots=True)
class CohortTables:
    """A whole cohort in wide frames, ready to be written in one transaction.

    Attributes
    ----------
    patients : DataFrame
        ``patient_id, split, age, sex, ethnicity, site``.
    outcomes : DataFrame
        ``patient_id, treatment, label, event_time, event``.
    ehr : DataFrame
        ``patient_id`` plus one float column per EHR feature (NaN = not recorded).
    genomics : DataFrame
        ``patient_id`` plus one integer column per genomic feature.
    features : DataFrame
        Feature catalogue: ``name, modality, label, unit, kind, low, high, description`` in
        model-input order.
    images : DataFrame
        ``patient_id, path, sha256, height, width, site, mask_path``.
    truth : DataFrame or None
        Synthetic cohorts: ``patient_id, true_risk, lesion_count, lesion_area, logit_*``.
    counterfactuals : DataFrame or None
        Synthetic cohorts: ``patient_id, treatment, risk`` (true risk under each option).
    source : str
        Where the cohort came from (``"synthetic"`` or an import name).
    """

    patients: pd.DataFrame
    outcomes: pd.DataFrame
    ehr: pd.DataFrame
    genomics: pd.DataFrame
    features: pd.DataFrame
    images: pd.DataFrame
    truth: pd.DataFrame | None = None
    counterfactuals: pd.DataFrame | None = None
    source: str = "synthetic"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One model registry entry."""

    version: str
    kind: str
    created_at: datetime
    artifact_path: str
    sha256: str
    metrics: Mapping[str, Any]
    params: Mapping[str, Any]
    parent_version: str | None = None
    is_active: bool = False


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """Where one patient's scan lives."""

    image_id: int
    patient_id: str
    path: str
    sha256: str
    height: int
    width: int
    site: str
    mask_path: str | None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything stored about one patient (one indexed look-up per table)."""

    patient_id: str
    split: str
    age: float
    sex: str
    ethnicity: str
    site: str
    treatment: str
    label: int | None
    event_time: float | None
    event: int | None
    ehr: Mapping[str, float] = field(default_factory=dict)
    genomics: Mapping[str, int] = field(default_factory=dict)
    image: ImageRecord | None = None
    true_risk: float | None = None
    counterfactual_risks: Mapping[str, float] = field(default_factory=dict)
    source: str = ""  # cohort source: ``synthetic`` or ``import:<name>``


IMPORT_PARTS = ("patient", "outcome", "genomics", "image")
"""Parts of an imported patient, each hashed and rewritten on its own (see ``import_cohort``)."""


@dataclass(frozen=True, slots=True)
class ImportTables:
    """A validated imported cohort plus its content hashes (built by :mod:`data.ingest`).

    Attributes
    ----------
    source : str
        ``"import:<cohort name>"``; a store holds one cohort source.
    patients : DataFrame
        ``patient_id, split, age, sex, ethnicity, site``.
    outcomes : DataFrame
        ``patient_id, treatment, label, event_time, event``.
    ehr, genomics : DataFrame
        ``patient_id`` plus one column per feature (wide; NaN = not recorded).
    features : DataFrame
        Feature catalogue (``name, modality, label, unit, kind, low, high, description``).
    images : DataFrame
        ``patient_id, path, sha256, height, width, site, mask_path`` (preprocessed scans).
    hashes : DataFrame
        ``patient_id, part, sha256``: one row per patient and part of :data:`IMPORT_PARTS`.
    files : Mapping[str, str]
        SHA-256 of every imported file, by path relative to the cohort folder.
    """

    source: str
    patients: pd.DataFrame
    outcomes: pd.DataFrame
    ehr: pd.DataFrame
    genomics: pd.DataFrame
    features: pd.DataFrame
    images: pd.DataFrame
    hashes: pd.DataFrame
    files: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ImportCounts:
    """What one import changed.

    Attributes
    ----------
    batch_id : str
        The ``import_batches`` row of this import.
    added, updated, unchanged : int
        Patients new to the store, with at least one changed part, and untouched.
    parts : Mapping[str, int]
        Rewritten parts by name (``patient``, ``outcome``, ``genomics``, ``image``).
    """

    batch_id: str
    added: int
    updated: int
    unchanged: int
    parts: Mapping[str, int]


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Frame rows as dicts of plain Python values, NaN -> None."""
    subset = frame.loc[:, list(columns)].astype(object)
    subset = subset.where(pd.notna(subset), None)
    rows: list[dict[str, Any]] = [
        {str(key): value for key, value in row.items()} for row in subset.to_dict("records")
    ]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.generic):
                row[key] = value.item()
    return rows


def _insert_chunks(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), WRITE_CHUNK):
        conn.execute(insert(table), rows[start : start + WRITE_CHUNK])


def _long_rows(wide: pd.DataFrame, *, as_int: bool) -> list[dict[str, Any]]:
    """Wide ``patient_id`` + feature columns -> long rows; missing values get no row."""
    long = wide.melt(id_vars="patient_id", var_name="feature", value_name="value").dropna()
    values = long["value"].to_numpy()
    converted = values.astype(np.int64) if as_int else values.astype(np.float64)
    return [
        {"patient_id": pid, "feature": feat, "value": val.item()}
        for pid, feat, val in zip(
            long["patient_id"].tolist(), long["feature"].tolist(), converted, strict=True
        )
    ]


def _prefix_successor(prefix: str) -> str:
    """Smallest string above every string that starts with ``prefix`` (for range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {list(SPLITS)} or None for all.")


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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-trail event (see :class:`data.schema.AuditEvent`).

    Attributes
    ----------
    actor : str
        Who: the signed-in identity (e-mail or local user name).
    role : str
        The role the actor acted in.
    action : str
        One of :data:`AUDIT_ACTIONS`.
    patient_id : str or None
        The patient concerned, if any.
    model_version : str or None
        The model version whose output was shown or changed, if any.
    detail : Mapping[str, Any]
        Small JSON-able context (page, overrides, export format, row counts).
    """

    actor: str
    role: str
    action: str
    patient_id: str | None = None
    model_version: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def _insert_audit(conn: Connection, entry: AuditEntry) -> None:
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


@dataclass(frozen=True, slots=True)
class AuditChainCheck:
    """Result of :meth:`CohortStore.verify_audit_chain`.

    Attributes
    ----------
    events : int
        Events checked.
    head_id, head_hash : int or None, str or None
        The newest event and its hash (write them down elsewhere to detect a later truncation
        or a recomputed chain: ``riskfusion audit-trail verify --expect ID:HASH``).
    bad_event_id : int or None
        The first event that fails the check (None when the chain is intact).
    problem : str or None
        What is wrong with it, in words.
    """

    events: int
    head_id: int | None
    head_hash: str | None
    bad_event_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every event matches its hash and follows the one before it."""
        return self.problem is None


_PREDICTION_FK = (
    "Cannot store predictions of model {version!r}: register the version first and score "
    "only stored patients (a patient id or the version is unknown). Nothing was written."
)


def _prediction_rows(
    model_version: str, patient_ids: Sequence[str], risks: npt.ArrayLike
) -> list[dict[str, Any]]:
    """Checked prediction rows: one finite probability per distinct patient."""
    values = np.asarray(risks, dtype=np.float64)
    if len(values) != len(patient_ids):
        raise ValueError(
            f"Got {len(patient_ids)} patient ids but {len(values)} risks; pass one risk each."
        )
    if len(values) and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1):
        raise ValueError("Risks must be finite probabilities in [0, 1].")
    ids = pd.Index(list(patient_ids))
    if ids.has_duplicates:
        twice = sorted(map(str, ids[ids.duplicated()].unique()))[:5]
        raise ValueError(f"Patient ids given more than once, e.g. {twice}; pass each once.")
    now = datetime.now(UTC)
    return [
        {"model_version": model_version, "patient_id": pid, "risk": float(r), "created_at": now}
        for pid, r in zip(patient_ids, values, strict=True)
    ]


def _replace_predictions(
    conn: Connection, model_version: str, rows: Sequence[dict[str, Any]]
) -> None:
    for start in range(0, len(rows), WRITE_CHUNK):
        chunk = list(rows[start : start + WRITE_CHUNK])
        conn.execute(
            delete(Prediction).where(
                Prediction.model_version == model_version,
                Prediction.patient_id.in_([row["patient_id"] for row in chunk]),
            )
        )
        conn.execute(insert(Prediction), chunk)


def _explanation_rows(
    model_version: str,
    patient_ids: Sequence[str],
    base_values: npt.ArrayLike,
    values: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    """Checked explanation rows (SHAP values packed as float64 bytes)."""
    shap = np.ascontiguousarray(values, dtype=np.float64)
    base = np.asarray(base_values, dtype=np.float64)
    if shap.ndim != 2 or len(shap) != len(patient_ids) or base.shape != (len(patient_ids),):
        raise ValueError(
            f"Got {len(patient_ids)} patient ids, base values of shape {base.shape} and "
            f"SHAP values of shape {shap.shape}; pass (n,) base values and (n, n_features) "
            "values, one row per patient."
        )
    if not (np.all(np.isfinite(shap)) and np.all(np.isfinite(base))):
        raise ValueError("SHAP and base values must be finite; recompute the explanations.")
    return [
        {
            "model_version": model_version,
            "patient_id": str(pid),
            "base_value": float(b),
            "dim": int(shap.shape[1]),
            "shap": row.tobytes(),
        }
        for pid, b, row in zip(patient_ids, base, shap, strict=True)
    ]


def _replace_explanations(
    conn: Connection, model_version: str, rows: Sequence[dict[str, Any]]
) -> None:
    ids = [row["patient_id"] for row in rows]
    for start in range(0, len(ids), WRITE_CHUNK):
        conn.execute(
            delete(StoredExplanation).where(
                StoredExplanation.model_version == model_version,
                StoredExplanation.patient_id.in_(ids[start : start + WRITE_CHUNK]),
            )
        )
    _insert_chunks(conn, StoredExplanation, list(rows))


@dataclass(frozen=True, slots=True)
class EmbeddingBatch:
    """Embedding rows of one imaging version: one per (image, fold net).

    Attributes
    ----------
    model_version : str
        A registered imaging model version.
    image_ids, folds, in_training, logits : ndarray of shape (n,)
        Image, the fold net that embedded it, whether that net trained on it, its logit.
    vectors : ndarray of shape (n, dim)
        Penultimate-layer embeddings, stored as packed float32.
    """

    model_version: str
    image_ids: npt.NDArray[Any]
    folds: npt.NDArray[Any]
    in_training: npt.NDArray[Any]
    logits: npt.NDArray[Any]
    vectors: npt.NDArray[np.float32]


def _embedding_rows(batch: EmbeddingBatch) -> list[dict[str, Any]]:
    """Checked embedding rows (vectors packed as float32 bytes)."""
    ids = np.asarray(batch.image_ids)
    vecs = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != len(ids):
        raise ValueError(
            f"vectors must have shape (n_images, dim) with n_images={len(ids)}; got {vecs.shape}."
        )
    return [
        {
            "image_id": int(image_id),
            "model_version": batch.model_version,
            "fold": int(fold),
            "in_training": bool(seen),
            "logit": float(logit),
            "dim": int(vecs.shape[1]),
            "vector": vec.tobytes(),
        }
        for image_id, fold, seen, logit, vec in zip(
            ids,
            np.asarray(batch.folds),
            np.asarray(batch.in_training),
            np.asarray(batch.logits),
            vecs,
            strict=True,
        )
    ]


def _replace_embeddings(conn: Connection, model_version: str, rows: list[dict[str, Any]]) -> None:
    """Delete the images' rows of the version (a partial set included), then insert ``rows``."""
    ids = sorted({row["image_id"] for row in rows})
    for start in range(0, len(ids), WRITE_CHUNK):
        conn.execute(
            delete(Embedding).where(
                Embedding.model_version == model_version,
                Embedding.image_id.in_(ids[start : start + WRITE_CHUNK]),
            )
        )
    _insert_chunks(conn, Embedding, rows)


class CohortStore:
    """Transactional reads and writes of cohorts, models, embeddings and predictions.

    Parameters
    ----------
    engine : Engine
        From :func:`make_engine`.

    Examples
    --------
    >>> store = CohortStore(make_engine("sqlite://"))
    >>> store.create_schema()
    >>> store.count_patients()
    0
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ schema and status
    def create_schema(self) -> None:
        """Create every table that does not exist yet (idempotent); upgrade the audit trail."""
        Base.metadata.create_all(self.engine)
        self.upgrade_audit_trail()

    def count_patients(self, split: str | None = None) -> int:
        """Number of stored patients, optionally in one split."""
        _check_split(split)
        query = select(func.count()).select_from(Patient)
        if split is not None:
            query = query.where(Patient.split == split)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def has_ground_truth(self) -> bool:
        """Whether the stored cohort carries synthetic ground truth."""
        with self.engine.connect() as conn:
            return conn.execute(select(GroundTruth.patient_id).limit(1)).first() is not None

    def load_truth(self) -> pd.DataFrame | None:
        """Synthetic ground truth of every patient, or None for a cohort without it.

        Columns: ``patient_id``, :data:`TRUTH_COLUMNS` and ``true_risk_<treatment>`` per stored
        treatment option, in patient-id order.
        """
        if not self.has_ground_truth():
            return None
        columns = [getattr(GroundTruth, name) for name in TRUTH_COLUMNS if name != "patient_id"]
        with self.engine.connect() as conn:
            truth = pd.DataFrame(
                conn.execute(
                    select(GroundTruth.patient_id, *columns).order_by(GroundTruth.patient_id)
                )
                .mappings()
                .all()
            )
            rows = [
                tuple(row)
                for row in conn.execute(
                    select(
                        CounterfactualRisk.patient_id,
                        CounterfactualRisk.treatment,
                        CounterfactualRisk.risk,
                    )
                )
            ]
        if rows:
            long = pd.DataFrame.from_records(rows, columns=["patient_id", "treatment", "risk"])
            wide = long.pivot(index="patient_id", columns="treatment", values="risk")
            truth = truth.join(wide.add_prefix("true_risk_"), on="patient_id")
        return truth

    def cohort_sources(self) -> list[str]:
        """Distinct ``patients.source`` values (``synthetic`` or ``import:<name>``)."""
        with self.engine.connect() as conn:
            return sorted(str(s) for s in conn.execute(select(Patient.source).distinct()).scalars())

    def import_batches(self) -> list[dict[str, Any]]:
        """Every import that changed the store, oldest first.

        Keys: ``batch_id, created_at, source, files, counts``.
        """
        query = select(
            ImportBatch.batch_id,
            ImportBatch.created_at,
            ImportBatch.source,
            ImportBatch.files,
            ImportBatch.counts,
        ).order_by(ImportBatch.created_at, ImportBatch.batch_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # ------------------------------------------------------------------ cohort writes
    def write_cohort(self, tables: CohortTables) -> int:
        """Write a whole cohort in one transaction.

        Parameters
        ----------
        tables : CohortTables
            The cohort; every frame is keyed by ``patient_id``.

        Returns
        -------
        int
            Number of patients written.

        Raises
        ------
        ValueError
            If a frame lacks a required column or a split is unknown. Nothing is written.
        sqlalchemy.exc.IntegrityError
            If a patient id already exists or a row references an unknown patient; the
            transaction is rolled back and the store is as before.
        """
        for name, frame, columns in (
            ("patients", tables.patients, PATIENT_COLUMNS),
            ("outcomes", tables.outcomes, OUTCOME_COLUMNS),
            ("images", tables.images, IMAGE_COLUMNS),
            ("features", tables.features, FEATURE_COLUMNS),
        ):
            missing = sorted(set(columns) - set(frame.columns))
            if missing:
                raise ValueError(
                    f"Cohort table {name!r} lacks columns {missing}; required: {list(columns)}."
                )
        bad_splits = sorted(set(tables.patients["split"]) - set(SPLITS))
        if bad_splits:
            raise ValueError(f"Unknown split values {bad_splits}; allowed: {list(SPLITS)}.")
        features = tables.features.reset_index(drop=True).assign(
            position=lambda df: np.arange(len(df))
        )
        with self.engine.begin() as conn:
            existing = set(conn.execute(select(Feature.name)).scalars())
            new_features = features[~features["name"].isin(existing)]
            _insert_chunks(conn, Feature, _records(new_features, (*FEATURE_COLUMNS, "position")))
            patient_rows = _records(tables.patients, ("patient_id", "split"))
            for row in patient_rows:
                row["source"] = tables.source
            _insert_chunks(conn, Patient, patient_rows)
            _insert_chunks(
                conn,
                Demographics,
                _records(tables.patients, ("patient_id", "age", "sex", "ethnicity", "site")),
            )
            _insert_chunks(conn, Outcome, _records(tables.outcomes, OUTCOME_COLUMNS))
            _insert_chunks(conn, EhrValue, _long_rows(tables.ehr, as_int=False))
            _insert_chunks(conn, GenomicValue, _long_rows(tables.genomics, as_int=True))
            _insert_chunks(conn, Image, _records(tables.images, IMAGE_COLUMNS))
            if tables.truth is not None:
                _insert_chunks(conn, GroundTruth, _records(tables.truth, TRUTH_COLUMNS))
            if tables.counterfactuals is not None:
                _insert_chunks(
                    conn,
                    CounterfactualRisk,
                    _records(tables.counterfactuals, ("patient_id", "treatment", "risk")),
                )
        logger.info("wrote cohort: %d patients (source %s)", len(patient_rows), tables.source)
        return len(patient_rows)

    def import_cohort(
        self, tables: ImportTables, *, audit: AuditEntry | None = None
    ) -> ImportCounts:
        """Write an imported cohort in one transaction, rewriting only what changed.

        Each patient's parts (:data:`IMPORT_PARTS`) carry a content hash: a part whose hash is
        stored already is skipped, a changed part is deleted and written again (a changed scan
        also drops that scan's embeddings; changed model inputs drop the patient's stored
        predictions and explanations, which ``riskfusion score`` recomputes), a new patient is
        inserted with its split. Patients
        stored earlier but absent from this import are kept. On any error (or a kill) nothing
        of the import stays.

        Parameters
        ----------
        tables : ImportTables
            The validated cohort with its hashes.
        audit : AuditEntry or None, default=None
            Appended to the audit trail in the same transaction (its detail gains the batch
            id and counts) when the import changes anything.

        Returns
        -------
        ImportCounts
            Added, updated and unchanged patients and rewritten parts.

        Raises
        ------
        CohortError
            If the store holds a cohort from another source (the synthetic demo or another
            import); nothing is written.
        """
        ids = tables.patients["patient_id"].astype(str).tolist()
        hash_rows = tables.hashes.loc[:, ["patient_id", "part", "sha256"]]
        new_hashes = {
            (str(pid), str(part)): str(sha)
            for pid, part, sha in hash_rows.itertuples(index=False, name=None)
        }
        batch_id = f"import-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"
        with self.engine.begin() as conn:
            sources = sorted(
                str(s) for s in conn.execute(select(Patient.source).distinct()).scalars()
            )
            other = [source for source in sources if source != tables.source]
            if other:
                raise CohortError(
                    f"The store holds patients from {other}, not {tables.source!r}; a store "
                    "holds one cohort. Import into a fresh store (set RISKFUSION_HOME or "
                    "RISKFUSION_DATABASE_URL to a new location)."
                )
            stored: dict[tuple[str, str], str] = {}
            known: set[str] = set()
            for start in range(0, len(ids), WRITE_CHUNK):
                chunk = ids[start : start + WRITE_CHUNK]
                known.update(
                    conn.execute(
                        select(Patient.patient_id).where(Patient.patient_id.in_(chunk))
                    ).scalars()
                )
                for pid, part, sha in conn.execute(
                    select(ImportHash.patient_id, ImportHash.part, ImportHash.sha256).where(
                        ImportHash.patient_id.in_(chunk)
                    )
                ):
                    stored[(str(pid), str(part))] = str(sha)
            changed: dict[str, list[str]] = {}
            for part in IMPORT_PARTS:
                changed[part] = [
                    pid for pid in ids if stored.get((pid, part)) != new_hashes.get((pid, part))
                ]
            added = [pid for pid in ids if pid not in known]
            touched = set().union(*changed.values())
            stored_features = {
                row["name"]: {key: row[key] for key in FEATURE_COLUMNS}
                for row in conn.execute(select(Feature)).mappings()
            }
            catalogue_changed = any(
                stored_features.get(row["name"]) != row
                for row in _records(tables.features, FEATURE_COLUMNS)
            )
            if not touched and not catalogue_changed:
                # The same files again: leave the store exactly as it is.
                logger.info("import of %s: nothing changed", tables.source)
                return ImportCounts("", 0, 0, len(ids), dict.fromkeys(IMPORT_PARTS, 0))
            conn.execute(
                insert(ImportBatch).values(
                    batch_id=batch_id,
                    created_at=datetime.now(UTC),
                    source=tables.source,
                    files=dict(tables.files),
                    counts={
                        "added": len(added),
                        "updated": len(touched - set(added)),
                        "unchanged": len(ids) - len(touched),
                        "parts": {part: len(pids) for part, pids in changed.items()},
                    },
                )
            )
            self._upsert_features(conn, tables.features)
            by_id = tables.patients.set_index("patient_id", drop=False)
            _insert_chunks(
                conn,
                Patient,
                [
                    {**row, "source": tables.source}
                    for row in _records(by_id.loc[added], ("patient_id", "split"))
                ],
            )
            for part, table_rows in (
                ("patient", [(Demographics, tables.patients), (EhrValue, tables.ehr)]),
                ("outcome", [(Outcome, tables.outcomes)]),
                ("genomics", [(GenomicValue, tables.genomics)]),
                ("image", [(Image, tables.images)]),
            ):
                self._rewrite_part(conn, part, changed[part], table_rows)
            # A prediction made from a patient's old inputs is stale: `riskfusion score` redoes it.
            stale = sorted(
                set().union(*(changed[part] for part in ("patient", "genomics", "image")))
                - set(added)
            )
            for start in range(0, len(stale), WRITE_CHUNK):
                chunk = stale[start : start + WRITE_CHUNK]
                conn.execute(delete(Prediction).where(Prediction.patient_id.in_(chunk)))
                conn.execute(
                    delete(StoredExplanation).where(StoredExplanation.patient_id.in_(chunk))
                )
            for part, pids in changed.items():
                rows = [
                    {"patient_id": pid, "part": part, "sha256": new_hashes[(pid, part)]}
                    for pid in pids
                    if (pid, part) in new_hashes
                ]
                for start in range(0, len(pids), WRITE_CHUNK):
                    conn.execute(
                        delete(ImportHash).where(
                            ImportHash.part == part,
                            ImportHash.patient_id.in_(pids[start : start + WRITE_CHUNK]),
                        )
                    )
                _insert_chunks(conn, ImportHash, [{**row, "batch_id": batch_id} for row in rows])
            if audit is not None:
                detail = {**audit.detail, "batch_id": batch_id, "added": len(added)}
                _insert_audit(conn, replace(audit, detail=detail))
        counts = ImportCounts(
            batch_id=batch_id,
            added=len(added),
            updated=len(touched - set(added)),
            unchanged=len(ids) - len(touched),
            parts={part: len(pids) for part, pids in changed.items()},
        )
        logger.info(
            "imported %s: %d added, %d updated, %d unchanged",
            tables.source,
            counts.added,
            counts.updated,
            counts.unchanged,
        )
        return counts

    def import_hashes(self, part: str, patient_ids: Sequence[str]) -> dict[str, str]:
        """Stored content hashes of one import part, by patient id (primary-key look-ups).

        Parameters
        ----------
        part : str
            One of :data:`IMPORT_PARTS`.
        patient_ids : sequence of str
            Stored patient ids to look up; ids without a hash are absent from the result.

        Returns
        -------
        dict of str to str
            ``patient_id -> sha256``.
        """
        if part not in IMPORT_PARTS:
            raise ValueError(f"Unknown import part {part!r}; use one of {list(IMPORT_PARTS)}.")
        ids = list(patient_ids)
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), WRITE_CHUNK):
                query = select(ImportHash.patient_id, ImportHash.sha256).where(
                    ImportHash.part == part,
                    ImportHash.patient_id.in_(ids[start : start + WRITE_CHUNK]),
                )
                found.update((str(pid), str(sha)) for pid, sha in conn.execute(query))
        return found

    @staticmethod
    def _upsert_features(conn: Connection, features: pd.DataFrame) -> None:
        """Insert new catalogue entries (appended in order); update the metadata of known ones."""
        existing = dict(conn.execute(select(Feature.name, Feature.position)).all())
        position = max(existing.values(), default=-1) + 1
        for row in _records(features, FEATURE_COLUMNS):
            if row["name"] in existing:
                conn.execute(
                    update(Feature)
                    .where(Feature.name == row["name"])
                    .values({k: v for k, v in row.items() if k != "name"})
                )
            else:
                conn.execute(insert(Feature).values(**row, position=position))
                position += 1

    @staticmethod
    def _rewrite_part(
        conn: Connection, part: str, pids: Sequence[str], tables: Sequence[tuple[Any, pd.DataFrame]]
    ) -> None:
        """Delete and re-insert the rows of one part for some patients."""
        for start in range(0, len(pids), WRITE_CHUNK):
            chunk = list(pids[start : start + WRITE_CHUNK])
            if part == "image":
                image_ids = select(Image.image_id).where(Image.patient_id.in_(chunk))
                conn.execute(delete(Embedding).where(Embedding.image_id.in_(image_ids)))
            for table, frame in tables:
                conn.execute(delete(table).where(table.patient_id.in_(chunk)))
                rows = frame[frame["patient_id"].isin(chunk)]
                if table is Demographics:
                    records = _records(rows, ("patient_id", "age", "sex", "ethnicity", "site"))
                    # The split is part of the patient part: keep ``patients.split`` in step.
                    if len(rows):
                        conn.execute(
                            update(Patient)
                            .where(Patient.patient_id == bindparam("pid"))
                            .values(split=bindparam("new_split")),
                            [
                                {"pid": pid, "new_split": split}
                                for pid, split in zip(
                                    rows["patient_id"], rows["split"], strict=True
                                )
                            ],
                        )
                elif table is Outcome:
                    records = _records(rows, OUTCOME_COLUMNS)
                elif table is Image:
                    records = _records(rows, IMAGE_COLUMNS)
                else:
                    records = _long_rows(rows, as_int=table is GenomicValue)
                _insert_chunks(conn, table, records)

    # ------------------------------------------------------------------ model registry
    def register_model(self, record: ModelRecord, *, activate: bool = True) -> None:
        """Add a model to the registry; if ``activate``, it replaces the active one of its kind.

        Both happen in one transaction, so exactly one model per kind is active at any time.
        """
        with self.engine.begin() as conn:
            if activate:
                conn.execute(
                    update(ModelVersion)
                    .where(ModelVersion.kind == record.kind)
                    .values(is_active=False)
                )
            conn.execute(
                insert(ModelVersion).values(
                    version=record.version,
                    kind=record.kind,
                    created_at=record.created_at,
                    artifact_path=record.artifact_path,
                    sha256=record.sha256,
                    metrics=dict(record.metrics),
                    params=dict(record.params),
                    parent_version=record.parent_version,
                    is_active=activate,
                )
            )

    def activate_model(self, version: str, *, audit: AuditEntry | None = None) -> None:
        """Make a registered version the active one of its kind (one transaction).

        ``audit``, when given, is appended to the audit trail in the same transaction.

        Raises
        ------
        KeyError
            If the version is not registered.
        """
        self.activate_models([version], audit=audit)

    def activate_models(self, versions: Sequence[str], *, audit: AuditEntry | None = None) -> None:
        """Activate several versions (e.g. an imaging model and its fusion model) at once.

        One transaction: readers see either the previous set of active models or the new one,
        never a fusion model with another version's imaging nets. ``audit`` is appended in it.

        Raises
        ------
        KeyError
            If a version is not registered (nothing changes then).
        """
        with self.engine.begin() as conn:
            self._activate_in(conn, versions, audit)

    @staticmethod
    def _activate_in(conn: Connection, versions: Sequence[str], audit: AuditEntry | None) -> None:
        """Activate ``versions`` (and append ``audit``) inside the caller's transaction ``conn``."""
        if audit is not None:
            _insert_audit(conn, audit)
        for version in versions:
            kind = conn.execute(
                select(ModelVersion.kind).where(ModelVersion.version == version)
            ).scalar_one_or_none()
            if kind is None:
                raise KeyError(f"Model version {version!r} is not registered.")
            conn.execute(
                update(ModelVersion).where(ModelVersion.kind == kind).values(is_active=False)
            )
            conn.execute(
                update(ModelVersion).where(ModelVersion.version == version).values(is_active=True)
            )

    def complete_version(
        self,
        version: str,
        completion: Mapping[str, Any],
        *,
        activate: Sequence[str],
        audit: AuditEntry | None = None,
    ) -> None:
        """Record that a version's training finished and activate it, in one transaction.

        ``completion`` (the verified parts and counts) goes into the version's registry params
        under :data:`COMPLETION_PARAM`; readers list and activate only versions that have it.
        ``activate`` (the version and every part of it) are made active and ``audit`` is
        appended in the same transaction, so a kill leaves neither the record nor the switch.

        Raises
        ------
        KeyError
            If ``version`` or one of ``activate`` is not registered (nothing changes then).
        """
        with self.engine.begin() as conn:
            params = conn.execute(
                select(ModelVersion.params).where(ModelVersion.version == version)
            ).scalar_one_or_none()
            if params is None:
                raise KeyError(f"Model version {version!r} is not registered.")
            conn.execute(
                update(ModelVersion)
                .where(ModelVersion.version == version)
                .values(params={**dict(params), COMPLETION_PARAM: dict(completion)})
            )
            self._activate_in(conn, activate, audit)

    def list_models(self, kind: str | None = None) -> list[ModelRecord]:
        """Registry entries, newest first, optionally of one kind."""
        query = select(ModelVersion).order_by(ModelVersion.created_at.desc())
        if kind is not None:
            query = query.where(ModelVersion.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            ModelRecord(
                version=row["version"],
                kind=row["kind"],
                created_at=row["created_at"],
                artifact_path=row["artifact_path"],
                sha256=row["sha256"],
                metrics=row["metrics"],
                params=row["params"],
                parent_version=row["parent_version"],
                is_active=bool(row["is_active"]),
            )
            for row in rows
        ]

    def active_model(self, kind: str) -> ModelRecord:
        """The active model of a kind.

        Raises
        ------
        StoreNotBuiltError
            If no model of that kind is registered yet.
        """
        for record in self.list_models(kind):
            if record.is_active:
                return record
        raise StoreNotBuiltError(
            f"No active {kind!r} model in the store; build the demo with `riskfusion demo "
            "--no-serve`, or import a cohort and run `riskfusion train`."
        )

    # ------------------------------------------------------------------ embeddings / predictions
    def write_embeddings(
        self,
        model_version: str,
        image_ids: npt.ArrayLike,
        folds: npt.ArrayLike,
        in_training: npt.ArrayLike,
        logits: npt.ArrayLike,
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Store one embedding row per (image, fold net) of an imaging model version.

        One transaction: pass every net's rows of a chunk in one call, so that no image is
        left with the embedding of only some nets.

        Parameters
        ----------
        model_version : str
            A registered imaging model version.
        image_ids, folds, in_training, logits : array-like of shape (n,)
            Image, the fold net that embedded it, whether that net trained on it, its logit.
        vectors : ndarray of shape (n, dim)
            Penultimate-layer embeddings, stored as packed float32.
        """
        rows = _embedding_rows(
            EmbeddingBatch(
                model_version,
                np.asarray(image_ids),
                np.asarray(folds),
                np.asarray(in_training),
                np.asarray(logits),
                vectors,
            )
        )
        with self.engine.begin() as conn:
            _insert_chunks(conn, Embedding, rows)

    def count_embeddings(self, model_version: str) -> int:
        """Number of embedding rows (image x fold net) of an imaging model version."""
        return self._count_of_version(Embedding, model_version)

    def load_embeddings(self, model_version: str) -> pd.DataFrame:
        """Embedding rows of a version: ``image_id, patient_id, fold, in_training, logit, vector``.

        ``vector`` holds float32 arrays.
        """
        query = (
            select(
                Embedding.image_id,
                Image.patient_id,
                Embedding.fold,
                Embedding.in_training,
                Embedding.logit,
                Embedding.vector,
            )
            .join(Image, Image.image_id == Embedding.image_id)
            .where(Embedding.model_version == model_version)
            .order_by(Embedding.image_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            return pd.DataFrame(
                columns=["image_id", "patient_id", "fold", "in_training", "logit", "vector"]
            )
        vectors = [np.frombuffer(blob, dtype=np.float32) for blob in frame["vector"]]
        frame["vector"] = pd.Series(vectors, index=frame.index, dtype=object)
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def split_logits(self, model_version: str, split: str) -> pd.DataFrame:
        """Per-net logits of one split's scans (no vectors), filtered in SQL.

        Columns: ``patient_id, fold, in_training, logit`` (what
        :func:`fusion.features.image_scores` needs), in (patient id, fold) order.
        """
        _check_split(split)
        query = (
            select(Image.patient_id, Embedding.fold, Embedding.in_training, Embedding.logit)
            .join(Image, Image.image_id == Embedding.image_id)
            .join(Patient, Patient.patient_id == Image.patient_id)
            .where(Embedding.model_version == model_version, Patient.split == split)
            .order_by(Image.patient_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=["patient_id", "fold", "in_training", "logit"])
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def patient_logits(self, model_version: str, patient_ids: Sequence[str]) -> pd.DataFrame:
        """Per-net logits of some patients' scans (no vectors).

        Columns: ``image_id, patient_id, fold, in_training, logit`` in (patient id, fold)
        order; patients without a scan or without embeddings of the version are absent.
        """
        query = (
            select(
                Embedding.image_id,
                Image.patient_id,
                Embedding.fold,
                Embedding.in_training,
                Embedding.logit,
            )
            .join(Image, Image.image_id == Embedding.image_id)
            .where(
                Embedding.model_version == model_version,
                Image.patient_id.in_([str(pid) for pid in patient_ids]),
            )
            .order_by(Image.patient_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(
            rows, columns=["image_id", "patient_id", "fold", "in_training", "logit"]
        )
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def image_logits(self, image_id: int, model_version: str) -> pd.DataFrame:
        """One image's rows of an imaging version: ``fold, in_training, logit``."""
        query = (
            select(Embedding.fold, Embedding.in_training, Embedding.logit)
            .where(Embedding.image_id == image_id, Embedding.model_version == model_version)
            .order_by(Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=["fold", "in_training", "logit"])
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def write_predictions(
        self, model_version: str, patient_ids: Sequence[str], risks: npt.ArrayLike
    ) -> None:
        """Store (replace) the risk of each patient under a model version, in one transaction."""
        rows = _prediction_rows(model_version, patient_ids, risks)
        try:
            with self.engine.begin() as conn:
                _replace_predictions(conn, model_version, rows)
        except IntegrityError as err:
            raise CohortError(_PREDICTION_FK.format(version=model_version)) from err

    def write_scored(
        self,
        model_version: str,
        patient_ids: Sequence[str],
        risks: npt.ArrayLike,
        base_value: float,
        values: npt.NDArray[np.float64],
        *,
        audit: AuditEntry | None = None,
        embeddings: EmbeddingBatch | None = None,
    ) -> None:
        """Store embeddings, risks and SHAP values of patients together, in one transaction.

        A batch-scoring chunk is all or nothing, so a patient never has a risk without its
        explanation (see :meth:`write_predictions` and :meth:`write_explanations`) nor the
        embedding of only some imaging nets. ``embeddings`` (every net's rows of the chunk's
        newly embedded scans) replace any rows those images had under that imaging version;
        ``audit`` is appended in the same transaction.
        """
        rows = _prediction_rows(model_version, patient_ids, risks)
        explanations = _explanation_rows(
            model_version, patient_ids, np.full(len(rows), base_value), values
        )
        vectors = [] if embeddings is None else _embedding_rows(embeddings)
        try:
            with self.engine.begin() as conn:
                if embeddings is not None and vectors:
                    _replace_embeddings(conn, embeddings.model_version, vectors)
                _replace_predictions(conn, model_version, rows)
                _replace_explanations(conn, model_version, explanations)
                if audit is not None:
                    _insert_audit(conn, audit)
        except IntegrityError as err:
            raise CohortError(_PREDICTION_FK.format(version=model_version)) from err

    def get_prediction(self, patient_id: str, model_version: str) -> float | None:
        """Stored risk of one patient under one version, or None if not scored."""
        query = select(Prediction.risk).where(
            Prediction.patient_id == patient_id, Prediction.model_version == model_version
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else float(value)

    def count_predictions(self, model_version: str) -> int:
        """Number of patients scored by a model version."""
        return self._count_of_version(Prediction, model_version)

    def _count_of_version(self, table: Any, model_version: str) -> int:
        query = select(func.count()).select_from(table).where(table.model_version == model_version)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_unscored_ids(
        self, model_version: str, *, chunk_size: int = 5_000
    ) -> Iterator[list[str]]:
        """Stream the ids of patients without a prediction of ``model_version``, in id order.

        Keyset pagination over the patients' primary key with an anti-join on the predictions'
        primary key: each chunk is one indexed query, whatever the cohort size.
        """
        scored = select(Prediction.patient_id).where(
            Prediction.model_version == model_version,
            Prediction.patient_id == Patient.patient_id,
        )
        last = ""
        while True:
            query = (
                select(Patient.patient_id)
                .where(Patient.patient_id > last, ~scored.exists())
                .order_by(Patient.patient_id)
                .limit(chunk_size)
            )
            with self.engine.connect() as conn:
                ids = [str(pid) for pid in conn.execute(query).scalars()]
            if not ids:
                return
            last = ids[-1]
            yield ids

    def top_risks(self, model_version: str, *, split: str, limit: int) -> pd.DataFrame:
        """The ``limit`` highest risks of one split under a version (ties by patient id).

        Columns ``patient_id, risk``. Walks the ``(model_version, risk)`` index from the top,
        so the cost does not grow with the cohort.
        """
        _check_split(split)
        query = (
            select(Prediction.patient_id, Prediction.risk)
            .join(Patient, Patient.patient_id == Prediction.patient_id)
            .where(Prediction.model_version == model_version, Patient.split == split)
            .order_by(Prediction.risk.desc(), Prediction.patient_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        return pd.DataFrame(rows, columns=["patient_id", "risk"])

    def iter_prediction_rows(
        self, model_version: str, *, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        """Stream predictions with demographics and outcome, in patient-id order, in chunks.

        Columns: ``patient_id, split, sex, age, ethnicity, site, treatment, label, risk,
        model_version`` and ``true_risk`` (NaN when the cohort has no ground truth). Keyset
        pagination on the primary key keeps memory bounded for any cohort size.
        """
        last = ""
        while True:
            query = (
                select(
                    Prediction.patient_id,
                    Patient.split,
                    Demographics.sex,
                    Demographics.age,
                    Demographics.ethnicity,
                    Demographics.site,
                    Outcome.treatment,
                    Outcome.label,
                    Prediction.risk,
                    Prediction.model_version,
                    GroundTruth.true_risk,
                )
                .join(Patient, Patient.patient_id == Prediction.patient_id)
                .join(Demographics, Demographics.patient_id == Prediction.patient_id)
                .join(Outcome, Outcome.patient_id == Prediction.patient_id)
                .outerjoin(GroundTruth, GroundTruth.patient_id == Prediction.patient_id)
                .where(Prediction.model_version == model_version, Prediction.patient_id > last)
                .order_by(Prediction.patient_id)
                .limit(chunk_size)
            )
            with self.engine.connect() as conn:
                frame = pd.DataFrame(conn.execute(query).mappings().all())
            if frame.empty:
                return
            last = str(frame["patient_id"].iloc[-1])
            frame["true_risk"] = frame["true_risk"].astype(np.float64)  # None -> NaN
            yield frame

    def split_predictions(self, model_versions: Sequence[str], split: str) -> pd.DataFrame:
        """Predictions of several model versions on one split, filtered in SQL (one query).

        Columns: ``patient_id, model_version, risk, sex, age, ethnicity, site, label`` and
        ``true_risk`` (NaN without ground truth), one row per (patient, version), in
        (patient id, version) order. Meant for the evaluation splits (validation, test), whose
        size is a fraction of the cohort.
        """
        _check_split(split)
        if split is None:
            raise ValueError("split_predictions needs a split; use iter_prediction_rows for all.")
        query = (
            select(
                Prediction.patient_id,
                Prediction.model_version,
                Prediction.risk,
                Demographics.sex,
                Demographics.age,
                Demographics.ethnicity,
                Demographics.site,
                Outcome.label,
                GroundTruth.true_risk,
            )
            .join(Patient, Patient.patient_id == Prediction.patient_id)
            .join(Demographics, Demographics.patient_id == Prediction.patient_id)
            .join(Outcome, Outcome.patient_id == Prediction.patient_id)
            .outerjoin(GroundTruth, GroundTruth.patient_id == Prediction.patient_id)
            .where(Prediction.model_version.in_(list(model_versions)), Patient.split == split)
            .order_by(Prediction.patient_id, Prediction.model_version)
        )
        columns = [
            "patient_id",
            "model_version",
            "risk",
            "sex",
            "age",
            "ethnicity",
            "site",
            "label",
            "true_risk",
        ]
        with self.engine.connect() as conn:
            frame = pd.DataFrame([tuple(row) for row in conn.execute(query)], columns=columns)
        frame["true_risk"] = frame["true_risk"].astype(np.float64)  # None -> NaN
        frame["risk"] = frame["risk"].astype(np.float64)
        return frame

    # ------------------------------------------------------------------ stored explanations
    def write_explanations(
        self,
        model_version: str,
        patient_ids: Sequence[str],
        base_values: npt.ArrayLike,
        values: npt.NDArray[np.float64],
    ) -> None:
        """Store (replace) exact SHAP values of patients under a model version (one transaction).

        Parameters
        ----------
        model_version : str
            A registered fusion model version.
        patient_ids : sequence of str, length n
            Stored patients.
        base_values : array-like of shape (n,)
            The explainer's base value (log-odds) of each row.
        values : ndarray of shape (n, n_features)
            SHAP values in the model's input order, stored as packed float64.

        Raises
        ------
        ValueError
            If the shapes disagree or a value is not finite; nothing is written.
        """
        rows = _explanation_rows(model_version, patient_ids, base_values, values)
        with self.engine.begin() as conn:
            _replace_explanations(conn, model_version, rows)

    def get_explanation(
        self, model_version: str, patient_id: str
    ) -> tuple[float, npt.NDArray[np.float64]] | None:
        """One patient's stored ``(base_value, shap values)`` under a version, or None."""
        query = select(StoredExplanation.base_value, StoredExplanation.shap).where(
            StoredExplanation.model_version == model_version,
            StoredExplanation.patient_id == patient_id,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return float(row[0]), np.frombuffer(row[1], dtype=np.float64).copy()

    def count_explanations(self, model_version: str) -> int:
        """Number of patients with stored explanations under a model version."""
        return self._count_of_version(StoredExplanation, model_version)

    def iter_explanations(
        self, model_version: str, *, split: str | None = None, chunk_size: int = 50_000
    ) -> Iterator[tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Stream stored explanations in patient-id order (keyset pagination), in chunks.

        Yields
        ------
        tuple
            ``(patient_ids, base_values (n,), values (n, n_features))`` per chunk.
        """
        _check_split(split)
        last = ""
        while True:
            query = (
                select(
                    StoredExplanation.patient_id,
                    StoredExplanation.base_value,
                    StoredExplanation.shap,
                )
                .where(
                    StoredExplanation.model_version == model_version,
                    StoredExplanation.patient_id > last,
                )
                .order_by(StoredExplanation.patient_id)
                .limit(chunk_size)
            )
            if split is not None:
                query = query.join(
                    Patient, Patient.patient_id == StoredExplanation.patient_id
                ).where(Patient.split == split)
            with self.engine.connect() as conn:
                rows: list[tuple[str, float, bytes]] = [
                    (str(pid), float(base), bytes(blob)) for pid, base, blob in conn.execute(query)
                ]
            if not rows:
                return
            last = rows[-1][0]
            yield (
                [r[0] for r in rows],
                np.array([r[1] for r in rows], dtype=np.float64),
                np.stack([np.frombuffer(r[2], dtype=np.float64) for r in rows]),
            )

    def patient_summaries(
        self, patient_ids: Sequence[str], model_version: str | None = None
    ) -> pd.DataFrame:
        """Split, outcome, true risk and stored risk of a few patients (one indexed query).

        Columns: ``patient_id, split, age, sex, label, true_risk`` and ``risk`` (NaN when the
        version has no prediction for the patient), in the order of ``patient_ids``; unknown
        ids are left out. At most 1000 ids per call (a page's worth).
        """
        ids = [str(pid) for pid in patient_ids]
        if len(ids) > 1000:
            raise ValueError(f"Got {len(ids)} patient ids; ask for at most 1000 per call.")
        columns = ["patient_id", "split", "age", "sex", "label", "true_risk", "risk"]
        if not ids:
            return pd.DataFrame(columns=columns)
        query = (
            select(
                Patient.patient_id,
                Patient.split,
                Demographics.age,
                Demographics.sex,
                Outcome.label,
                GroundTruth.true_risk,
                Prediction.risk,
            )
            .join(Demographics, Demographics.patient_id == Patient.patient_id)
            .join(Outcome, Outcome.patient_id == Patient.patient_id)
            .outerjoin(GroundTruth, GroundTruth.patient_id == Patient.patient_id)
            .outerjoin(
                Prediction,
                (Prediction.patient_id == Patient.patient_id)
                & (Prediction.model_version == (model_version or "")),
            )
            .where(Patient.patient_id.in_(ids))
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame([tuple(row) for row in conn.execute(query)], columns=columns)
        order = {pid: i for i, pid in enumerate(ids)}
        frame = frame.sort_values("patient_id", key=lambda s: s.map(order)).reset_index(drop=True)
        frame["true_risk"] = frame["true_risk"].astype(np.float64)
        frame["risk"] = frame["risk"].astype(np.float64)
        return frame

    # ------------------------------------------------------------------ reads for training
    def feature_catalog(self) -> pd.DataFrame:
        """The feature catalogue in model-input order."""
        query = select(Feature).order_by(Feature.position)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame(
            [{key: row[key] for key in (*FEATURE_COLUMNS, "position")} for row in rows],
            columns=[*FEATURE_COLUMNS, "position"],
        )

    def iter_patient_frames(
        self, *, split: str | None = None, chunk_size: int = 20_000
    ) -> Iterator[pd.DataFrame]:
        """Stream wide patient frames (one row per patient) in patient-id order.

        Columns: ``patient_id, split, age, sex, ethnicity, site, treatment, label, event_time,
        event``, one column per catalogue feature (NaN when not recorded) and, for synthetic
        cohorts, ``true_risk``. Each chunk costs three indexed range queries.
        """
        _check_split(split)
        last = ""
        while True:
            query = self._frame_query().where(Patient.patient_id > last)
            if split is not None:
                query = query.where(Patient.split == split)
            frame = self._frame(query.order_by(Patient.patient_id).limit(chunk_size))
            if frame.empty:
                return
            last = str(frame["patient_id"].iloc[-1])
            yield frame

    def patient_frame(self, patient_ids: Sequence[str]) -> pd.DataFrame:
        """The wide frame of some patients (columns of :meth:`iter_patient_frames`).

        Rows come in patient-id order; ids that are not stored are absent. Pass at most a few
        thousand ids per call (one ``IN`` list).
        """
        ids = sorted({str(pid) for pid in patient_ids})
        if not ids:
            return self._frame(self._frame_query().where(Patient.patient_id.in_([])))
        query = self._frame_query().where(Patient.patient_id.in_(ids))
        return self._frame(query.order_by(Patient.patient_id))

    @staticmethod
    def _frame_query() -> Any:
        return (
            select(
                Patient.patient_id,
                Patient.split,
                Demographics.age,
                Demographics.sex,
                Demographics.ethnicity,
                Demographics.site,
                Outcome.treatment,
                Outcome.label,
                Outcome.event_time,
                Outcome.event,
                GroundTruth.true_risk,
            )
            .join(Demographics, Demographics.patient_id == Patient.patient_id)
            .join(Outcome, Outcome.patient_id == Patient.patient_id)
            .outerjoin(GroundTruth, GroundTruth.patient_id == Patient.patient_id)
        )

    def _frame(self, query: Any) -> pd.DataFrame:
        """Run a :meth:`_frame_query` and join the EHR and genomic values of its rows."""
        catalog = self.feature_catalog()
        ehr_names = catalog.loc[catalog["modality"] == "ehr", "name"].tolist()
        genomic_names = catalog.loc[catalog["modality"] == "genomics", "name"].tolist()
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
            if frame.empty:
                return frame
            first, last = str(frame["patient_id"].iloc[0]), str(frame["patient_id"].iloc[-1])
            ehr = self._pivot(conn, EhrValue, first, last, ehr_names)
            genomics = self._pivot(conn, GenomicValue, first, last, genomic_names)
        return frame.join(ehr, on="patient_id").join(genomics, on="patient_id")

    def load_patient_frame(self, *, split: str | None = None) -> pd.DataFrame:
        """All patients (or one split) as one wide frame; see :meth:`iter_patient_frames`."""
        chunks = list(self.iter_patient_frames(split=split))
        if not chunks:
            raise StoreNotBuiltError(
                "The store holds no patients; build the demo with `riskfusion demo --no-serve` "
                "or import a cohort."
            )
        return pd.concat(chunks, ignore_index=True)

    @staticmethod
    def _pivot(
        conn: Connection, table: Any, first: str, last: str, names: Sequence[str]
    ) -> pd.DataFrame:
        query = select(table.patient_id, table.feature, table.value).where(
            table.patient_id >= first, table.patient_id <= last
        )
        rows = [tuple(row) for row in conn.execute(query)]  # tuples: 10x faster than Rows
        long = pd.DataFrame.from_records(rows, columns=["patient_id", "feature", "value"])
        wide = long.pivot(index="patient_id", columns="feature", values="value")
        return wide.reindex(columns=list(names)).astype(np.float64)

    def image_index(self) -> pd.DataFrame:
        """Every image row, in image-id order.

        Columns: ``image_id, patient_id, path, sha256, height, width, site, mask_path``.
        """
        query = select(
            Image.image_id,
            Image.patient_id,
            Image.path,
            Image.sha256,
            Image.height,
            Image.width,
            Image.site,
            Image.mask_path,
        ).order_by(Image.image_id)
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=["image_id", *IMAGE_COLUMNS]
            )

    def image_rows(self, patient_ids: Sequence[str]) -> pd.DataFrame:
        """The image rows of some patients (columns of :meth:`image_index`), in image-id order."""
        query = (
            select(Image.image_id, *(getattr(Image, c) for c in IMAGE_COLUMNS))
            .where(Image.patient_id.in_([str(pid) for pid in patient_ids]))
            .order_by(Image.image_id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=["image_id", *IMAGE_COLUMNS]
            )

    # ------------------------------------------------------------------ reads for pages
    def get_patient(self, patient_id: str) -> PatientRecord:
        """Everything stored about one patient.

        Raises
        ------
        PatientNotFoundError
            If the id is not in the store.
        """
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    self._frame_query()
                    .add_columns(Patient.source)
                    .where(Patient.patient_id == patient_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise PatientNotFoundError(
                    f"Patient {patient_id!r} is not in the store; search the patient list "
                    "for a valid id."
                )
            ehr = dict(
                conn.execute(
                    select(EhrValue.feature, EhrValue.value).where(
                        EhrValue.patient_id == patient_id
                    )
                ).all()
            )
            genomics = dict(
                conn.execute(
                    select(GenomicValue.feature, GenomicValue.value).where(
                        GenomicValue.patient_id == patient_id
                    )
                ).all()
            )
            # A Core connection yields Rows (not ORM objects): read the columns by name.
            image_row = conn.execute(
                select(Image)
                .where(Image.patient_id == patient_id)
                .order_by(Image.image_id)
                .limit(1)
            ).first()
            counterfactual = dict(
                conn.execute(
                    select(CounterfactualRisk.treatment, CounterfactualRisk.risk).where(
                        CounterfactualRisk.patient_id == patient_id
                    )
                ).all()
            )
        image = (
            None
            if image_row is None
            else ImageRecord(
                image_id=image_row.image_id,
                patient_id=image_row.patient_id,
                path=image_row.path,
                sha256=image_row.sha256,
                height=image_row.height,
                width=image_row.width,
                site=image_row.site,
                mask_path=image_row.mask_path,
            )
        )
        return PatientRecord(
            patient_id=row["patient_id"],
            split=row["split"],
            age=float(row["age"]),
            sex=row["sex"],
            ethnicity=row["ethnicity"],
            site=row["site"],
            treatment=row["treatment"],
            label=row["label"],
            event_time=row["event_time"],
            event=row["event"],
            ehr={str(k): float(v) for k, v in ehr.items()},
            genomics={str(k): int(v) for k, v in genomics.items()},
            image=image,
            true_risk=None if row["true_risk"] is None else float(row["true_risk"]),
            counterfactual_risks={str(k): float(v) for k, v in counterfactual.items()},
            source=str(row["source"]),
        )

    def search_patients(
        self,
        query: str = "",
        *,
        split: str | None = None,
        model_version: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> pd.DataFrame:
        """One page of patients whose id starts with ``query`` (case-insensitive).

        Columns: ``patient_id, split, age, sex, site`` and ``risk`` when ``model_version`` is
        given. Uses the primary-key index (prefix range), so it stays fast at 1M patients.
        """
        _check_split(split)
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit={limit} is out of range; use 1..1000 rows per page.")
        prefix = query.strip().upper()
        columns: list[Any] = [
            Patient.patient_id,
            Patient.split,
            Demographics.age,
            Demographics.sex,
            Demographics.site,
        ]
        if model_version is not None:
            columns.append(Prediction.risk)
        stmt = select(*columns).join(Demographics, Demographics.patient_id == Patient.patient_id)
        if model_version is not None:
            stmt = stmt.outerjoin(
                Prediction,
                (Prediction.patient_id == Patient.patient_id)
                & (Prediction.model_version == model_version),
            )
        if prefix:
            # A range on the key instead of LIKE: uses the primary-key index on every backend.
            stmt = stmt.where(
                Patient.patient_id >= prefix, Patient.patient_id < _prefix_successor(prefix)
            )
        if split is not None:
            stmt = stmt.where(Patient.split == split)
        stmt = stmt.order_by(Patient.patient_id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(stmt).mappings().all())
        names = ["patient_id", "split", "age", "sex", "site"] + (
            ["risk"] if model_version is not None else []
        )
        return frame if not frame.empty else pd.DataFrame(columns=names)

    # ------------------------------------------------------------------ audit trail
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
            _insert_audit(conn, entry)

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


_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def create_database_roles(
    engine: Engine, *, owner_role: str, app_role: str, app_password: str | None = None
) -> list[str]:
    """Create (or update) a least-privilege pair of PostgreSQL roles for a deployment.

    ``owner_role`` (no login) becomes the owner of every riskfusion table and of the audit
    trigger function; only it (and superusers) can drop or disable the append-only trigger.
    ``app_role`` (login) is what the dashboard and the commands connect as: it may read and
    write the cohort, model and result tables, but only ``INSERT`` and ``SELECT`` on
    ``audit_events``. Run it as a superuser (or a role that is a member of ``owner_role`` with
    ``CREATEROLE``); it is idempotent, so rerun it after an upgrade that adds tables.

    Parameters
    ----------
    engine : Engine
        A PostgreSQL engine connected as that administrator, on the riskfusion database.
    owner_role, app_role : str
        Role names: lower-case letters, digits and ``_``, starting with a letter or ``_``.
    app_password : str or None, default=None
        Password of ``app_role``; None leaves it as it is (e.g. certificate or peer login).

    Returns
    -------
    list of str
        The statements run (passwords masked), for the log.

    Raises
    ------
    ValueError
        If the engine is not PostgreSQL, or a role name is not a plain identifier, or both
        names are the same.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError(
            f"Database roles are a PostgreSQL feature; this store is {engine.dialect.name}. "
            "On SQLite protect the database file with file permissions instead "
            "(docs/deployment.md)."
        )
    for name in (owner_role, app_role):
        if not _ROLE_NAME.fullmatch(name):
            raise ValueError(
                f"Role name {name!r} is not allowed; use lower-case letters, digits and _ "
                "(at most 63, not starting with a digit), e.g. riskfusion_app."
            )
    if app_password is not None and ("\x00" in app_password or not app_password):
        raise ValueError("The app role's password is empty or holds a NUL byte; pick another.")
    if owner_role == app_role:
        raise ValueError(
            f"The owner and the app role are both {owner_role!r}; the app must not own the "
            "tables (an owner can drop the audit trigger). Pick two names."
        )
    CohortStore(engine).create_schema()
    tables = [table.name for table in Base.metadata.sorted_tables]
    done: list[str] = []
    with engine.begin() as conn:

        def run(statement: str, shown: str | None = None) -> None:
            conn.exec_driver_sql(statement)
            done.append(shown or statement)

        existing = set(
            conn.execute(
                text("SELECT rolname FROM pg_roles WHERE rolname IN (:owner, :app)"),
                {"owner": owner_role, "app": app_role},
            ).scalars()
        )
        if owner_role not in existing:
            run(f'CREATE ROLE "{owner_role}" NOLOGIN')
        if app_role not in existing:
            run(f'CREATE ROLE "{app_role}" LOGIN')
        if app_password is not None:
            quoted = "'" + app_password.replace("'", "''") + "'"  # standard_conforming_strings
            run(
                f'ALTER ROLE "{app_role}" PASSWORD {quoted}',
                f'ALTER ROLE "{app_role}" PASSWORD ***',
            )
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        run(f'REVOKE "{owner_role}" FROM "{app_role}"')
        for table in tables:
            run(f'ALTER TABLE "{table}" OWNER TO "{owner_role}"')
        run(f'ALTER FUNCTION riskfusion_audit_append_only() OWNER TO "{owner_role}"')
        run(f'GRANT CONNECT ON DATABASE "{database}" TO "{app_role}"')
        run(f'GRANT USAGE ON SCHEMA "{schema}" TO "{app_role}"')
        for table in tables:
            run(f'REVOKE ALL ON "{table}" FROM "{app_role}"')
            verbs = (
                "SELECT, INSERT" if table == "audit_events" else "SELECT, INSERT, UPDATE, DELETE"
            )
            run(f'GRANT {verbs} ON "{table}" TO "{app_role}"')
        # Sequences of the app's tables (image ids); the audit trail numbers its own events.
        sequences = conn.execute(
            text(
                "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i') "
                "AND t.relname = ANY(:tables) AND t.relname <> 'audit_events' "
                "AND s.relnamespace = current_schema()::regnamespace"
            ),
            {"tables": tables},
        ).scalars()
        for sequence in sorted(sequences):
            run(f'GRANT USAGE, SELECT ON SEQUENCE "{sequence}" TO "{app_role}"')
    return done
