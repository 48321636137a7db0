"""Data layer: SQL schema, the cohort store (the only SQL writer) and the synthetic cohort.

``data`` is a Python package (code, not files); generated databases and scans live under the
artifacts directory. It is the bottom layer: it must not import torch, streamlit or the
``models``, ``fusion`` or ``dashboard`` packages.
"""

from __future__ import annotations

from data.errors import (
    ArtifactIntegrityError,
    CohortError,
    CohortValidationError,
    PatientNotFoundError,
    ScanReadError,
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
    DEMO_BIAS,
    FEATURE_SPECS,
    HORIZON_YEARS,
    TREATMENTS,
    DemoBias,
    FeatureSpec,
    SyntheticCohort,
    assign_splits,
    generate_cohort,
    oracle_aurocs,
)

__all__ = [
    "DEMO_BIAS",
    "FEATURE_SPECS",
    "HORIZON_YEARS",
    "TREATMENTS",
    "ArtifactIntegrityError",
    "CohortError",
    "CohortStore",
    "CohortTables",
    "CohortValidationError",
    "DemoBias",
    "FeatureSpec",
    "ImageRecord",
    "ModelRecord",
    "PatientNotFoundError",
    "PatientRecord",
    "ScanReadError",
    "StoreNotBuiltError",
    "SyntheticCohort",
    "assign_splits",
    "generate_cohort",
    "make_engine",
    "oracle_aurocs",
]
