"""The checks of a cohort's tables: columns, ids, types, ranges, categories and lengths.

Owns :func:`check_columns` (required, unknown and identifier-like columns), :func:`scan_table`
(the chunked validation of one table: ids, types, ranges, store lengths) and :class:`IdScan`
(what a scan keeps across chunks: about 20 bytes a row). Imports :mod:`data.schema` (the SQL
column lengths) and the siblings ``problems``, ``schema`` and ``reading`` only.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow
from numpy.dtypes import StringDType
from pandera.errors import SchemaErrors

from data.cohort_import.problems import (
    P_BAD_ID,
    P_CATEGORY,
    P_IDENTIFIER,
    P_MISSING_COLUMN,
    P_MISSING_ID,
    P_MISSING_VALUE,
    P_NOT_A_NUMBER,
    P_NOT_AN_INTEGER,
    P_NOT_FINITE,
    P_OUT_OF_RANGE,
    P_SCHEMA,
    P_TOO_LONG,
    P_UNIT,
    P_UNKNOWN_COLUMN,
    P_UNREADABLE,
    ProblemLog,
)
from data.cohort_import.reading import (
    TableReader,
)
from data.cohort_import.schema import (
    CORE_COLUMNS,
    FEATURE_ROLES,
    ID_PATTERN,
    IDENTIFIER_NAME,
    ROLES,
    TABLE_FILES,
    UNIT_FACTOR,
    ColumnSpec,
    ImportSchema,
    pandera_schema,
)
from data.cohort_import.units import UnitScan
from data.store.schema import Demographics, Outcome, Patient

__all__ = ["IdScan", "as_strings", "check_columns", "isin", "normalise_ids", "scan_table"]

_BOOLEAN_TEXT: Final[dict[str, str]] = {"true": "1", "false": "0"}


def normalise_id(patient_id: str) -> str:
    """A patient id as the importer stores it: stripped and upper-cased.

    The command line and the dashboard look ids up through this rule, so ``mem-0001`` finds
    the patient imported as ``mem-0001`` (stored ``MEM-0001``).

    Examples
    --------
    >>> normalise_id(" mem-0001 ")
    'MEM-0001'
    """
    return patient_id.strip().upper()


def normalise_ids(
    frame: pd.DataFrame, file: str, id_column: str, problems: ProblemLog
) -> pd.Series:
    """Stripped, upper-cased ids (None where missing or invalid, each recorded).

    The vectorised form of :func:`normalise_id`.
    """
    raw = frame[id_column]
    ids = raw.str.strip().str.upper()
    missing = ids.isna() | (ids == "")
    valid = ~missing & ids.str.fullmatch(ID_PATTERN.pattern).fillna(False).astype(bool)
    for row in frame.index[missing.to_numpy(dtype=bool)]:
        problems.add(file, P_MISSING_ID, "give every row a patient id", row=row, column=id_column)
    for row in frame.index[~(valid | missing).to_numpy(dtype=bool)]:
        problems.add(
            file,
            P_BAD_ID,
            "use 1-64 letters, digits, _ . - (ids are stored upper-case)",
            row=row,
            column=id_column,
            value=raw[row],
        )
    return ids.astype(object).where(valid, None)


def check_columns(
    columns: Sequence[str], stem: str, file: str, schema: ImportSchema, problems: ProblemLog
) -> list[tuple[str, ColumnSpec]]:
    """Match columns to specs; record missing, unknown and identifier-like columns."""
    matched: list[tuple[str, ColumnSpec]] = []
    exact = {spec.name for spec in schema.columns if not spec.is_pattern}
    for column in columns:
        if column == schema.id_column:
            continue
        spec = schema.spec_for(stem, column)
        looks_identifying = bool(IDENTIFIER_NAME.search(column.lower()))
        if looks_identifying and column not in exact:
            problems.add(
                file,
                P_IDENTIFIER,
                f'remove the column, or map it in the schema: [columns.{column}] role = "drop" '
                "(never stored)",
                column=column,
            )
            continue
        if spec is None:
            problems.add(
                file,
                P_UNKNOWN_COLUMN,
                f"describe it: [columns.{column}] with a role ({', '.join(ROLES)}), or role = "
                '"drop" to leave it out',
                column=column,
            )
            continue
        if spec.role == "drop":
            continue
        core = column in CORE_COLUMNS[stem]
        if not core and spec.role not in FEATURE_ROLES[stem]:
            problems.add(
                "schema",
                P_SCHEMA,
                f"in the {stem} file use a role of {list(FEATURE_ROLES[stem]) or ['drop']}",
                column=column,
                value=spec.role,
            )
            continue
        matched.append((column, spec))
    present = set(columns)
    for column, spec in CORE_COLUMNS[stem].items():
        declared = schema.spec_for(stem, column) or spec
        if declared.required and column not in present:
            problems.add(file, P_MISSING_COLUMN, f"add a {column!r} column", column=column)
    for spec in schema.columns:
        core = any(spec.name in CORE_COLUMNS[f] for f in TABLE_FILES)  # checked above
        expected_here = stem == _declared_file(spec) and spec.name not in present
        if spec.required and not spec.is_pattern and not core and expected_here:
            problems.add(file, P_MISSING_COLUMN, f"add a {spec.name!r} column", column=spec.name)
    return matched


def _declared_file(spec: ColumnSpec) -> str:
    """Where a required non-core column is expected: genotypes in genomics, else patients."""
    return "genomics" if spec.role == "genotype" else "patients"


def _coerce(
    frame: pd.DataFrame, file: str, columns: Sequence[tuple[str, ColumnSpec]], problems: ProblemLog
) -> pd.DataFrame:
    """Typed copy of the matched columns: numbers as float64, categories as str (None = NA)."""
    typed: dict[str, pd.Series] = {}
    for column, spec in columns:
        raw = frame[column]
        if spec.role in ("categorical", "sensitive"):
            typed[column] = raw.str.strip().astype(object).where(raw.notna(), None)
            continue
        if spec.role == "binary":  # Parquet booleans arrive as "True"/"False"
            lowered = raw.str.strip().str.lower()
            boolean = lowered.isin(list(_BOOLEAN_TEXT)).to_numpy(dtype=bool)
            if boolean.any():
                raw = raw.where(~boolean, lowered.map(_BOOLEAN_TEXT))
        numbers = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = raw.notna() & numbers.isna()
        for row in raw.index[bad]:
            problems.add(
                file,
                P_NOT_A_NUMBER,
                f"write a number{' in ' + spec.unit if spec.unit else ''}, or leave it empty",
                row=_row_number(row),
                column=column,
                value=raw[row],
            )
        infinite = np.isinf(numbers.to_numpy())
        for row in raw.index[infinite]:
            problems.add(
                file,
                P_NOT_FINITE,
                f"write a finite number{' in ' + spec.unit if spec.unit else ''}, or leave it "
                "empty if it is unknown (infinity is not a measurement)",
                row=_row_number(row),
                column=column,
                value=raw[row],
            )
        numbers = numbers.where(~infinite)
        if spec.role in ("binary", "count", "genotype"):
            fractional = numbers.notna() & (numbers != np.round(numbers))
            for row in numbers.index[fractional]:
                problems.add(
                    file,
                    P_NOT_AN_INTEGER,
                    "write a whole number",
                    row=_row_number(row),
                    column=column,
                    value=raw[row],
                )
            numbers = numbers.where(~fractional)
        typed[column] = numbers
    return pd.DataFrame(typed, index=frame.index)


def _check_values(
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    file: str,
    columns: Sequence[tuple[str, ColumnSpec]],
    problems: ProblemLog,
) -> None:
    """Run the pandera checks lazily and turn each failure case into a problem row."""
    try:
        pandera_schema(file, columns).validate(typed, lazy=True)
    except SchemaErrors as err:
        specs = dict(columns)
        for case in err.failure_cases.itertuples(index=False):
            column, check, row = str(case.column), str(case.check), case.index
            spec = specs.get(column)
            if spec is None or row is None or pd.isna(row):
                continue
            row = int(row)
            value = raw.at[row, column] if column in raw.columns else case.failure_case
            if check == "not_nullable":
                problems.add(
                    file,
                    P_MISSING_VALUE,
                    f"fill in {column!r}; it is required",
                    row=row,
                    column=column,
                )
            elif check.startswith("category") or check.startswith("isin"):
                close = difflib.get_close_matches(str(value), spec.values, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                problems.add(
                    file,
                    P_CATEGORY,
                    f"{hint}allowed: {list(spec.values)}; add it to the schema's values "
                    "(a trained model has not seen it)",
                    row=row,
                    column=column,
                    value=value,
                )
            elif check.startswith("range") or check.startswith("in_range"):
                problems.add(
                    file,
                    *_range_problem(spec, float(typed[column].loc[row])),
                    row=row,
                    column=column,
                    value=value,
                )
            else:  # a pandera check this module does not map: report it as pandera words it
                problems.add(file, check, "fix the value", row=row, column=column, value=value)


def _range_problem(spec: ColumnSpec, value: float) -> tuple[str, str]:
    low = -math.inf if spec.low is None else spec.low
    high = math.inf if spec.high is None else spec.high
    if spec.role in ("binary", "genotype"):
        allowed = "0 or 1" if spec.role == "binary" else "0, 1 or 2"
        return P_OUT_OF_RANGE, f"use {allowed}"
    unit = f" {spec.unit}" if spec.unit else ""
    for factor in (UNIT_FACTOR, 1 / UNIT_FACTOR):
        if low <= value / factor <= high:
            return P_UNIT, (
                f"convert to{unit or ' the schema unit'}: {value:g} looks like {value / factor:g}"
                f"{unit}; the plausible range is {low:g}..{high:g}{unit}"
            )
    return P_OUT_OF_RANGE, f"check the value; the plausible range is {low:g}..{high:g}{unit}"


def as_strings(values: Sequence[object]) -> npt.NDArray[Any]:
    """A compact array of text (numpy ``StringDType``: short ids are stored inline)."""
    return np.array(values, dtype=StringDType())


def isin(values: npt.NDArray[Any], pool: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``np.isin`` for text arrays by sorting and binary search (``np.isin`` is quadratic)."""
    ordered = np.unique(pool)
    found = np.zeros(len(values), dtype=bool)
    if len(ordered) == 0 or len(values) == 0:
        return found
    index = np.searchsorted(ordered, values)
    inside = index < len(ordered)
    found[inside] = ordered[index[inside]] == values[inside]
    return found


