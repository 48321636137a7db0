"""Import a user's own cohort: schema file, one-pass validation, transactional write.

Owns the cohort folder format (``docs/import.md``): ``patients``, ``outcomes`` and optional
``genomics`` tables (CSV or Parquet), an optional ``images/`` folder (naming rule or an
``images.csv`` manifest) and a TOML schema of column roles. :func:`validate_cohort` reads
everything once and collects **every** problem into one table (file, row, column, value,
problem, fix) before anything is written; :func:`import_cohort` then writes the cohort through
:meth:`data.store.CohortStore.import_cohort` in one transaction, rewriting only the parts whose
content hash changed.

Scans are read by a :class:`ScanReader` passed in by the caller (``models.scans.read_scan``
uses MONAI): this module is the bottom layer and must not import torch, MONAI, streamlit or the
``models``, ``fusion`` or ``dashboard`` packages.
"""

from __future__ import annotations

import csv
import difflib
import fnmatch
import hashlib
import io
import json
import logging
import math
import operator
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq
from numpy.dtypes import StringDType
from pandera.errors import SchemaErrors
from tqdm.auto import tqdm

from data.errors import CohortValidationError, ScanReadError
from data.scan_spec import ScanModality, ScanReader, ScanSpec, SliceStrategy
from data.schema import Demographics, Outcome, Patient
from data.splits import SPLITS, stable_split
from data.store import IMPORT_PARTS, AuditEntry, CohortStore, ImportCounts, ImportTables
from data.vocabulary import FEATURE_SPECS, SEXES, FeatureSpec

__all__ = [
    "IMAGE_SUFFIXES",
    "PROBLEM_COLUMNS",
    "ROLES",
    "ColumnSpec",
    "ImportResult",
    "ImportSchema",
    "ScanReader",
    "ScanSpec",
    "ValidationReport",
    "import_cohort",
    "load_schema",
    "validate_cohort",
]

logger = logging.getLogger(__name__)

Role = Literal[
    "identifier", "sensitive", "numeric", "binary", "count", "categorical", "genotype", "drop"
]
ROLES: Final[tuple[str, ...]] = get_args(Role)
Severity = Literal["error", "warning"]

TABLE_FILES: Final[tuple[str, ...]] = ("patients", "outcomes", "genomics")
REQUIRED_FILES: Final[tuple[str, ...]] = ("patients", "outcomes")
PROBLEM_COLUMNS: Final[tuple[str, ...]] = (
    "severity",
    "file",
    "row",
    "column",
    "value",
    "problem",
    "fix",
)
IMAGE_SUFFIXES: Final[tuple[str, ...]] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".npy",
    ".nii",
    ".nii.gz",
    ".dcm",
)
UNIT_FACTOR: Final[float] = 1000.0
NOT_RECORDED: Final[str] = "not recorded"
ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")
# Column names that look like direct identifiers: refused unless the schema names them exactly.
IDENTIFIER_NAME: Final[re.Pattern[str]] = re.compile(
    r"(^|_)(first_?name|last_?name|surname|given_?name|full_?name|patient_?name|name|"
    r"address|street|city|zip|zip_?code|post_?code|phone|telephone|mobile|fax|e_?mail|"
    r"mrn|medical_record(_number)?|nhs_?(number|no)|ssn|social_security(_number)?|"
    r"dob|date_of_birth|birth_?date|passport)($|_)"
)
_BOOLEAN_TEXT: Final[dict[str, str]] = {"true": "1", "false": "0"}
NA_VALUES: Final[list[str]] = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]

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

# Bounded memory: tables are read in chunks of about CHUNK_CELLS cells (rows x columns read);
# across chunks only each row's normalised id and row number are kept (about 20 bytes a row),
# and at most MAX_LISTED problem rows per file, column and problem (the rest are counted).
CHUNK_CELLS: Final[int] = 200_000
MAX_LISTED: Final[int] = 1_000
RAGGED_LISTED: Final[int] = 5
DELIMITERS: Final[dict[str, str]] = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """Role and metadata of one column (or a glob pattern of columns) of the cohort tables.

    Attributes
    ----------
    name : str
        Column name, or an ``fnmatch`` pattern such as ``"snp_*"``.
    role : {"identifier", "sensitive", "numeric", "binary", "count", "categorical", \
"genotype", "drop"}
        ``identifier``: the patient id. ``sensitive``: a sensitive attribute (``sex``,
        ``ethnicity``, ``site``; audited, ``sex`` also a model input). ``numeric``/``binary``/
        ``count``/``categorical``/``genotype``: model inputs. ``drop``: read, checked for
        nothing and never stored (map direct identifiers here).
    label, unit, description : str
        Readable name, unit (``""`` if unitless) and one sentence for tooltips.
    low, high : float or None
        Plausible range (inclusive) of ``numeric`` and ``count`` values.
    values : tuple of str
        Allowed categories of ``categorical`` and ``sensitive`` columns (empty: any, only for
        ``ethnicity``, ``site`` and ``treatment``). Categorical inputs are stored as codes
        ``0..len(values) - 1`` in this order.
    required : bool
        Whether a missing value is a problem.
    """

    name: str
    role: Role
    label: str = ""
    unit: str = ""
    description: str = ""
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    required: bool = False

    @property
    def is_pattern(self) -> bool:
        """Whether ``name`` is a glob pattern rather than one column."""
        return any(char in self.name for char in "*?[")


# Columns with a fixed meaning; a schema entry of the same name overrides these defaults.
CORE_COLUMNS: Final[dict[str, dict[str, ColumnSpec]]] = {
    "patients": {
        "age": ColumnSpec(
            "age", "numeric", "Age", "years", "Age at baseline.", 0.0, 120.0, (), True
        ),
        "sex": ColumnSpec("sex", "sensitive", "Sex", values=SEXES, required=True),
        "ethnicity": ColumnSpec("ethnicity", "sensitive", "Ethnicity"),
        "site": ColumnSpec("site", "sensitive", "Site"),
        "split": ColumnSpec("split", "categorical", "Split", values=SPLITS),
    },
    "outcomes": {
        "label": ColumnSpec("label", "binary", "Event within the horizon", required=True),
        "event_time": ColumnSpec(
            "event_time", "numeric", "Time to event", "years", low=0.0, high=100.0
        ),
        "event": ColumnSpec("event", "binary", "Event observed"),
        "treatment": ColumnSpec("treatment", "categorical", "Treatment"),
    },
    "genomics": {},
}
# The model's demographic inputs (age from the patients file, sex_male from its sex column).
DEMOGRAPHIC_INPUTS: Final[dict[str, FeatureSpec]] = {
    spec.name: spec for spec in FEATURE_SPECS if spec.modality == "demographics"
}
ANY_VALUES: Final[frozenset[str]] = frozenset({"ethnicity", "site", "treatment"})
FEATURE_ROLES: Final[dict[str, tuple[str, ...]]] = {
    "patients": ("numeric", "binary", "count", "categorical"),
    "genomics": ("genotype", "binary", "count", "categorical"),
    "outcomes": (),
}


