"""The ``riskfusion import`` use case: validate a cohort folder and write it to the store.

Owns the wiring of :func:`data.ingest.import_cohort` to the configured store, the artifacts
directory and the MONAI scan reader (:func:`models.scans.read_scan`), and how the problem table
is reported (log lines, optional CSV). Must not import streamlit.
"""

from __future__ import annotations

import getpass
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from data._example_cohort import write_example_cohort
from data.errors import CohortValidationError
from data.ingest import ImportResult, ValidationReport, import_cohort
from data.store import AuditEntry, CohortStore, make_engine
from fusion.exports import write_safe_csv
from fusion.settings import Settings
from models.scans import read_scan

__all__ = ["bench_import", "run_import"]

logger = logging.getLogger(__name__)


def _write_report(report: ValidationReport, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safe_csv(report.problems, path)
    logger.info("wrote %d problem rows to %s", len(report.problems), path)


def run_import(
    settings: Settings,
    directory: Path,
    *,
    schema: Path | None = None,
    dry_run: bool = False,
    report_path: Path | None = None,
    id_salt_file: Path | None = None,
    progress: bool = True,
    audit: AuditEntry | None = None,
) -> int:
    """Validate and import a cohort folder; returns the command's exit status.

    Parameters
    ----------
    settings : Settings
        Store URL and artifacts directory.
    directory : Path
        The cohort folder (``docs/import.md``).
    schema : Path or None, default=None
        Schema file (default ``<directory>/schema.toml``).
    dry_run : bool, default=False
        Validate everything (scans included) and write nothing.
    report_path : Path or None, default=None
        Also write the whole problem table to this CSV file.
    id_salt_file : Path or None, default=None
        File holding the salt of the patient-id hashes (schemas with ``hash_ids = true``).
    progress : bool, default=True
        Show a progress bar over the scans.
    audit : AuditEntry or None, default=None
        The ``import`` audit event written in the import's transaction (default: the OS user
        as ``cli:<user>``, role admin).

    Returns
    -------
    int
        0 when the cohort is clean or has warnings only, 2 when it has problems (nothing is
        written then).
    """
    if not directory.is_dir():
        raise ValueError(f"Cohort folder {directory} does not exist; pass the folder to import.")
    salt = None
    if id_salt_file is not None:
        salt = id_salt_file.read_text(encoding="utf-8").strip()
        if not salt:
            raise ValueError(f"The salt file {id_salt_file} is empty; put a secret string in it.")
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    store = CohortStore(make_engine(settings.database_url))
    try:
        result: ImportResult = import_cohort(
            directory,
            store,
            artifacts_dir=settings.artifacts_dir,
            reader=read_scan,
            schema=schema,
            id_salt=salt,
            dry_run=dry_run,
            progress=progress,
            audit=audit
            or AuditEntry(
                actor=f"cli:{getpass.getuser()}",
                role="admin",
                action="import",
                detail={"command": "import"},
            ),
        )
    except CohortValidationError as err:
        logger.error("%s\n%s", err, err.report.to_text())
        _write_report(err.report, report_path)
        return 2
    finally:
        store.engine.dispose()
    report = result.report
    if not report.problems.empty:
        logger.warning("%d warning(s):\n%s", len(report.problems), report.to_text())
    _write_report(report, report_path)
    if result.counts is None:
        logger.info(
            "dry run: %d patients and %d scans are valid; nothing was written",
            report.n_patients,
            report.n_images,
        )
    else:
        counts = result.counts
        logger.info(
            "imported %s: %d patients added, %d updated, %d unchanged (scans rewritten: %d)",
            directory,
            counts.added,
            counts.updated,
            counts.unchanged,
            counts.parts.get("image", 0),
        )
    return 0


def bench_import(n_patients: int = 10_000, *, image_size: int = 128) -> dict[str, Any]:
    """Time ``import_cohort`` on a generated cohort folder with one scan per patient.

    The folder is the example cohort's format at ``n_patients`` (2D PNG and ``.npy`` scans,
    two NIfTI volumes, one DICOM series); the store is a fresh SQLite file in a temporary
    directory. Measures the first import and an unchanged re-import.

    Parameters
    ----------
    n_patients : int, default=10_000
        Cohort size.
    image_size : int, default=128
        Scan side (the network input size).

    Returns
    -------
    dict
        ``patients``, ``scans``, ``seconds``, ``patients_per_s``, ``reimport_seconds`` and
        ``reimport_patients_per_s``.
    """
    with tempfile.TemporaryDirectory(prefix="riskfusion-import-bench-") as tmp:
        home = Path(tmp)
        folder = home / "cohort"
        write_example_cohort(folder, n_patients=n_patients, image_size=image_size)
        store = CohortStore(make_engine(f"sqlite:///{home / 'bench.db'}"))
        store.create_schema()
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            result = import_cohort(
                folder, store, artifacts_dir=home / "artifacts", reader=read_scan, progress=True
            )
            timings.append(time.perf_counter() - start)
        store.engine.dispose()
    return {
        "command": f"riskfusion bench (import of {n_patients} generated patients)",
        "patients": n_patients,
        "scans": result.report.n_images,
        "seconds": round(timings[0], 1),
        "patients_per_s": round(n_patients / timings[0], 1),
        "reimport_seconds": round(timings[1], 1),
        "reimport_patients_per_s": round(n_patients / timings[1], 1),
    }