class IdScan:
    """What one table's chunks leave for the cross-row checks: each valid id and its row.

    Only the normalised ids (numpy ``StringDType``) and row numbers are kept across chunks,
    about 20 bytes a row; an import (``keep``) also keeps the typed model inputs it writes.
    """

    def __init__(self) -> None:
        self._ids: list[npt.NDArray[Any]] = []
        self._rows: list[npt.NDArray[np.int64]] = []
        self._kept_ids: list[pd.Series] = []
        self._kept_typed: list[pd.DataFrame] = []
        self.last_row = 1
        self.ids: npt.NDArray[Any] = as_strings([])
        self.rows: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.kept_ids = pd.Series(dtype=object)
        self.kept_typed = pd.DataFrame()

    def add(self, ids: pd.Series, typed: pd.DataFrame | None) -> None:
        """Keep one chunk's valid ids and row numbers (and its typed values if ``typed``)."""
        valid = ids.notna().to_numpy(dtype=bool)
        self._ids.append(as_strings(ids[valid].tolist()))
        self._rows.append(np.asarray(ids.index[valid], dtype=np.int64))
        if len(ids):
            self.last_row = int(ids.index[-1])
        if typed is not None:
            self._kept_ids.append(ids)
            self._kept_typed.append(typed)

    def finish(self) -> None:
        """Join the chunks into ``ids``, ``rows``, ``kept_ids`` and ``kept_typed``."""
        if self._ids:
            self.ids = np.concatenate(self._ids)
            self.rows = np.concatenate(self._rows)
        self._ids, self._rows = [], []
        if self._kept_ids:
            self.kept_ids = pd.concat(self._kept_ids)
            self.kept_typed = pd.concat(self._kept_typed)
        self._kept_ids, self._kept_typed = [], []

    def duplicates(self) -> list[tuple[int, str]]:
        """Row and id of every row whose id occurs more than once, in row order."""
        order = np.argsort(self.ids, kind="stable")
        ordered = self.ids[order]
        same = ordered[1:] == ordered[:-1]
        mask = np.zeros(len(order), dtype=bool)
        mask[1:] |= same
        mask[:-1] |= same
        picked = np.sort(order[mask])
        return [(int(self.rows[i]), str(self.ids[i])) for i in picked]