@dataclass(frozen=True, slots=True)
class ImportSchema:
    """A parsed schema file.

    Attributes
    ----------
    name : str
        Cohort name; stored patients get the source ``"import:<name>"``.
    id_column : str
        The patient id column, present in every table.
    hash_ids : bool
        Replace patient ids by salted SHA-256 hashes (the salt is passed to the import).
    columns : tuple of ColumnSpec
        Declared columns in file order.
    scans : ScanSpec
        Image preprocessing.
    manifest : str
        ``images.csv``-style manifest path relative to the cohort folder, or ``""`` for the
        naming rule ``images/<patient_id>.<ext>`` (or ``images/<patient_id>/`` for a DICOM
        series).
    """

    name: str
    id_column: str = "patient_id"
    hash_ids: bool = False
    columns: tuple[ColumnSpec, ...] = ()
    scans: ScanSpec = field(default_factory=ScanSpec)
    manifest: str = ""

    @property
    def source(self) -> str:
        """The ``patients.source`` value of this cohort."""
        return f"import:{self.name}"

    def spec_for(self, file: str, column: str) -> ColumnSpec | None:
        """The spec of a column: exact schema entry, then core default, then a glob match."""
        for spec in self.columns:
            if spec.name == column and not spec.is_pattern:
                return spec
        core = CORE_COLUMNS[file].get(column)
        if core is not None:
            return core
        for spec in self.columns:
            if spec.is_pattern and fnmatch.fnmatchcase(column, spec.name):
                return spec
        return None


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
        """The problem table as aligned text, errors first, at most ``max_rows`` rows."""
        if self.problems.empty:
            return "no problems"
        head = self.problems.head(max_rows).astype(object)
        shown = head.where(head.notna(), "")
        more = len(self.problems) - len(shown)
        text = shown.to_string(index=False, max_colwidth=60)
        return text + (
            f"\n... and {more} more (write them all with --report FILE.csv)" if more else ""
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Outcome of :func:`import_cohort`.

    Attributes
    ----------
    report : ValidationReport
        The validation table (warnings only, since errors stop the import).
    counts : ImportCounts or None
        What the write changed; None for a dry run.
    """

    report: ValidationReport
    counts: ImportCounts | None


class _Problems:
    """Accumulates problem rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        # (severity, file, column, problem) -> [rows listed, rows not listed, fix, first omitted]
        self._kinds: dict[tuple[str, str, str, str], list[Any]] = {}

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
            if count
        ]
        frame = pd.DataFrame(self.rows + omitted, columns=list(PROBLEM_COLUMNS))
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


# ---------------------------------------------------------------------------------- schema
def _float_pair(value: object) -> tuple[float, float] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return float(value[0]), float(value[1])
    return None


def _parse_schema(raw: Mapping[str, Any], problems: _Problems, file: str) -> ImportSchema:
    """Turn TOML data into an :class:`ImportSchema`, recording every invalid entry."""

    def bad(key: str, value: object, fix: str) -> None:
        problems.add(file, P_SCHEMA, fix, column=key, value=value)

    known_sections = {"cohort", "images", "columns"}
    for section in sorted(set(raw) - known_sections):
        bad(section, "", f"unknown section; allowed sections: {sorted(known_sections)}")
    cohort = raw.get("cohort", {})
    name = cohort.get("name", "")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,24}", name):
        bad("cohort.name", name, "set a cohort name of 1-24 letters, digits, _ . -")
        name = "cohort"
    id_column = cohort.get("id_column", "patient_id")
    if not isinstance(id_column, str) or not id_column:
        bad("cohort.id_column", id_column, 'name the patient id column, e.g. "patient_id"')
        id_column = "patient_id"
    hash_ids = cohort.get("hash_ids", False)
    if not isinstance(hash_ids, bool):
        bad("cohort.hash_ids", hash_ids, "use true or false")
        hash_ids = False

    images = raw.get("images", {})
    scan_args: dict[str, Any] = {}
    modality = images.get("modality", "other")
    if modality not in get_args(ScanModality):
        bad("images.modality", modality, f"use one of {list(get_args(ScanModality))}")
    else:
        scan_args["modality"] = modality
    size = images.get("size", 128)
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 1024:
        bad("images.size", size, "use a whole number of pixels in 16..1024")
    else:
        scan_args["size"] = size
    spacing = images.get("spacing", [1.0, 1.0, 1.0])
    if (
        not isinstance(spacing, list)
        or len(spacing) != 3
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in spacing
        )
    ):
        bad("images.spacing", spacing, "give three positive spacings in mm, e.g. [1.0, 1.0, 2.5]")
    else:
        scan_args["spacing"] = tuple(float(v) for v in spacing)
    for key, target in (("ct_window", "ct_window"), ("percentiles", "percentiles")):
        if key in images:
            pair = _float_pair(images[key])
            if pair is None or pair[0] >= pair[1]:
                bad(f"images.{key}", images[key], "give [low, high] with low < high")
            else:
                scan_args[target] = pair
    strategy = images.get("slice", "max_foreground")
    if strategy not in get_args(SliceStrategy):
        bad("images.slice", strategy, f"use one of {list(get_args(SliceStrategy))}")
    else:
        scan_args["slice_strategy"] = strategy
    manifest = images.get("manifest", "")
    if not isinstance(manifest, str):
        bad("images.manifest", manifest, 'give a file name such as "images.csv", or ""')
        manifest = ""

    columns: list[ColumnSpec] = []
    allowed_keys = {"role", "label", "unit", "description", "low", "high", "values", "required"}
    raw_columns = raw.get("columns", {})
    for column, entry in raw_columns.items() if isinstance(raw_columns, dict) else ():
        key = f"columns.{column}"
        if not isinstance(entry, dict):
            bad(key, entry, "write a table: [columns.NAME] with role = ...")
            continue
        for extra in sorted(set(entry) - allowed_keys):
            bad(f"{key}.{extra}", entry[extra], f"unknown key; allowed: {sorted(allowed_keys)}")
        role = entry.get("role")
        if role not in ROLES:
            bad(f"{key}.role", role, f"use one of {list(ROLES)}")
            continue
        low, high = entry.get("low"), entry.get("high")
        numbers_ok = all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool))
            for v in (low, high)
        )
        if not numbers_ok or (low is not None and high is not None and low > high):
            bad(key, f"low={low}, high={high}", "give numbers with low <= high")
            low = high = None
        values = entry.get("values", [])
        if not isinstance(values, list):
            bad(f"{key}.values", values, 'give a list of allowed values, e.g. ["F", "M"]')
            values = []
        if role == "categorical" and not values and column not in ANY_VALUES:
            bad(f"{key}.values", "", 'list the allowed categories: values = ["a", "b"]')
        columns.append(
            ColumnSpec(
                name=str(column),
                role=role,
                label=str(entry.get("label", "")),
                unit=str(entry.get("unit", "")),
                description=str(entry.get("description", "")),
                low=None if low is None else float(low),
                high=None if high is None else float(high),
                values=tuple(str(v) for v in values),
                required=bool(entry.get("required", False)),
            )
        )
    return ImportSchema(
        name=name,
        id_column=id_column,
        hash_ids=hash_ids,
        columns=tuple(columns),
        scans=ScanSpec(**scan_args),
        manifest=manifest,
    )


