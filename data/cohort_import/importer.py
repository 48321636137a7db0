"""The one pass over a cohort folder and the transactional write.

Owns :func:`validate_cohort` (every problem of the folder, nothing written) and
:func:`import_cohort` (the same pass, then one transaction through
:meth:`data.store.CohortStore.import_cohort`; scans written by a failed import are removed).
Imports :mod:`data.errors`, :mod:`data.scan_spec`, :mod:`data.store` and the sibling modules.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data.artifacts import file_digest
from data.cohort_import.checks import (
    IdScan,
    as_strings,
    check_columns,
    isin,
    scan_table,
)
from data.cohort_import.images import (
    ImageEntry,
    image_entries,
    npy_bytes,
)
from data.cohort_import.problems import (
    P_DUPLICATE_ID,
    P_IMAGE_NO_PATIENT,
    P_MISSING_COLUMN,
    P_MISSING_FILE,
    P_NO_GENOMICS,
    P_NO_OUTCOME,
    P_NOT_IN_PATIENTS,
    P_PATIENT_NO_IMAGE,
    P_TWO_IMAGES,
    ProblemLog,
)
from data.cohort_import.reading import (
    TableReader,
    find_table,
)
from data.cohort_import.schema import (
    CORE_COLUMNS,
    REQUIRED_FILES,
    TABLE_FILES,
    ColumnSpec,
    ImportSchema,
    load_schema,
)
from data.cohort_import.tables import (
    build_tables,
    hash_id,
)
from data.errors import CohortValidationError, ScanReadError, ValidationReport
from data.scan_spec import ScanReader, ScanSpec
from data.store import AuditEntry, CohortStore, ImportCounts, ImportTables

__all__ = ["ImportResult", "import_cohort", "validate_cohort"]


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


@dataclass(frozen=True, slots=True)
class _Prepared:
    report: ValidationReport
    tables: ImportTables | None
    written: tuple[Path, ...]


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
    problems = ProblemLog()
    if schema.hash_ids and not id_salt:
        problems.add(
            "schema",
            "hash_ids = true needs a salt",
            "pass --id-salt-file FILE (keep the salt secret and the same for every import)",
            column="cohort.hash_ids",
        )
    keep = artifacts_dir is not None  # an import keeps the typed tables to write them
    paths: dict[str, Path] = {}
    scans: dict[str, IdScan] = {}
    ids: dict[str, pd.Series] = {}
    typed: dict[str, pd.DataFrame] = {}
    matched: dict[str, list[tuple[str, ColumnSpec]]] = {}
    seen_features: dict[str, str] = {}
    for stem in TABLE_FILES:
        path = find_table(directory, stem)
        if path is None:
            if stem in REQUIRED_FILES:
                problems.add(
                    f"{stem}.csv",
                    P_MISSING_FILE,
                    f"add {stem}.csv or {stem}.parquet to {directory}",
                )
            continue
        table = TableReader.open(path, problems)
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
        matched[stem] = check_columns(table.columns, stem, name, schema, problems)
        for column, _ in matched[stem]:
            if column in seen_features and column not in CORE_COLUMNS[stem]:
                problems.add(
                    name,
                    "column name also used in another file",
                    f"rename it; {seen_features[column]} has a {column!r} column too",
                    column=column,
                )
            seen_features.setdefault(column, name)
        scan = scan_table(table, stem, schema, matched[stem], problems, keep=keep)
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

    patient_ids = as_strings([])
    if "patients" in scans:
        patient_ids = np.unique(scans["patients"].ids)
        patients_scan = scans["patients"]
        for stem in ("outcomes", "genomics"):
            if stem not in scans:
                continue
            name = paths[stem].name
            other = scans[stem]
            unknown = ~isin(other.ids, patient_ids)
            for row, pid in zip(other.rows[unknown], other.ids[unknown], strict=True):
                problems.add(
                    name,
                    P_NOT_IN_PATIENTS,
                    "add the patient to the patients file or delete this row",
                    row=int(row),
                    column=schema.id_column,
                    value=str(pid),
                )
            absent = ~isin(patients_scan.ids, other.ids)
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
    entries = image_entries(directory, schema, problems)
    by_patient: dict[str, list[ImageEntry]] = {}
    for entry in entries:
        by_patient.setdefault(entry.patient_id, []).append(entry)
    image_rows: dict[str, dict[str, Any]] = {}
    image_hashes: dict[str, str] = {}
    written: list[Path] = []
    will_write = artifacts_dir is not None

    def stored_id(pid: str) -> str:
        return hash_id(pid, id_salt) if schema.hash_ids and id_salt else pid

    stored_scans: Mapping[str, str] = {}
    if store is not None and will_write:
        stored_scans = store.import_hashes("image", [stored_id(pid) for pid in by_patient])
    image_ids = as_strings(list(by_patient))
    with_patient = set(image_ids[isin(image_ids, patient_ids)].tolist())
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
        source_sha = file_digest(entry.path)
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
            data = npy_bytes(np.ascontiguousarray(array, dtype=np.float32))
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
        absent = ~isin(patients_scan.ids, image_ids)
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
    tables = build_tables(
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
