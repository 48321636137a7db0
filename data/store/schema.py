"""SQL schema of the cohort store (SQLAlchemy 2 typed ORM).

Owns the table definitions only; the :mod:`data.store` repositories are the only writers. Imports
nothing from the other project packages.

Layout, chosen for 1M patients: one row per patient in ``patients``/``demographics``/
``outcomes``; EHR and genomic values in long form keyed by ``(patient_id, feature)`` so any
imported cohort fits without schema changes; embeddings as packed float32 bytes; predictions
keyed by ``(model_version, patient_id)`` with an index on ``(model_version, risk)`` so pages
can page through one model version's predictions without scanning the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AUDIT_SQLITE_TRIGGERS",
    "AuditEvent",
    "Base",
    "CohortAggregate",
    "CohortSetting",
    "CounterfactualRisk",
    "Demographics",
    "EhrValue",
    "Embedding",
    "Feature",
    "GenomicValue",
    "GroundTruth",
    "Image",
    "ImportBatch",
    "ImportHash",
    "ModelVersion",
    "Outcome",
    "OutcomeDefinition",
    "Patient",
    "Prediction",
    "ScoringBatch",
    "StoredExplanation",
]

PATIENT_FK = "patients.patient_id"


class Base(DeclarativeBase):
    """Declarative base of every riskfusion table."""


class Patient(Base):
    """One row per patient: the id, the data split and where the record came from.

    ``(split, patient_id)`` serves the picker's pages within a split (and split counts) as
    index-only range reads in id order; the primary key serves the pages of all patients.
    """

    __tablename__ = "patients"
    __table_args__ = (Index("ix_patients_split_id", "split", "patient_id"),)

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32))


class Demographics(Base):
    """Sensitive attributes and demographic model inputs."""

    __tablename__ = "demographics"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    age: Mapped[float] = mapped_column(Float)
    sex: Mapped[str] = mapped_column(String(8), index=True)
    ethnicity: Mapped[str] = mapped_column(String(32), index=True)
    site: Mapped[str] = mapped_column(String(32), index=True)


class Outcome(Base):
    """Treatment received and outcome: event within the horizon, time to event, censoring."""

    __tablename__ = "outcomes"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    treatment: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[int | None] = mapped_column(SmallInteger)
    event_time: Mapped[float | None] = mapped_column(Float)
    event: Mapped[int | None] = mapped_column(SmallInteger)


class Feature(Base):
    """Catalogue of tabular model inputs: modality, readable label, unit and plausible range."""

    __tablename__ = "features"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    modality: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128))
    unit: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text)


class EhrValue(Base):
    """One observed EHR value; a missing value has no row."""

    __tablename__ = "ehr_values"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    feature: Mapped[str] = mapped_column(ForeignKey("features.name"), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class GenomicValue(Base):
    """One genotype (0/1/2) or driver-mutation flag (0/1)."""

    __tablename__ = "genomic_values"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    feature: Mapped[str] = mapped_column(ForeignKey("features.name"), primary_key=True)
    value: Mapped[int] = mapped_column(SmallInteger)


class Image(Base):
    """A scan file: path relative to the artifacts directory, content hash, shape and site."""

    __tablename__ = "images"

    image_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), index=True)
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(32))
    mask_path: Mapped[str | None] = mapped_column(String(512))


class GroundTruth(Base):
    """Synthetic cohorts only: the true risk and its per-modality logit components."""

    __tablename__ = "ground_truth"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    true_risk: Mapped[float] = mapped_column(Float)
    lesion_count: Mapped[int] = mapped_column(Integer)
    lesion_area: Mapped[float] = mapped_column(Float)
    logit_demographics: Mapped[float] = mapped_column(Float)
    logit_ehr: Mapped[float] = mapped_column(Float)
    logit_genomics: Mapped[float] = mapped_column(Float)
    logit_imaging: Mapped[float] = mapped_column(Float)


class CounterfactualRisk(Base):
    """Synthetic cohorts only: the true risk under each treatment option."""

    __tablename__ = "counterfactual_risks"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    treatment: Mapped[str] = mapped_column(String(32), primary_key=True)
    risk: Mapped[float] = mapped_column(Float)


class ModelVersion(Base):
    """Model registry: one row per trained model (imaging, fusion or a baseline)."""

    __tablename__ = "model_registry"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    artifact_path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_version: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)


class Embedding(Base):
    """Penultimate-layer embedding and logit of one image under one fold net of a version.

    ``in_training`` is true when that fold net was trained on the image's patient; downstream
    models only use rows where it is false (cross-fitting, see ``docs/models.md``).
    """

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.image_id"), primary_key=True)
    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_registry.version"), primary_key=True
    )
    fold: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    in_training: Mapped[bool] = mapped_column(Boolean)
    logit: Mapped[float] = mapped_column(Float)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Prediction(Base):
    """Risk of one patient under one model version."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_version_risk", "model_version", "risk"),)

    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_registry.version"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    risk: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScoringBatch(Base):
    """One write of a fusion version's predictions: a scoring chunk, or training's predictions.

    Written in the transaction of the predictions it records, so the version's largest
    ``batch_id`` changes whenever its stored predictions do; the cohort views key their caches
    by it (see :meth:`data.store.CohortStore.data_stamp`).
    """

    __tablename__ = "scoring_batches"
    __table_args__ = (Index("ix_scoring_batches_version", "model_version", "batch_id"),)

    batch_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    model_version: Mapped[str] = mapped_column(ForeignKey("model_registry.version"))
    patients: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CohortAggregate(Base):
    """One stored cohort view of a fusion version, keyed by what it was computed from.

    ``stamp_key`` is the version's :class:`~data.store.records.DataStamp` as text (scoring
    batch, import batch, explanations artifact), ``kind`` names the view and its settings
    (e.g. ``performance``, ``audit|sex``) and ``payload`` holds it as JSON text (NaN allowed,
    so not the JSON column type, which PostgreSQL refuses NaN in). Written by ``train`` and
    ``score`` and, for a view nobody asked for before, by the first page that needs it.
    """

    __tablename__ = "cohort_aggregates"

    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_registry.version"), primary_key=True
    )
    stamp_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(200), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ImportBatch(Base):
    """One cohort import: when, from which cohort, the file hashes and what changed."""

    __tablename__ = "import_batches"

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(32))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)


