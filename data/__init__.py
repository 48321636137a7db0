"""Data layer: SQL schema, the cohort store (the only SQL writer) and the synthetic cohort.

``data`` is a Python package (code, not files); generated databases and scans live under the
artifacts directory. It is the bottom layer: it must not import torch, streamlit or the
``models``, ``fusion`` or ``dashboard`` packages.
"""

from __future__ import annotations

from data.errors import (
    ArtifactIntegrityError,
    CohortError,
    PatientNotFoundError,
    StoreNotBuiltError,
)
from data.store import (
    CohortStore,
    CohortTables,
    ImageRecord,
    ModelRecord,
    PatientRecord,
    make_engine,
)
from data.synthetic import (
    FEATURE_SPECS,
    HORIZON_YEARS,
    TREATMENTS,
    FeatureSpec,
    SyntheticCohort,
    assign_splits,
    generate_cohort,
    oracle_aurocs,
)

__all__ = [
    "FEATURE_SPECS",
    "HORIZON_YEARS",
    "TREATMENTS",
    "ArtifactIntegrityError",
    "CohortError",
    "CohortStore",
    "CohortTables",
    "FeatureSpec",
    "ImageRecord",
    "ModelRecord",
    "PatientNotFoundError",
    "PatientRecord",
    "StoreNotBuiltError",
    "SyntheticCohort",
    "assign_splits",
    "generate_cohort",
    "make_engine",
    "oracle_aurocs",
]
