"""The ``riskfusion import`` use case: validate a cohort folder and write it to the store.

Owns the wiring of :func:`data.cohort_import.import_cohort` to the configured store, the artifacts
directory and the MONAI scan reader (:func:`models.scans.read_scan`), and how the problem table
is reported (log lines, optional CSV). Must not import streamlit.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from data.cohort_import import ImportResult, import_cohort
from data.errors import CohortValidationError, ValidationReport
from data.store import AuditEntry, CohortStore, make_engine
from data.synthetic.example_cohort import write_example_cohort
from fusion.reports.exports import write_safe_csv
from fusion.settings import Settings
from models.scans import read_scan

__all__ = [
    "bench_import",
    "bench_validation",
    "problem_summary",
    "run_import",
    "write_large_cohort",
]

logger = logging.getLogger(__name__)

# MONAI's image loaders log under their class names; at INFO they name the file that failed.
MONAI_LOADERS = ("LoadImage", "LoadImaged")


def _write_report(report: ValidationReport, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safe_csv(report.problems, path)
    logger.info("wrote %d problem rows to %s", len(report.problems), path)


def _write_summary(report: ValidationReport, path: Path | None) -> None:
    """The validation's counts as JSON (the Data page reads them), written atomically."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    n_errors = len(report.errors)
    summary = {
        "patients": report.n_patients,
        "scans": report.n_images,
        "errors": n_errors,
        "warnings": len(report.problems) - n_errors,
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary), encoding="utf-8")
    partial.replace(path)


def problem_summary(problems: pd.DataFrame, *, max_rows: int = 5) -> str:
    """The problem table as counts and positions, for logs: no ids, no values, no file names.

    One line per severity, file, column and problem, with the first ``max_rows`` spreadsheet
    rows. Scans are named by patient id, so every ``images/...`` file is shown as
    ``images/`` and a scan's problem only up to its first ``:`` or ``(``. The values and the
    fixes (which may quote a value) are left out: they are in ``--report FILE.csv``.

    Parameters
    ----------
    problems : DataFrame
        :attr:`data.errors.ValidationReport.problems`.
    max_rows : int, default=5
        Row numbers listed per line.

    Returns
    -------
    str
        The lines, or ``"no problems"``.
    """
    if problems.empty:
        return "no problems"
    frame = problems.loc[:, ["severity", "file", "column", "problem", "row"]].copy()
    frame["column"] = frame["column"].fillna("").astype(str)
    scan = frame["file"].astype(str).str.startswith("images/").to_numpy(dtype=bool)
    frame.loc[scan, "file"] = "images/"
    frame.loc[scan, "problem"] = [
        re.split(r"[:(]", str(text), maxsplit=1)[0].strip() for text in frame.loc[scan, "problem"]
    ]
    lines = []
    keys = ["severity", "file", "column", "problem"]
    for (severity, file, column, problem), group in frame.groupby(keys, sort=False):
        rows = [int(row) for row in group["row"].dropna()]
        shown = ", ".join(str(row) for row in rows[:max_rows])
        more = " ..." if len(rows) > max_rows else ""
        where = f" (rows {shown}{more})" if rows else ""
        place = f"{file}, column {column}" if column else str(file)
        lines.append(f"{severity}: {place}: {len(group)} x {problem}{where}")
    return "\n".join(lines)