class CohortSetting(Base):
    """A setting the imported cohort declares (e.g. ``age_bands``), written with its import.

    One row per name, replaced by each import that changes it (in the import's transaction), so
    the last import batch (part of the data stamp) moves whenever a setting does.
    """

    __tablename__ = "cohort_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    batch_id: Mapped[str] = mapped_column(ForeignKey("import_batches.batch_id"))


class OutcomeDefinition(Base):
    """What ``label = 1`` means in an imported cohort (its schema's ``[outcome]``).

    One row per cohort source; the synthetic demo has none (its words are
    :data:`data.vocabulary.DEMO_OUTCOME`). ``horizon_years`` is NULL for a cross-sectional
    outcome.
    """

    __tablename__ = "outcome_definitions"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    horizon_years: Mapped[float | None] = mapped_column(Float)


class ImportHash(Base):
    """Content hash of one part of one imported patient (``patient``, ``outcome``, ...).

    A re-import rewrites only the parts whose hash changed, so importing the same files twice
    changes nothing and an updated file updates only what changed.
    """

    __tablename__ = "import_hashes"

    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    part: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(ForeignKey("import_batches.batch_id"), index=True)


class StoredExplanation(Base):
    """Exact TreeSHAP values of one patient's fused risk under one model version.

    Written in batch after training (``fusion.training.serving_artifacts``) so a page reads one
    indexed row
    instead of recomputing. ``shap`` holds ``dim`` packed float64 values in the model's input
    order (float64 keeps ``base_value + sum(shap)`` equal to the margin to ~1e-15).
    """

    __tablename__ = "explanations"

    model_version: Mapped[str] = mapped_column(
        ForeignKey("model_registry.version"), primary_key=True
    )
    patient_id: Mapped[str] = mapped_column(ForeignKey(PATIENT_FK), primary_key=True)
    base_value: Mapped[float] = mapped_column(Float)
    dim: Mapped[int] = mapped_column(Integer)
    shap: Mapped[bytes] = mapped_column(LargeBinary)


class AuditEvent(Base):
    """Append-only audit trail: who did what, when, to which patient, under which model.

    The database itself refuses ``UPDATE`` and ``DELETE`` on this table (triggers created with
    it on SQLite and PostgreSQL), and on SQLite also an ``INSERT`` that reuses an event id
    (``INSERT OR REPLACE`` would otherwise delete the old row without firing the delete
    trigger), so no code path of the app can rewrite history. Each event also stores the
    SHA-256 of its content and of the event before it (``prev_hash``, ``event_hash``; computed
    by :mod:`data.store`), so an edit made around the triggers is detectable.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        # The trail's pages filter by patient or action and go newest first by event id.
        Index("ix_audit_events_patient_id", "patient_id", "event_id"),
        Index("ix_audit_events_action_id", "action", "event_id"),
    )

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    event_hash: Mapped[str] = mapped_column(String(64))


_APPEND_ONLY = "audit_events is append-only: rows cannot be changed or deleted"
AUDIT_SQLITE_TRIGGERS = {
    **{
        f"audit_events_no_{verb.lower()}": (
            f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
        )
        for verb in ("UPDATE", "DELETE")
    },
    # INSERT OR REPLACE deletes the row it replaces without firing the delete trigger (unless
    # recursive_triggers is on): refuse any insert whose event id is taken, before REPLACE acts.
    "audit_events_no_replace": (
        "CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events "
        "WHEN EXISTS (SELECT 1 FROM audit_events WHERE event_id = NEW.event_id) "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    ),
}
"""The SQLite triggers that keep ``audit_events`` append-only, by name (DDL)."""
for _ddl in AUDIT_SQLITE_TRIGGERS.values():
    event.listen(AuditEvent.__table__, "after_create", DDL(_ddl).execute_if(dialect="sqlite"))
event.listen(
    AuditEvent.__table__,
    "after_create",
    DDL(
        "CREATE OR REPLACE FUNCTION riskfusion_audit_append_only() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END; $$"
    ).execute_if(dialect="postgresql"),
)
event.listen(
    AuditEvent.__table__,
    "after_create",
    DDL(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION riskfusion_audit_append_only()"
    ).execute_if(dialect="postgresql"),
)