def load_schema(path: Path) -> ImportSchema:
    """Read a TOML schema file.

    Parameters
    ----------
    path : Path
        The schema file (see ``docs/import.md``).

    Returns
    -------
    ImportSchema
        The parsed schema.

    Raises
    ------
    CohortValidationError
        If the file is missing, not TOML or has invalid entries; every entry is listed.
    """
    problems = _Problems()
    schema = _load_schema(path, problems)
    if schema is None or problems.rows:
        raise CohortValidationError(ValidationReport(problems.frame()))
    return schema


def _load_schema(path: Path, problems: _Problems) -> ImportSchema | None:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.add(
            path.name,
            P_MISSING_FILE,
            "write a schema.toml in the cohort folder or pass --schema FILE (docs/import.md)",
        )
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        problems.add(path.name, "the schema is not valid TOML", f"fix the syntax: {err}")
        return None
    return _parse_schema(raw, problems, path.name)


# ---------------------------------------------------------------------------------- tables
def _find_table(directory: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".parquet"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


class _Table:
    """A table file opened for reading in chunks: header checked, cells as text.

    The header is read and checked once (:meth:`open`): a file delimited by something other
    than commas and duplicated column names are problems. :meth:`chunks` then yields frames of
    at most ``rows`` rows, indexed by spreadsheet row (the header is row 1), with every cell as
    text and the missing markers of :data:`NA_VALUES` as None. CSV rows whose field count
    differs from the header's are left out of the frames and reported once per file by
    :meth:`report_ragged` (their cells would be shifted into the wrong columns).
    """

    def __init__(self, path: Path, columns: list[str], fields: list[str], n_fields: int) -> None:
        self.path = path
        self.name = path.name
        self.columns = columns  # unique stripped names, file order (first occurrence kept)
        self._fields = fields  # the file's own name (or position) of each column
        self.n_fields = n_fields  # fields of the header, duplicates included
        self.ragged: list[tuple[int, int]] = []
        self.n_ragged = 0

    @classmethod
    def open(cls, path: Path, problems: _Problems) -> _Table | None:
        """Read and check the header; None (with the problem recorded) when unusable."""
        try:
            if path.suffix == ".csv":
                with path.open(encoding="utf-8-sig", newline="") as handle:
                    header = next(csv.reader(handle, skipinitialspace=True), None)
                if not header:
                    problems.add(path.name, P_UNREADABLE, "save it as UTF-8 CSV with a header row")
                    return None
                for delimiter, word in DELIMITERS.items():
                    found = sum(name.count(delimiter) for name in header)
                    if found >= len(header):  # more of them than commas: the file's delimiter
                        problems.add(
                            path.name,
                            P_DELIMITER.format(word),
                            f"save it as comma-separated CSV (UTF-8); the header has {found} "
                            f"{word}s and {len(header) - 1} commas",
                            value=header[0][:40],
                        )
                        return None
                names = [str(name).strip() for name in header]
                positions = [str(i) for i in range(len(header))]
            else:
                names_raw = [  # a pandas index stored as a column is not data
                    name
                    for name in pq.ParquetFile(path).schema_arrow.names
                    if not str(name).startswith("__index_level_")
                ]
                names = [str(name).strip() for name in names_raw]
                positions = [str(name) for name in names_raw]
        except (OSError, ValueError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
            problems.add(path.name, P_UNREADABLE, f"save it as UTF-8 CSV or Parquet ({err})")
            return None
        columns: list[str] = []
        fields: list[str] = []
        first: dict[str, int] = {}
        for index, (name, position) in enumerate(zip(names, positions, strict=True)):
            name = name or f"Unnamed: {index}"
            if name in first:
                problems.add(
                    path.name,
                    P_DUPLICATE_COLUMN,
                    f"columns {first[name] + 1} and {index + 1} are both named {name!r}: delete "
                    "the copy, or rename it and describe it in the schema",
                    column=name,
                )
                continue
            first[name] = index
            columns.append(name)
            fields.append(position)
        if path.suffix != ".csv" and len(columns) < len(names):
            return None  # Parquet columns are read by name: a duplicated name is ambiguous
        return cls(path, columns, fields, len(names))

    def chunks(self, columns: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """Frames of at most ``rows`` rows of ``columns`` (text, None = missing).

        Raises
        ------
        OSError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException
            If the file cannot be read past the header (the caller records it).
        """
        wanted = [self._fields[self.columns.index(column)] for column in columns]
        if self.path.suffix != ".csv":
            yield from self._parquet_chunks(columns, wanted, rows)
            return
        picks = [int(position) for position in wanted]
        pick: Callable[[list[str]], Any] = (
            operator.itemgetter(*picks) if len(picks) > 1 else lambda row: (row[picks[0]],)
        )
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            next(reader)  # the header, checked by open()
            block: list[Any] = []
            labels: list[int] = []
            row, yielded = 1, False
            for fields in reader:
                row += 1
                if len(fields) != self.n_fields:
                    if not fields or fields == [""]:
                        continue  # a blank line
                    self.n_ragged += 1
                    if len(self.ragged) < RAGGED_LISTED:
                        self.ragged.append((row, len(fields)))
                    continue
                block.append(pick(fields))
                labels.append(row)
                if len(block) >= rows:
                    yield self._frame(block, labels, columns)
                    block, labels, yielded = [], [], True
            if block or not yielded:  # an empty table still yields its (empty) columns
                yield self._frame(block, labels, columns)

    def _parquet_chunks(
        self, columns: Sequence[str], wanted: Sequence[str], rows: int
    ) -> Iterator[pd.DataFrame]:
        start = 2
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=rows, columns=wanted):
            frame = batch.to_pandas()
            frame = frame.astype(object).where(frame.notna(), None)
            frame = frame.map(lambda v: None if v is None else str(v))
            frame.columns = list(columns)
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame

    @staticmethod
    def _frame(block: list[Any], labels: list[int], columns: Sequence[str]) -> pd.DataFrame:
        frame = pd.DataFrame(block, columns=list(columns), index=labels, dtype=object)
        if frame.empty:
            return frame.astype("str")
        return frame.mask(frame.isin(NA_VALUES)).astype("str")

    def report_ragged(self, problems: _Problems) -> None:
        """One problem for every row whose field count differs from the header's."""
        if not self.n_ragged:
            return
        listed = ", ".join(f"{row} ({n} fields)" for row, n in self.ragged)
        more = self.n_ragged - len(self.ragged)
        extra = any(n > self.n_fields for _, n in self.ragged)
        hint = (
            "a value holds an unquoted comma (a decimal comma such as 1,5?): write decimals "
            'with a point, or quote the value ("1,5")'
            if extra
            else "a row is cut short: give it every column (empty cells for missing values)"
        )
        problems.add(
            self.name,
            P_RAGGED,
            f"the header has {self.n_fields} fields; {hint}. These rows were not checked further.",
            row=self.ragged[0][0],
            value=f"{self.n_ragged} row(s): {listed}" + (", ..." if more else ""),
        )


def _chunk_rows(n_columns: int) -> int:
    """Rows per chunk so that a chunk holds about :data:`CHUNK_CELLS` cells."""
    return max(100, CHUNK_CELLS // max(n_columns, 1))


def _read_table(path: Path, problems: _Problems) -> pd.DataFrame | None:
    """Read a small table (a manifest) whole, with the checks of :class:`_Table`."""
    table = _Table.open(path, problems)
    if table is None:
        return None
    try:
        frame = pd.concat(list(table.chunks(table.columns, _chunk_rows(len(table.columns)))))
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
        problems.add(path.name, P_UNREADABLE, f"save it as UTF-8 CSV or Parquet ({err})")
        return None
    table.report_ragged(problems)
    return frame


def _normalise_ids(
    frame: pd.DataFrame, file: str, id_column: str, problems: _Problems
) -> pd.Series:
    """Stripped, upper-cased ids (None where missing or invalid, each recorded)."""
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


def _check_columns(
    columns: Sequence[str], stem: str, file: str, schema: ImportSchema, problems: _Problems
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
    frame: pd.DataFrame, file: str, columns: Sequence[tuple[str, ColumnSpec]], problems: _Problems
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


def _pandera_schema(file: str, columns: Sequence[tuple[str, ColumnSpec]]) -> pa.DataFrameSchema:
    """Range, category and completeness checks of the typed columns, run lazily by pandera."""
    specs: dict[str, pa.Column] = {}
    for column, spec in columns:
        checks: list[pa.Check] = []
        if spec.role in ("categorical", "sensitive"):
            if spec.values:
                checks.append(pa.Check.isin(list(spec.values), name="category"))
            dtype: Any = object
        else:
            dtype = float
            allowed = {"binary": (0.0, 1.0), "genotype": (0.0, 2.0)}.get(spec.role)
            low, high = allowed or (spec.low, spec.high)
            if spec.role == "count" and low is None:
                low = 0.0
            if low is not None or high is not None:
                checks.append(
                    pa.Check.in_range(
                        -math.inf if low is None else low,
                        math.inf if high is None else high,
                        name="range",
                    )
                )
        specs[column] = pa.Column(dtype, checks, nullable=not spec.required, required=True)
    return pa.DataFrameSchema(specs, name=file)


def _check_values(
    typed: pd.DataFrame,
    raw: pd.DataFrame,
    file: str,
    columns: Sequence[tuple[str, ColumnSpec]],
    problems: _Problems,
) -> None:
    """Run the pandera checks lazily and turn each failure case into a problem row."""
    try:
        _pandera_schema(file, columns).validate(typed, lazy=True)
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


def _strings(values: Sequence[object]) -> npt.NDArray[Any]:
    """A compact array of text (numpy ``StringDType``: short ids are stored inline)."""
    return np.array(values, dtype=StringDType())


def _isin(values: npt.NDArray[Any], pool: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``np.isin`` for text arrays by sorting and binary search (``np.isin`` is quadratic)."""
    ordered = np.unique(pool)
    found = np.zeros(len(values), dtype=bool)
    if len(ordered) == 0 or len(values) == 0:
        return found
    index = np.searchsorted(ordered, values)
    inside = index < len(ordered)
    found[inside] = ordered[index[inside]] == values[inside]
    return found


class _IdScan:
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
        self.ids: npt.NDArray[Any] = _strings([])
        self.rows: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self.kept_ids = pd.Series(dtype=object)
        self.kept_typed = pd.DataFrame()

    def add(self, ids: pd.Series, typed: pd.DataFrame | None) -> None:
        valid = ids.notna().to_numpy(dtype=bool)
        self._ids.append(_strings(ids[valid].tolist()))
        self._rows.append(np.asarray(ids.index[valid], dtype=np.int64))
        if len(ids):
            self.last_row = int(ids.index[-1])
        if typed is not None:
            self._kept_ids.append(ids)
            self._kept_typed.append(typed)

    def finish(self) -> None:
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


def _scan_table(
    table: _Table,
    stem: str,
    schema: ImportSchema,
    columns: Sequence[tuple[str, ColumnSpec]],
    problems: _Problems,
    *,
    keep: bool,
) -> _IdScan | None:
    """Check a table chunk by chunk (ids, types, ranges, lengths); None if it breaks off."""
    names = [schema.id_column, *(column for column, _ in columns)]
    scan = _IdScan()
    try:
        for chunk in table.chunks(names, _chunk_rows(len(names))):
            chunk_ids = _normalise_ids(chunk, table.name, schema.id_column, problems)
            typed = _coerce(chunk, table.name, columns, problems)
            _check_values(typed, chunk, table.name, columns, problems)
            _check_lengths(typed, chunk, stem, table.name, columns, problems)
            scan.add(chunk_ids, typed if keep else None)
    except (OSError, UnicodeDecodeError, csv.Error, pyarrow.ArrowException) as err:
        problems.add(
            table.name,
            P_UNREADABLE,
            f"save it as UTF-8 CSV or Parquet (after row {scan.last_row}: {err})",
        )
        return None
    table.report_ragged(problems)
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
    problems: _Problems,
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


# ---------------------------------------------------------------------------------- images
@dataclass(frozen=True, slots=True)
class _ImageEntry:
    patient_id: str
    path: Path
    label: str  # path relative to the cohort folder
    modality: ScanModality


def _outside_folder(path: Path, root: Path) -> Path | None:
    """The first of ``path`` or (for a folder) anything in it that resolves outside ``root``.

    Symbolic links (and ``..`` in a manifest path) are resolved first, so a link in
    ``images/`` to a scan, a folder or any file elsewhere on the server is caught; a link that
    stays inside the cohort folder is allowed.
    """
    if not path.resolve().is_relative_to(root):
        return path
    if path.is_dir():
        for folder, subfolders, files in os.walk(path):  # does not descend into linked folders
            for name in sorted([*subfolders, *files]):
                entry = Path(folder, name)
                if not entry.resolve().is_relative_to(root):
                    return entry
    return None


def _link_problem(problems: _Problems, directory: Path, label: str, outside: Path) -> None:
    """Record a link out of the cohort folder: name the file and the fix (not the target)."""
    name = outside.relative_to(directory).as_posix() if outside.is_relative_to(directory) else label
    problems.add(
        label,
        P_LINK_OUTSIDE,
        f"{name} resolves outside {directory.name}/; copy the file into the cohort folder "
        "instead of linking to it (imports read only files inside the folder)",
        value=name,
    )


def _image_entries(directory: Path, schema: ImportSchema, problems: _Problems) -> list[_ImageEntry]:
    """Scans by manifest (``patient_id, path[, modality]``) or by the naming rule.

    Every scan must lie inside the cohort folder once links are resolved (see
    :func:`_outside_folder`); one that does not is reported and never read.
    """
    entries: list[_ImageEntry] = []
    root = directory.resolve()
    images_dir = directory / "images"
    manifest = schema.manifest or ("images.csv" if (directory / "images.csv").is_file() else "")
    if manifest:
        path = directory / manifest
        if not path.is_file():
            problems.add(manifest, P_MISSING_FILE, "add the manifest or remove images.manifest")
            return []
        frame = _read_table(path, problems)
        if frame is None:
            return []
        for column in (schema.id_column, "path"):
            if column not in frame.columns:
                problems.add(manifest, P_MISSING_COLUMN, f"add a {column!r} column", column=column)
        if problems.rows and any(
            r["file"] == manifest and r["problem"] == P_MISSING_COLUMN for r in problems.rows
        ):
            return []
        ids = _normalise_ids(frame, manifest, schema.id_column, problems)
        modalities = frame["modality"] if "modality" in frame.columns else None
        for row in frame.index:
            pid, rel = ids[row], frame["path"].loc[row]
            if pid is None or pd.isna(pid):
                continue
            if rel is None or pd.isna(rel):
                problems.add(
                    manifest, P_MISSING_VALUE, "give the image path", row=row, column="path"
                )
                continue
            modality = schema.scans.modality
            if (
                modalities is not None
                and modalities[row] is not None
                and not pd.isna(modalities[row])
            ):
                value = str(modalities[row]).strip()
                if value not in get_args(ScanModality):
                    problems.add(
                        manifest,
                        P_CATEGORY,
                        f"allowed: {list(get_args(ScanModality))}",
                        row=row,
                        column="modality",
                        value=value,
                    )
                    continue
                modality = value  # type: ignore[assignment]
            target = images_dir / str(rel)
            if not target.exists():
                problems.add(
                    manifest,
                    "image file not found",
                    f"put the file at images/{rel} or fix the path",
                    row=row,
                    column="path",
                    value=rel,
                )
                continue
            outside = _outside_folder(target, root)
            if outside is not None:
                _link_problem(problems, directory, manifest, outside)
                continue
            entries.append(_ImageEntry(str(pid), target, f"images/{rel}", modality))
        return entries
    if not images_dir.is_dir():
        return []
    for item in sorted(images_dir.iterdir()):
        if item.name.startswith("."):
            continue
        label = f"images/{item.name}"
        outside = _outside_folder(item, root)
        if outside is not None:
            _link_problem(problems, directory, label, outside)
            continue
        if item.is_dir():
            stem = item.name
        else:
            suffix = next((s for s in IMAGE_SUFFIXES if item.name.lower().endswith(s)), None)
            if suffix is None:
                problems.add(
                    label,
                    P_NOT_IMAGE,
                    f"use one of {list(IMAGE_SUFFIXES)} or a DICOM series folder",
                    severity="warning",
                )
                continue
            stem = item.name[: -len(suffix)]
        pid = stem.strip().upper()
        if not ID_PATTERN.fullmatch(pid):
            problems.add(
                label,
                P_BAD_ID,
                "name the file <patient_id>.<ext> or list it in images.csv",
                value=stem,
            )
            continue
        entries.append(_ImageEntry(pid, item, label, schema.scans.modality))
    return entries


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _npy_bytes(array: npt.NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------- pass
@dataclass(frozen=True, slots=True)
class _Prepared:
    report: ValidationReport
    tables: ImportTables | None
    written: tuple[Path, ...]


def _row_number(index: object) -> int:
    """A frame index label (spreadsheet row number) as int."""
    if isinstance(index, int | np.integer):
        return int(index)
    raise TypeError(f"Row label {index!r} is not a row number; read tables with _read_table.")


def _row_hash(values: Mapping[Any, Any]) -> str:
    def plain(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v

    text = json.dumps({k: plain(v) for k, v in values.items()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _hash_id(patient_id: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}\x00{patient_id}".encode()).hexdigest()
    return "H" + digest[:20].upper()


def _feature_rows(file: str, columns: Sequence[tuple[str, ColumnSpec]]) -> list[dict[str, Any]]:
    modality = "genomics" if file == "genomics" else "ehr"
    rows = []
    for column, spec in columns:
        if column in CORE_COLUMNS[file]:
            continue
        low, high = spec.low, spec.high
        description = spec.description or spec.label or column
        if spec.role == "binary":
            low, high = 0.0, 1.0
        elif spec.role == "genotype":
            low, high = 0.0, 2.0
        elif spec.role == "categorical":
            low, high = 0.0, float(len(spec.values) - 1)
            codes = ", ".join(f"{i} {v}" for i, v in enumerate(spec.values))
            description = f"{description} Codes: {codes}."
        rows.append(
            {
                "name": column,
                "modality": modality,
                "label": spec.label or column,
                "unit": spec.unit,
                "kind": "genotype" if spec.role == "genotype" else spec.role,
                "low": low,
                "high": high,
                "description": description,
            }
        )
    return rows


def _encode(
    typed: pd.DataFrame, columns: Sequence[tuple[str, ColumnSpec]], file: str
) -> pd.DataFrame:
    """Model-input columns as numbers (categories as their code)."""
    out: dict[str, pd.Series] = {}
    for column, spec in columns:
        if column in CORE_COLUMNS[file]:
            continue
        series = typed[column]
        if spec.role == "categorical":
            codes = {value: float(i) for i, value in enumerate(spec.values)}
            series = series.map(codes).astype(np.float64)
        out[column] = series.astype(np.float64)
    return pd.DataFrame(out, index=typed.index)


def _prepare(
    directory: Path,
    schema: ImportSchema,
    reader: ScanReader | None,
    *,
    artifacts_dir: Path | None,
    id_salt: str | None,
    progress: bool,
    store: CohortStore | None = None,
) -> _Prepared:
    """The single validation pass; builds the store tables when there is no error."""
    problems = _Problems()
    if schema.hash_ids and not id_salt:
        problems.add(
            "schema",
            "hash_ids = true needs a salt",
            "pass --id-salt-file FILE (keep the salt secret and the same for every import)",
            column="cohort.hash_ids",
        )
    keep = artifacts_dir is not None  # an import keeps the typed tables to write them
    paths: dict[str, Path] = {}
    scans: dict[str, _IdScan] = {}
    ids: dict[str, pd.Series] = {}
    typed: dict[str, pd.DataFrame] = {}
    matched: dict[str, list[tuple[str, ColumnSpec]]] = {}
    seen_features: dict[str, str] = {}
    for stem in TABLE_FILES:
        path = _find_table(directory, stem)
        if path is None:
            if stem in REQUIRED_FILES:
                problems.add(
                    f"{stem}.csv",
                    P_MISSING_FILE,
                    f"add {stem}.csv or {stem}.parquet to {directory}",
                )
            continue
        table = _Table.open(path, problems)
        if table is None:
            continue
        if schema.id_column not in table.columns:
            problems.add(
                path.name,
                P_MISSING_COLUMN,
                f"add the id column {schema.id_column!r} (or set cohort.id_column)",
                column=schema.id_column,
            )
            continue
        name = path.name
        matched[stem] = _check_columns(table.columns, stem, name, schema, problems)
        for column, _ in matched[stem]:
            if column in seen_features and column not in CORE_COLUMNS[stem]:
                problems.add(
                    name,
                    "column name also used in another file",
                    f"rename it; {seen_features[column]} has a {column!r} column too",
                    column=column,
                )
            seen_features.setdefault(column, name)
        scan = _scan_table(table, stem, schema, matched[stem], problems, keep=keep)
        if scan is None:
            continue
        paths[stem], scans[stem] = path, scan
        if keep:
            ids[stem], typed[stem] = scan.kept_ids, scan.kept_typed

    for stem, scan in scans.items():
        for row, pid in scan.duplicates():
            problems.add(
                paths[stem].name,
                P_DUPLICATE_ID,
                "keep one row per patient (ids are compared upper-case)",
                row=row,
                column=schema.id_column,
                value=pid,
            )

    patient_ids = _strings([])
    if "patients" in scans:
        patient_ids = np.unique(scans["patients"].ids)
        patients_scan = scans["patients"]
        for stem in ("outcomes", "genomics"):
            if stem not in scans:
                continue
            name = paths[stem].name
            other = scans[stem]
            unknown = ~_isin(other.ids, patient_ids)
            for row, pid in zip(other.rows[unknown], other.ids[unknown], strict=True):
                problems.add(
                    name,
                    P_NOT_IN_PATIENTS,
                    "add the patient to the patients file or delete this row",
                    row=int(row),
                    column=schema.id_column,
                    value=str(pid),
                )
            absent = ~_isin(patients_scan.ids, other.ids)
            for row, pid in zip(patients_scan.rows[absent], patients_scan.ids[absent], strict=True):
                if stem == "outcomes":
                    problems.add(
                        paths["patients"].name,
                        P_NO_OUTCOME,
                        "add the patient's outcome row (label is required)",
                        row=int(row),
                        column=schema.id_column,
                        value=str(pid),
                    )
                else:
                    problems.add(
                        paths["patients"].name,
                        P_NO_GENOMICS,
                        "add a genomics row if the data exist; otherwise nothing to do",
                        row=int(row),
                        column=schema.id_column,
                        value=str(pid),
                        severity="warning",
                    )

    # Images: read (and preprocess) every scan once.
    entries = _image_entries(directory, schema, problems)
    by_patient: dict[str, list[_ImageEntry]] = {}
    for entry in entries:
        by_patient.setdefault(entry.patient_id, []).append(entry)
    image_rows: dict[str, dict[str, Any]] = {}
    image_hashes: dict[str, str] = {}
    written: list[Path] = []
    will_write = artifacts_dir is not None

    def stored_id(pid: str) -> str:
        return _hash_id(pid, id_salt) if schema.hash_ids and id_salt else pid

    stored_scans: Mapping[str, str] = {}
    if store is not None and will_write:
        stored_scans = store.import_hashes("image", [stored_id(pid) for pid in by_patient])
    image_ids = _strings(list(by_patient))
    with_patient = set(image_ids[_isin(image_ids, patient_ids)].tolist())
    bar = tqdm(total=len(entries), desc="images", unit="image", leave=False, disable=not progress)
    for pid, group in by_patient.items():
        if len(group) > 1:
            for entry in group:
                problems.add(
                    entry.label,
                    P_TWO_IMAGES,
                    "the model uses one scan per patient: keep one, or list one in images.csv",
                    value=pid,
                )
            bar.update(len(group))
            continue
        entry = group[0]
        bar.update(1)
        if len(patient_ids) and pid not in with_patient:
            problems.add(
                entry.label,
                P_IMAGE_NO_PATIENT,
                "add the patient to the patients file, or remove the image",
                value=pid,
                severity="warning",
            )
            continue
        if reader is None:
            continue
        spec = ScanSpec(**{**asdict(schema.scans), "modality": entry.modality})
        source_sha = _file_sha(entry.path)
        part_hash = hashlib.sha256(f"{source_sha}|{spec.key()}".encode()).hexdigest()
        rel = f"scans/imported/{part_hash}.npy"
        kept = None if artifacts_dir is None else artifacts_dir / rel
        if kept is not None and stored_scans.get(stored_id(pid)) == part_hash and kept.is_file():
            # Same bytes and settings as the scan stored for this patient: reuse its result.
            data = kept.read_bytes()
            array = np.load(io.BytesIO(data), allow_pickle=False)
            image_hashes[pid] = part_hash
        else:
            try:
                array = reader(entry.path, spec)
            except ScanReadError as err:
                problems.add(
                    entry.label,
                    str(err),
                    "replace the file with a readable 2D or 3D scan, or remove it",
                    value=entry.path.name,
                )
                continue
            image_hashes[pid] = part_hash
            data = _npy_bytes(np.ascontiguousarray(array, dtype=np.float32))
        if will_write and artifacts_dir is not None:
            target = artifacts_dir / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".partial")
                tmp.write_bytes(data)
                tmp.replace(target)  # a scan file appears whole or not at all
                written.append(target)
        image_rows[pid] = {
            "patient_id": pid,
            "path": rel,
            "sha256": hashlib.sha256(data).hexdigest(),
            "height": int(array.shape[0]),
            "width": int(array.shape[1]),
        }
    bar.close()
    if (entries or (directory / "images").is_dir()) and "patients" in scans:
        patients_scan = scans["patients"]
        absent = ~_isin(patients_scan.ids, image_ids)
        for row, pid in zip(patients_scan.rows[absent], patients_scan.ids[absent], strict=True):
            problems.add(
                paths["patients"].name,
                P_PATIENT_NO_IMAGE,
                "add images/<patient_id>.<ext> if a scan exists; otherwise nothing to do",
                row=int(row),
                column=schema.id_column,
                value=str(pid),
                severity="warning",
            )

    report = ValidationReport(
        problems.frame(), n_patients=len(patient_ids), n_images=len(image_rows)
    )
    if not report.ok or not keep or "patients" not in typed or "outcomes" not in typed:
        return _Prepared(report, None, tuple(written))
    tables = _build_tables(
        schema,
        paths,
        ids,
        typed,
        matched,
        image_rows,
        image_hashes,
        directory,
        id_salt,
    )
    return _Prepared(report, tables, tuple(written))


def _build_tables(
    schema: ImportSchema,
    paths: Mapping[str, Path],
    ids: Mapping[str, pd.Series],
    typed: Mapping[str, pd.DataFrame],
    matched: Mapping[str, Sequence[tuple[str, ColumnSpec]]],
    image_rows: Mapping[str, Mapping[str, Any]],
    image_hashes: Mapping[str, str],
    directory: Path,
    id_salt: str | None,
) -> ImportTables:
    """Store-shaped frames and per-part hashes of a cohort that passed validation."""

    def stored_id(pid: str) -> str:
        return _hash_id(pid, id_salt) if schema.hash_ids and id_salt else pid

    pat = typed["patients"]
    pids = ids["patients"].astype(str)
    store_ids = pids.map(stored_id)
    split = (
        pat["split"]
        if "split" in pat.columns and pat["split"].notna().all()
        else pd.Series([stable_split(p) for p in store_ids], index=pat.index)
    )

    def text(column: str) -> pd.Series:
        if column in pat.columns:
            return pat[column].where(pat[column].notna(), NOT_RECORDED).astype(str)
        return pd.Series(NOT_RECORDED, index=pat.index)

    patients = pd.DataFrame(
        {
            "patient_id": store_ids,
            "split": split.astype(str),
            "age": pat["age"].astype(np.float64),
            "sex": pat["sex"].astype(str),
            "ethnicity": text("ethnicity"),
            "site": text("site"),
        }
    )
    ehr = _encode(pat, matched["patients"], "patients")
    ehr.insert(0, "patient_id", store_ids)

    out = typed["outcomes"]
    out_ids = ids["outcomes"].astype(str).map(stored_id)
    outcomes = pd.DataFrame(
        {
            "patient_id": out_ids,
            "treatment": (
                out["treatment"].where(out["treatment"].notna(), NOT_RECORDED).astype(str)
                if "treatment" in out.columns
                else NOT_RECORDED
            ),
            "label": out["label"].astype("Int64"),
            "event_time": out["event_time"] if "event_time" in out.columns else np.nan,
            "event": out["event"].astype("Int64") if "event" in out.columns else pd.NA,
        }
    )
    if "genomics" in typed:
        genomics = _encode(typed["genomics"], matched["genomics"], "genomics")
        genomics.insert(0, "patient_id", ids["genomics"].astype(str).map(stored_id))
    else:
        genomics = pd.DataFrame({"patient_id": pd.Series([], dtype=str)})

    site_of = dict(zip(patients["patient_id"], patients["site"], strict=True))
    images = pd.DataFrame(
        [
            {
                **row,
                "patient_id": stored_id(pid),
                "site": site_of[stored_id(pid)],
                "mask_path": None,
            }
            for pid, row in image_rows.items()
        ],
        columns=["patient_id", "path", "sha256", "height", "width", "site", "mask_path"],
    )
    features = pd.DataFrame(
        [
            {
                **asdict(DEMOGRAPHIC_INPUTS["age"]),
                "low": schema.spec_for("patients", "age").low,  # type: ignore[union-attr]
                "high": schema.spec_for("patients", "age").high,  # type: ignore[union-attr]
            },
            asdict(DEMOGRAPHIC_INPUTS["sex_male"]),
            *_feature_rows("patients", matched["patients"]),
            *_feature_rows("genomics", matched.get("genomics", [])),
        ]
    )

    # Per-part content hashes, on the stored (typed, encoded) values.
    hashes: list[dict[str, str]] = []
    patient_part = patients.merge(ehr, on="patient_id", how="left")
    by_outcome = {str(r["patient_id"]): r for r in outcomes.to_dict("records")}
    by_genomics = {str(r["patient_id"]): r for r in genomics.to_dict("records")}
    original = dict(zip(store_ids, pids, strict=True))
    for record in patient_part.to_dict("records"):
        pid = str(record["patient_id"])
        parts = {
            "patient": _row_hash(record),
            "outcome": _row_hash(by_outcome[pid]),
            "genomics": _row_hash(by_genomics.get(pid, {"none": True})),
            "image": image_hashes.get(original[pid], _row_hash({"none": True})),
        }
        hashes.extend({"patient_id": pid, "part": p, "sha256": parts[p]} for p in IMPORT_PARTS)
    files = {str(path.relative_to(directory)): _file_sha(path) for path in paths.values()}
    return ImportTables(
        source=schema.source,
        patients=patients.reset_index(drop=True),
        outcomes=outcomes.reset_index(drop=True),
        ehr=ehr.reset_index(drop=True),
        genomics=genomics.reset_index(drop=True),
        features=features,
        images=images,
        hashes=pd.DataFrame(hashes, columns=["patient_id", "part", "sha256"]),
        files=files,
    )


def _schema_or_report(directory: Path, schema: ImportSchema | Path | None) -> ImportSchema:
    if isinstance(schema, ImportSchema):
        return schema
    return load_schema(schema if schema is not None else directory / "schema.toml")


def validate_cohort(
    directory: Path,
    schema: ImportSchema | Path | None = None,
    *,
    reader: ScanReader | None = None,
    id_salt: str | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Check a cohort folder in one pass and return every problem; writes nothing.

    Parameters
    ----------
    directory : Path
        The cohort folder (``patients``, ``outcomes``, optional ``genomics`` and ``images/``).
    schema : ImportSchema or Path or None, default=None
        The schema, a schema file, or None for ``<directory>/schema.toml``.
    reader : ScanReader or None, default=None
        Reads scans (``models.scans.read_scan``); None skips reading them (file names and
        patient links are still checked).
    id_salt : str or None, default=None
        Salt of the patient-id hashes (a schema with ``hash_ids = true`` needs one).
    progress : bool, default=False
        Show a progress bar over the images.

    Returns
    -------
    ValidationReport
        The problem table (empty when the cohort is clean).

    Raises
    ------
    CohortValidationError
        If the schema file itself is missing or invalid.
    """
    parsed = _schema_or_report(directory, schema)
    return _prepare(
        directory, parsed, reader, artifacts_dir=None, id_salt=id_salt, progress=progress
    ).report


def import_cohort(
    directory: Path,
    store: CohortStore,
    *,
    artifacts_dir: Path,
    reader: ScanReader,
    schema: ImportSchema | Path | None = None,
    id_salt: str | None = None,
    dry_run: bool = False,
    progress: bool = False,
    audit: AuditEntry | None = None,
) -> ImportResult:
    """Validate a cohort folder, then write it to the store in one transaction.

    Parameters
    ----------
    directory : Path
        The cohort folder.
    store : CohortStore
        Target store (schema created if needed).
    artifacts_dir : Path
        Where preprocessed scans are written (``scans/imported/<hash>.npy``, content-addressed).
    reader : ScanReader
        Reads and preprocesses scans (``models.scans.read_scan``).
    schema : ImportSchema or Path or None, default=None
        The schema, a schema file, or None for ``<directory>/schema.toml``.
    id_salt : str or None, default=None
        Salt of the patient-id hashes (required when the schema sets ``hash_ids = true``).
    dry_run : bool, default=False
        Validate (reading every scan) but write nothing.
    progress : bool, default=False
        Show a progress bar over the images.
    audit : AuditEntry or None, default=None
        Written to the audit trail in the import's transaction (see
        :meth:`CohortStore.import_cohort`).

    Returns
    -------
    ImportResult
        The report (warnings) and what changed (None for a dry run).

    Raises
    ------
    CohortValidationError
        If the cohort has any error; its ``report`` lists all of them and nothing is written.
    CohortError
        If the store holds another cohort; nothing is written.
    """
    parsed = _schema_or_report(directory, schema)
    if not dry_run:
        store.create_schema()  # empty tables only: no cohort data is written before validation
    prepared = _prepare(
        directory,
        parsed,
        reader,
        artifacts_dir=None if dry_run else artifacts_dir,
        id_salt=id_salt,
        progress=progress,
        store=None if dry_run else store,
    )
    try:
        if not prepared.report.ok:
            raise CohortValidationError(prepared.report)
        if dry_run:
            return ImportResult(prepared.report, None)
        if prepared.tables is None:
            raise CohortValidationError(prepared.report)
        counts = store.import_cohort(prepared.tables, audit=audit)
    except BaseException:
        _remove(prepared.written)  # scans this call wrote and no stored row references
        raise
    return ImportResult(prepared.report, counts)


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