def _show_table(report: ValidationReport) -> None:
    """On a terminal, the problem table with values goes to stdout (never to a log file)."""
    if not report.problems.empty and sys.stdout.isatty():
        sys.stdout.write(report.to_text() + "\n")


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
    summary_path: Path | None = None,
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
    summary_path : Path or None, default=None
        Also write the counts (``patients``, ``scans``, ``errors``, ``warnings``) as JSON.

    Logs carry counts and row numbers only (:func:`problem_summary`), never patient ids or
    values; on a terminal the whole table is also shown on stdout.

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
    for name in MONAI_LOADERS:  # they log each failed reader with the scan's path (its id)
        logging.getLogger(name).setLevel(logging.WARNING)
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
        failed = err.report
        logger.error(
            "the cohort has %d error(s) and %d warning(s); nothing was written%s:\n%s",
            len(failed.errors),
            len(failed.problems) - len(failed.errors),
            "" if report_path else " (write the table with values: --report FILE.csv)",
            problem_summary(failed.problems),
        )
        _show_table(failed)
        _write_report(failed, report_path)
        _write_summary(failed, summary_path)
        return 2
    finally:
        store.engine.dispose()
    report = result.report
    if not report.problems.empty:
        logger.warning("%d warning(s):\n%s", len(report.problems), problem_summary(report.problems))
        _show_table(report)
    _write_report(report, report_path)
    _write_summary(report, summary_path)
    if result.counts is None:
        logger.info(
            "dry run: %d patients and %d scans are valid; nothing was written",
            report.n_patients,
            report.n_images,
        )
    else:
        counts = result.counts
        logger.info(
            "imported %s: %d patients added, %d updated, %d unchanged; %d with a scan "
            "(image part rewritten for %d patients, scan or none)",
            directory,
            counts.added,
            counts.updated,
            counts.unchanged,
            report.n_images,
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


def write_large_cohort(folder: Path, megabytes: float) -> int:
    """Write a cohort folder whose ``patients.csv`` is about ``megabytes`` MB, streamed to disk.

    The shipped example's patient and outcome rows are repeated under new ids
    (``P000000001`` ...) in blocks of 50,000 rows, so memory stays small whatever the size;
    there is no ``images/`` folder and no genomics file. The result validates without a
    problem.

    Parameters
    ----------
    folder : Path
        Target folder (created).
    megabytes : float
        Approximate size of ``patients.csv`` in MB (10^6 bytes).

    Returns
    -------
    int
        Number of patients written.
    """
    from fusion.admin.uploads import EXAMPLE_COHORT

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE_COHORT / "schema.toml", folder / "schema.toml")
    rests: dict[str, list[str]] = {}
    headers: dict[str, str] = {}
    for stem in ("patients", "outcomes"):
        lines = (EXAMPLE_COHORT / f"{stem}.csv").read_text(encoding="utf-8").splitlines()
        headers[stem] = lines[0]
        rests[stem] = [line.split(",", 1)[1] for line in lines[1:]]  # the id is the first field
    target = megabytes * 1e6
    written = 0
    with (
        (folder / "patients.csv").open("w", encoding="utf-8", newline="") as patients,
        (folder / "outcomes.csv").open("w", encoding="utf-8", newline="") as outcomes,
    ):
        handles = {"patients": patients, "outcomes": outcomes}
        for stem, handle in handles.items():
            handle.write(headers[stem] + "\n")
        block = 50_000
        while patients.tell() < target:
            for stem, handle in handles.items():
                rest = rests[stem]
                handle.write(
                    "".join(
                        f"P{i:09d},{rest[i % len(rest)]}\n"
                        for i in range(written + 1, written + block + 1)
                    )
                )
            written += block
    return written


def _child_peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """Run a command; its exit status, wall seconds and peak resident memory (MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return process.returncode, seconds, usage.ru_maxrss / 1024  # Linux: kilobytes


def bench_validation(megabytes: float = 250.0) -> dict[str, Any]:
    """Peak memory and speed of ``riskfusion import --dry-run`` on a large generated CSV.

    Writes a cohort whose ``patients.csv`` is about ``megabytes`` MB
    (:func:`write_large_cohort`), then runs the dry run in a subprocess and reads its peak
    resident set size from the kernel (``wait4``), next to that of a process that only
    imports the same modules (the start-up cost).

    Parameters
    ----------
    megabytes : float, default=250.0
        Size of ``patients.csv``.

    Returns
    -------
    dict
        ``command``, ``patients``, ``patients_csv_mb``, ``seconds``, ``rows_per_s``,
        ``mb_per_s``, ``peak_rss_mb``, ``startup_rss_mb`` and ``validation_rss_mb`` (their
        difference: what validating the tables added).
    """
    with tempfile.TemporaryDirectory(prefix="riskfusion-validation-bench-") as tmp:
        home = Path(tmp)
        folder = home / "cohort"
        n_patients = write_large_cohort(folder, megabytes)
        size_mb = (folder / "patients.csv").stat().st_size / 1e6
        env = {**os.environ, "RISKFUSION_HOME": str(home / "home")}
        env.pop("RISKFUSION_DATABASE_URL", None)
        python = [sys.executable, "-c"]
        _, _, startup = _child_peak_rss_mb(
            [
                *python,
                "import fusion.cli, fusion.admin.cohort_import, models.scans, data.cohort_import",
            ],
            env,
        )
        command = [sys.executable, "-m", "fusion.cli", "import", str(folder), "--dry-run"]
        status, seconds, peak = _child_peak_rss_mb(command, env)
    if status != 0:
        raise RuntimeError(f"The validation bench's dry run exited with status {status}.")
    return {
        "command": f"riskfusion import DIR --dry-run (patients.csv of {size_mb:.0f} MB)",
        "patients": n_patients,
        "patients_csv_mb": round(size_mb, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(n_patients / seconds),
        "mb_per_s": round(size_mb / seconds, 2),
        "peak_rss_mb": round(peak),
        "startup_rss_mb": round(startup),
        "validation_rss_mb": round(peak - startup),
    }
