"""Frozen records the store takes and returns, and the column contracts of its frames.

Owns the dataclasses that cross the store's boundary (cohort tables, registry entries, patient
records, imports, audit entries, embedding batches) and the column names of the frames they
carry. Pure data: imports pandas, numpy and :mod:`data.vocabulary` only; it must not import
SQLAlchemy, torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.vocabulary import OutcomeSpec

__all__ = [
    "FEATURE_COLUMNS",
    "IMAGE_COLUMNS",
    "IMPORT_PARTS",
    "OUTCOME_COLUMNS",
    "PATIENT_COLUMNS",
    "SPLITS",
    "TRUTH_COLUMNS",
    "AuditChainCheck",
    "AuditEntry",
    "CohortTables",
    "DataStamp",
    "EmbeddingBatch",
    "ImageRecord",
    "ImportCounts",
    "ImportTables",
    "ModelRecord",
    "PatientRecord",
    "check_split",
]

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


def check_split(split: str | None) -> None:
    """Refuse a split name other than :data:`SPLITS` (None means every split)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {list(SPLITS)} or None for all.")


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
    """A validated imported cohort plus its content hashes (built by :mod:`data.cohort_import`).

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
    settings : Mapping[str, Any]
        Cohort settings the schema declares (``age_bands``: the audit's age band cuts, empty
        for the default), stored in ``cohort_settings``.
    outcome : OutcomeSpec or None, default=None
        The schema's outcome declaration (None: keep what is stored).
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
    settings: Mapping[str, Any] = field(default_factory=dict)
    outcome: OutcomeSpec | None = None


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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-trail event (see :class:`data.store.schema.AuditEvent`).

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


@dataclass(frozen=True, slots=True)
class DataStamp:
    """What a fusion version's cohort views are computed from, read in one small query.

    Two stamps are equal exactly when the views computed under them are equal: every stored
    aggregate, cache and index of a version is keyed by its stamp, so a ``riskfusion score``
    or an import that changes the stored predictions or the patients' rows changes the key.

    Attributes
    ----------
    model_version : str
        The fusion version.
    scoring_batch : int
        The version's last scoring batch (a scoring chunk or training's predictions; 0: none
        recorded).
    import_batch : str
        The last cohort import (its batch id; empty: none).
    explanations : str
        The version's newest explanations artifact, holding the similar-patient index (its
        registry version; empty: none).
    """

    model_version: str
    scoring_batch: int = 0
    import_batch: str = ""
    explanations: str = ""
