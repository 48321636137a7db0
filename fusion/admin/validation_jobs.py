"""Validation of a cohort folder as a background job, and reading its report back.

A validation job is ``riskfusion import DIR --dry-run`` run by :func:`fusion.admin.jobs.start_job`;
it writes the problem table and the counts into its job folder. Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data.cohort_import.problems import PROBLEM_COLUMNS
from data.errors import ValidationReport
from fusion.admin.jobs import (
    VALIDATION_REPORT,
    VALIDATION_SUMMARY,
    JobHandle,
    json_int,
    start_job,
)

__all__ = ["read_validation", "start_validation"]


def start_validation(
    folder: Path,
    artifacts_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    database_url: str | None = None,
) -> JobHandle:
    """Validate a cohort folder in a background job (``riskfusion import DIR --dry-run``).

    The job writes the problem table (:data:`VALIDATION_REPORT`) and the counts
    (:data:`VALIDATION_SUMMARY`) into its folder; :func:`read_validation` reads them back. It
    holds the one-job lock like any job, so a validation never runs beside an import, a
    training or another validation (the dashboard process never holds a cohort's tables).

    Parameters
    ----------
    folder : Path
        The cohort folder.
    artifacts_dir : Path
        The store's runtime directory.
    extra_args : sequence of str, default=()
        More arguments (``--actor``, ``--role``).
    database_url : str or None, default=None
        As in :func:`start_job`.

    Returns
    -------
    JobHandle
        The started job.

    Raises
    ------
    JobBusyError
        If another job is running.
    """
    args = [
        str(Path(folder).resolve()),
        "--report",
        VALIDATION_REPORT,
        "--summary",
        VALIDATION_SUMMARY,
        *extra_args,
    ]
    return start_job("validate", args, artifacts_dir, database_url=database_url)


def read_validation(job_dir: Path) -> ValidationReport | None:
    """The report a finished validation job wrote, or None if it wrote none (yet).

    Parameters
    ----------
    job_dir : Path
        ``<artifacts>/jobs/<job id>`` of a ``validate`` job.

    Returns
    -------
    ValidationReport or None
        The problem table and counts; None while the job runs or when it stopped before
        writing them (its status then says why).
    """
    job_dir = Path(job_dir)
    try:
        counts = json.loads((job_dir / VALIDATION_SUMMARY).read_text(encoding="utf-8"))
        problems = pd.read_csv(job_dir / VALIDATION_REPORT, dtype=str, keep_default_na=False)
    except (OSError, json.JSONDecodeError):
        return None
    problems = problems.reindex(columns=list(PROBLEM_COLUMNS), fill_value="")
    problems["row"] = pd.to_numeric(problems["row"].replace("", None)).astype("Int64")
    return ValidationReport(
        problems,
        n_patients=json_int(counts.get("patients")),
        n_images=json_int(counts.get("scans")),
    )
