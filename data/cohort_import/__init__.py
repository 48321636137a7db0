"""Import a user's own cohort: schema file, one-pass validation, transactional write.

Owns the cohort folder format (``docs/import.md``): ``patients``, ``outcomes`` and optional
``genomics`` tables (CSV or Parquet), an optional ``images/`` folder (naming rule or an
``images.csv`` manifest) and a TOML schema of column roles. :func:`validate_cohort` reads
everything once and collects **every** problem into one table (file, row, column, value,
problem, fix) before anything is written; :func:`import_cohort` then writes the cohort through
:meth:`data.store.CohortStore.import_cohort` in one transaction, rewriting only the parts whose
content hash changed.

Scans are read by a :class:`ScanReader` passed in by the caller (``models.scans.read_scan``
uses MONAI): the package is in the bottom layer and must not import torch, MONAI, streamlit or the
``models``, ``fusion`` or ``dashboard`` packages.

Modules, from the bottom up: ``problems`` (the problem report and its texts), ``schema`` (column
roles, core columns, the schema file, pandera checks), ``reading`` (tables in bounded chunks),
``checks`` (columns, ids, types, ranges, lengths), ``images`` (which scan is whose),
``tables`` (the store's tables and content hashes) and ``importer`` (the pass and the write).
"""

from __future__ import annotations

from data.cohort_import.importer import ImportResult, import_cohort, validate_cohort
from data.cohort_import.problems import PROBLEM_COLUMNS
from data.cohort_import.schema import ColumnSpec, ImportSchema, load_schema

__all__ = [
    "PROBLEM_COLUMNS",
    "ColumnSpec",
    "ImportResult",
    "ImportSchema",
    "import_cohort",
    "load_schema",
    "validate_cohort",
]
