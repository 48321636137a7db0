"""The import schema: column roles, core columns and the schema file.

Owns :class:`ColumnSpec` and :class:`ImportSchema`, the columns with a fixed meaning
(:data:`CORE_COLUMNS`), the naming rules of ids and identifier-like columns, the parser of a
``schema.toml`` (:func:`load_schema`, :func:`read_schema`) and the pandera schema of the typed
columns (:func:`pandera_schema`). Imports :mod:`data.errors`, :mod:`data.scan_spec`,
:mod:`data.splits`, :mod:`data.vocabulary` and the sibling ``problems`` only.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

import pandera.pandas as pa

from data.cohort_import.problems import (
    P_MISSING_FILE,
    P_SCHEMA,
    ProblemLog,
)
from data.errors import CohortValidationError, ValidationReport
from data.scan_spec import ScanModality, ScanSpec, SliceStrategy
from data.splits import SPLITS
from data.vocabulary import SEXES, UNDECLARED_OUTCOME, OutcomeSpec

__all__ = [
    "ANY_VALUES",
    "CORE_COLUMNS",
    "FEATURE_ROLES",
    "IDENTIFIER_NAME",
    "ID_PATTERN",
    "REQUIRED_FILES",
    "ROLES",
    "TABLE_FILES",
    "UNIT_FACTOR",
    "ColumnSpec",
    "ImportSchema",
    "Role",
    "load_schema",
    "pandera_schema",
    "read_schema",
]

Role = Literal[
    "identifier", "sensitive", "numeric", "binary", "count", "categorical", "genotype", "drop"
]
ROLES: Final[tuple[str, ...]] = get_args(Role)
TABLE_FILES: Final[tuple[str, ...]] = ("patients", "outcomes", "genomics")
REQUIRED_FILES: Final[tuple[str, ...]] = ("patients", "outcomes")
UNIT_FACTOR: Final[float] = 1000.0
ID_PATTERN: Final[re.Pattern[str]] = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")

# Column names that look like direct identifiers: refused unless the schema names them exactly.
IDENTIFIER_NAME: Final[re.Pattern[str]] = re.compile(
    r"(^|_)(first_?name|last_?name|surname|given_?name|full_?name|patient_?name|name|"
    r"address|street|city|zip|zip_?code|post_?code|phone|telephone|mobile|fax|e_?mail|"
    r"mrn|medical_record(_number)?|nhs_?(number|no)|ssn|social_security(_number)?|"
    r"dob|date_of_birth|birth_?date|passport)($|_)"
)


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
    age_bands : tuple of float
        ``[audit] age_bands``: ages (years) where the bias audit's age bands start, e.g.
        ``(40, 60, 75)`` for ``<40, 40-59, 60-74, 75+``; empty for the default (50, 65, 75).
    outcome : OutcomeSpec
        What ``label = 1`` means (``[outcome]``: name, description, horizon only if the label
        is an event within a time window); stored with the cohort, used by every page and file.
    """

    name: str
    id_column: str = "patient_id"
    hash_ids: bool = False
    columns: tuple[ColumnSpec, ...] = ()
    scans: ScanSpec = field(default_factory=ScanSpec)
    manifest: str = ""
    age_bands: tuple[float, ...] = ()
    outcome: OutcomeSpec = UNDECLARED_OUTCOME

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


def _float_pair(value: object) -> tuple[float, float] | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return float(value[0]), float(value[1])
    return None


def _parse_schema(raw: Mapping[str, Any], problems: ProblemLog, file: str) -> ImportSchema:
    """Turn TOML data into an :class:`ImportSchema`, recording every invalid entry."""

    def bad(key: str, value: object, fix: str) -> None:
        problems.add(file, P_SCHEMA, fix, column=key, value=value)

    known_sections = {"cohort", "images", "columns", "audit", "outcome"}
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

    age_bands = _age_bands(raw.get("audit", {}), bad)

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
        age_bands=age_bands,
        outcome=_parse_outcome(raw.get("outcome"), bad),
    )


def _parse_outcome(entry: object, bad: Callable[[str, object, str], None]) -> OutcomeSpec:
    """The ``[outcome]`` section: name, description, horizon_years (only for timed events)."""
    if entry is None:
        return UNDECLARED_OUTCOME
    if not isinstance(entry, dict):
        bad("outcome", entry, 'write a table: [outcome] with name = "..."')
        return UNDECLARED_OUTCOME
    allowed = {"name", "description", "horizon_years"}
    for extra in sorted(set(entry) - allowed):
        bad(f"outcome.{extra}", entry[extra], f"unknown key; allowed: {sorted(allowed)}")
    name = entry.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
        bad("outcome.name", name, 'name the outcome in 1-64 characters, e.g. "Current diagnosis"')
        name = UNDECLARED_OUTCOME.name
    description = entry.get("description", "")
    if not isinstance(description, str) or len(description) > 300:
        bad("outcome.description", description, "give one sentence (at most 300 characters)")
        description = ""
    horizon = entry.get("horizon_years")
    if horizon is not None and (
        not isinstance(horizon, int | float) or isinstance(horizon, bool) or not 0 < horizon <= 100
    ):
        bad(
            "outcome.horizon_years",
            horizon,
            "give the years of the time window (0-100), or leave it out for a cross-sectional "
            "outcome",
        )
        horizon = None
    return OutcomeSpec(
        name.strip(), description.strip(), None if horizon is None else float(horizon)
    )


def _age_bands(audit: object, bad: Any) -> tuple[float, ...]:
    """``[audit] age_bands``: 1-8 increasing ages in (0, 120), or () when absent or invalid."""
    if not isinstance(audit, dict):
        bad("audit", audit, "write a table: [audit] with age_bands = [40, 60, 75]")
        return ()
    for extra in sorted(set(audit) - {"age_bands"}):
        bad(f"audit.{extra}", audit[extra], "unknown key; allowed: ['age_bands']")
    cuts = audit.get("age_bands", [])
    if (
        not isinstance(cuts, list)
        or len(cuts) > 8
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in cuts)
        or not all(0 < v < 120 for v in cuts)
        or any(b <= a for a, b in itertools.pairwise(cuts))
    ):
        bad(
            "audit.age_bands",
            cuts,
            "give 1-8 increasing ages in years where a band starts, e.g. [40, 60, 75] "
            "(bands <40, 40-59, 60-74, 75+)",
        )
        return ()
    return tuple(float(v) for v in cuts)


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
    problems = ProblemLog()
    schema = read_schema(path, problems)
    if schema is None or problems.rows:
        raise CohortValidationError(ValidationReport(problems.frame()))
    return schema


def read_schema(path: Path, problems: ProblemLog) -> ImportSchema | None:
    """Parse a schema file, recording its problems; None when it is missing or not TOML."""
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


def pandera_schema(file: str, columns: Sequence[tuple[str, ColumnSpec]]) -> pa.DataFrameSchema:
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
