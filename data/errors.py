"""Errors raised by the data layer.

Owns the small exception family of :mod:`data` and :class:`ValidationReport`, the problem
table a :class:`CohortValidationError` carries (built by :mod:`data.cohort_import`). Imports
nothing from the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ArtifactIntegrityError",
    "CohortError",
    "CohortValidationError",
    "IncompleteVersionError",
    "NotScoredError",
    "PatientNotFoundError",
    "ScanReadError",
    "StoreNotBuiltError",
    "ValidationReport",
]


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Every problem found in one pass over a cohort folder.

    Attributes
    ----------
    problems : DataFrame
        One row per problem: ``severity`` (``error`` blocks the import, ``warning`` is
        flagged and allowed), ``file``, ``row`` (spreadsheet row: the header is row 1; empty
        for file-level problems), ``column``, ``value``, ``problem`` and ``fix``.
    n_patients : int
        Patients in the patients file.
    n_images : int
        Scans read successfully.
    """

    problems: pd.DataFrame
    n_patients: int = 0
    n_images: int = 0

    @property
    def errors(self) -> pd.DataFrame:
        """The blocking problems."""
        return self.problems[self.problems["severity"] == "error"]

    @property
    def ok(self) -> bool:
        """Whether the cohort can be imported (warnings allowed)."""
        return self.errors.empty

    def to_text(self, max_rows: int = 50) -> str:
        """The problem table for a terminal, errors first, at most ``max_rows`` problems.

        One block per problem, nothing cut: a line ``severity  file, row R, column C: value``,
        then the problem and the fix on lines of their own (a fix can be long).
        """
        if self.problems.empty:
            return "no problems"
        head = self.problems.head(max_rows).astype(object)
        shown = head.where(head.notna(), "")
        blocks = []
        for row in shown.to_dict("records"):
            place = [str(row["file"])]
            if str(row["row"]) != "":
                place.append(f"row {row['row']}")
            if str(row["column"]) != "":
                place.append(f"column {row['column']}")
            value = f": {row['value']}" if str(row["value"]) != "" else ""
            blocks.append(
                f"{row['severity']:<7} {', '.join(place)}{value}\n"
                f"        problem: {row['problem']}\n"
                f"        fix: {row['fix']}"
            )
        more = len(self.problems) - len(shown)
        return "\n".join(blocks) + (
            f"\n... and {more} more (write them all with --report FILE.csv)" if more else ""
        )


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
