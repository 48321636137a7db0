"""Errors raised by the data layer.

Owns the small exception family of :mod:`data`; imports nothing from the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type-only: the report lives in data.ingest, which imports this module
    from data.ingest import ValidationReport

__all__ = [
    "ArtifactIntegrityError",
    "CohortError",
    "CohortValidationError",
    "IncompleteVersionError",
    "NotScoredError",
    "PatientNotFoundError",
    "ScanReadError",
    "StoreNotBuiltError",
]


class CohortError(Exception):
    """Base class for problems with a stored or imported cohort."""


class PatientNotFoundError(CohortError, KeyError):
    """A patient id that the store does not hold."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else "patient not found"


class StoreNotBuiltError(CohortError):
    """The store holds no cohort or no active model yet."""


class ArtifactIntegrityError(CohortError):
    """A model artifact is missing or its SHA-256 differs from the registered one."""


class IncompleteVersionError(ArtifactIntegrityError):
    """A model version whose training did not finish, or a part of which is missing or changed.

    Such a version is never listed and cannot be activated.
    """


class NotScoredError(CohortError):
    """A patient the active model has not scored yet (its scan lacks the nets' embeddings)."""


class CohortValidationError(CohortError, ValueError):
    """An imported cohort failed validation; nothing was written.

    Attributes
    ----------
    report : ValidationReport
        Every problem found, one row each (file, row, column, value, problem, fix).
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        errors = report.errors
        where = ""
        if len(errors):
            first = errors.iloc[0]
            place = [str(first["file"])]
            if first["row"] is not None and str(first["row"]) != "<NA>":
                place.append(f"row {first['row']}")
            if first["column"]:
                place.append(f"column {first['column']!r}")
            where = f"; first: {' '.join(place)}: {first['problem']} ({first['fix']})"
        super().__init__(
            f"The cohort has {len(errors)} problem(s) and was not imported{where}. "
            "Fix them all (see the full table, e.g. `riskfusion import DIR --report "
            "problems.csv`) and import again."
        )


class ScanReadError(CohortError, ValueError):
    """A scan file cannot be read, has the wrong dimensionality or holds no signal."""