def scan_table(
    table: TableReader,
    stem: str,
    schema: ImportSchema,
    columns: Sequence[tuple[str, ColumnSpec]],
    problems: ProblemLog,
    *,
    keep: bool,
) -> IdScan | None:
    """Check a table chunk by chunk (ids, types, ranges, lengths); None if it breaks off."""
    names = [schema.id_column, *(column for column, _ in columns)]
    scan = IdScan()
    units = UnitScan(table.name, columns)
    try:
        for chunk in table.chunks(names):
            chunk_ids = normalise_ids(chunk, table.name, schema.id_column, problems)
            typed = _coerce(chunk, table.name, columns, problems)
            _check_values(typed, chunk, table.name, columns, problems)
            _check_lengths(typed, chunk, stem, table.name, columns, problems)
            units.add(typed)
            scan.add(chunk_ids, typed if keep else None)
    except (OSError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
        problems.add(
            table.name,
            P_UNREADABLE,
            f"save it as UTF-8 CSV or Parquet (after row {scan.last_row}: {err})",
        )
        return None
    table.report_ragged(problems)
    units.report(problems)
    scan.finish()
    return scan


def _stored_lengths() -> dict[tuple[str, str], tuple[str, int]]:
    """Text columns of the tables stored as text, with the store's column length."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for (stem, column), model in {
        ("patients", "sex"): Demographics,
        ("patients", "ethnicity"): Demographics,
        ("patients", "site"): Demographics,
        ("patients", "split"): Patient,
        ("outcomes", "treatment"): Outcome,
    }.items():
        length = getattr(model.__table__.c[column].type, "length", None)
        if isinstance(length, int):
            out[(stem, column)] = (f"{model.__tablename__}.{column}", length)
    return out


def _check_lengths(
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    stem: str,
    file: str,
    columns: Sequence[tuple[str, ColumnSpec]],
    problems: ProblemLog,
) -> None:
    """Values stored as text must fit the store's column (PostgreSQL refuses longer ones)."""
    limits = _stored_lengths()
    for column, _ in columns:
        limit = limits.get((stem, column))
        if limit is None:
            continue
        where, length = limit
        values = typed[column]
        too_long = values.astype("str").str.len().gt(length).fillna(False).astype(bool)
        for row in values.index[too_long.to_numpy()]:
            problems.add(
                file,
                P_TOO_LONG,
                f"shorten it to at most {length} characters (the store's {where} holds "
                f"{length}); it is {len(str(values[row]))} long",
                row=_row_number(row),
                column=column,
                value=raw.at[row, column],
            )


def _row_number(index: object) -> int:
    """A frame index label (spreadsheet row number) as int."""
    if isinstance(index, int | np.integer):
        return int(index)
    raise TypeError(f"Row label {index!r} is not a row number; read tables with read_table.")
