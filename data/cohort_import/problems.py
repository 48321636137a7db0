"""The problem report of a cohort import and its messages.

Owns :class:`ProblemLog` (how a pass collects its problems into the table of a
:class:`data.errors.ValidationReport`, listing at most :data:`MAX_LISTED` rows of each kind and
counting the rest), the table's columns and the problem texts ``P_*`` that tests match. Imports
only :mod:`data.errors`.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import pandas as pd

__all__ = ["MAX_LISTED", "PROBLEM_COLUMNS", "ProblemLog", "Severity"]

Severity = Literal["error", "warning"]
PROBLEM_COLUMNS: Final[tuple[str, ...]] = (
    "severity",
    "file",
    "row",
    "column",
    "value",
    "problem",
    "fix",
)

# Problem texts (tests match them).
P_MISSING_FILE = "required file is missing"
P_MISSING_COLUMN = "required column is missing"
P_UNKNOWN_COLUMN = "column is not described in the schema"
P_IDENTIFIER = "column looks like a direct identifier (name, address, phone, email, MRN, DOB)"
P_MISSING_ID = "patient id is missing"
P_BAD_ID = "patient id has characters outside A-Z 0-9 _ . -"
P_DUPLICATE_ID = "duplicate patient id"
P_NOT_IN_PATIENTS = "patient id is not in the patients file"
P_NO_OUTCOME = "patient has no row in the outcomes file"
P_NO_GENOMICS = "patient has no row in the genomics file (imported without genomics)"
P_NOT_A_NUMBER = "not a number"
P_NOT_AN_INTEGER = "not a whole number"
P_MISSING_VALUE = "required value is missing"
P_OUT_OF_RANGE = "value is outside the plausible range"
P_UNIT = "value is about 1000x off the plausible range: likely a wrong unit"
P_MIXED_UNITS = "column mixes two units: its values form two groups about 1000x apart"
P_CATEGORY = "unknown category"
P_UNREADABLE = "the file cannot be read"
P_IMAGE_NO_PATIENT = "image has no patient in the patients file (not imported)"
P_PATIENT_NO_IMAGE = "patient has no image (imported without imaging)"
P_TWO_IMAGES = "more than one image for this patient"
P_NOT_IMAGE = "not an image format riskfusion reads (ignored)"
P_LINK_OUTSIDE = "link to a file outside the cohort folder (not read)"
P_SCHEMA = "invalid schema entry"
P_DUPLICATE_COLUMN = "column name appears more than once in the header"
P_DELIMITER = "this file is {}-delimited, not comma-separated"
P_RAGGED = "rows have a different number of fields than the header"
P_NOT_FINITE = "not a finite number"
P_TOO_LONG = "value is longer than the store allows"
P_MORE = "more rows with this problem (not listed)"

# Problem rows listed per file, column and problem; the rest are counted in one summary row.
MAX_LISTED: Final[int] = 1_000


class ProblemLog:
    """Accumulates problem rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        # (severity, file, column, problem) -> [rows listed, rows not listed, fix, first omitted]
        self._kinds: dict[tuple[str, str, str, str], list[Any]] = {}
        self._summarised: set[tuple[str, str]] = set()

    def summarise_column(self, file: str, column: str) -> None:
        """Leave out a column's cell-level unit problems: a column-level problem says it once."""
        self._summarised.add((file, column))

    def add(
        self,
        file: str,
        problem: str,
        fix: str,
        *,
        row: int | None = None,
        column: str = "",
        value: object = "",
        severity: Severity = "error",
    ) -> None:
        """Record one problem; past :data:`MAX_LISTED` cell rows of a kind, only count it."""
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
        if row is not None:  # cell problems: list the first MAX_LISTED of each kind, count the rest
            kind = self._kinds.setdefault((severity, file, column, problem), [0, 0, fix, row])
            if kind[0] >= MAX_LISTED:
                if kind[1] == 0:
                    kind[3] = row
                kind[1] += 1
                return
            kind[0] += 1
        self.rows.append(
            {
                "severity": severity,
                "file": file,
                "row": row,
                "column": column,
                "value": str(text)[:80],
                "problem": problem,
                "fix": fix,
            }
        )

    def frame(self) -> pd.DataFrame:
        """The problem table: errors first, one problem per cell, counted rows summarised."""
        omitted = [
            {
                "severity": severity,
                "file": file,
                "row": None,
                "column": column,
                "value": f"{count} more from row {first}",
                "problem": f"{problem}: {count} {P_MORE}",
                "fix": f"{fix} (the first {MAX_LISTED} rows are listed)",
            }
            for (severity, file, column, problem), (_, count, fix, first) in self._kinds.items()
            if count and not (problem == P_UNIT and (file, column) in self._summarised)
        ]
        rows = [
            row
            for row in self.rows
            if not (row["problem"] == P_UNIT and (row["file"], row["column"]) in self._summarised)
        ]
        frame = pd.DataFrame(rows + omitted, columns=list(PROBLEM_COLUMNS))
        frame["row"] = frame["row"].astype("Int64")
        # One problem per cell: a type error hides the range/missing checks of the same cell.
        cell = frame["row"].notna()
        keep = ~(cell & frame.duplicated(["file", "row", "column"], keep="first"))
        frame = frame[keep]
        order = frame["severity"].map({"error": 0, "warning": 1})
        return (
            frame.assign(_order=order)
            .sort_values(["_order", "file", "row", "column"], kind="stable", na_position="first")
            .drop(columns="_order")
            .reset_index(drop=True)
        )
