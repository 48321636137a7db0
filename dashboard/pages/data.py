"""Data (admins): bring your own cohort: validate, import, train and score, with progress.

Works on an empty store (no model yet). Long steps run as background jobs (``fusion.admin.jobs``):
they survive reruns and closed tabs, one at a time. Every action goes on the audit trail.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.components.job_progress import render_job_progress
from dashboard.components.signin import require_page_area
from dashboard.resources import get_risk_service, get_settings
from dashboard.state import (
    CohortCheck,
    get_cohort_check,
    set_cohort_check,
)
from data.errors import CohortError
from fusion.admin.jobs import (
    JOBS_DIR,
    JobBusyError,
    JobKind,
    list_jobs,
    read_job,
    running_job,
    start_job,
)
from fusion.admin.store_status import record_data_event, store_summary
from fusion.admin.uploads import (
    EXAMPLE_COHORT,
    UploadError,
    check_cohort_folder,
    extract_zip,
    remove_upload,
)
from fusion.admin.validation_jobs import read_validation, start_validation
from fusion.reports.exports import safe_csv

SOURCES = ("Upload a zip", "Folder on the server", "Shipped example")
NOT_FOR_CLINICAL_USE = (
    "**Not for clinical use.** riskfusion is a research tool: models trained on imported data "
    "here have not been validated for care decisions, and their risks must not guide "
    "treatment."
)

st.title("Data")
identity = require_page_area("admin")
settings = get_settings()
service = None
with suppress(CohortError):  # an empty store has no model yet: import is still offered
    service = get_risk_service()
summary = store_summary(settings)


def audit(action: str, detail: dict[str, object]) -> None:
    """Write a Data-page action to the audit trail (also before any model exists)."""
    detail = {"page": "data", **detail}
    if service is not None:
        service.record_event(identity, action, detail=detail)
    else:
        record_data_event(
            settings,
            actor=identity.user,
            role=identity.role,
            action=action,
            detail=detail,
        )


def start(kind: JobKind, args: list[str], detail: dict[str, object]) -> None:
    """Start a background job, audit it, and show the progress section from the top."""
    try:
        handle = start_job(
            kind,
            [*args, "--actor", identity.user, "--role", identity.role],
            settings.artifacts_dir,
            database_url=None if settings.uses_default_sqlite else settings.database_url,
        )
    except JobBusyError as err:
        st.error(str(err))
        return
    audit(kind, {"step": "start", "job_id": handle.job_id, **detail})
    st.rerun()


st.warning(NOT_FOR_CLINICAL_USE)

# ------------------------------------------------------------------------------ the store
st.subheader("Store")
cols = st.columns([1, 3, 1.4])  # the version name is long: give it room
cols[0].metric("Patients", f"{summary.n_patients:,}")
cols[1].metric("Active model", summary.active_version or "none yet")
if summary.training_data:
    trained = summary.training_data
    batches = trained.get("import_batches") or []
    cols[2].metric("Trained on", f"{trained.get('n_patients', '?')} patients")
    sources = ", ".join(f"`{source}`" for source in trained.get("sources", [])) or "?"
    imports = f" ({len(batches)} import(s), the last `{batches[-1]}`)" if batches else ""
    st.caption(
        f"Version `{summary.active_version}` was trained on {sources}{imports}; data "
        f"fingerprint `{str(trained.get('fingerprint', ''))[:16]}` (SHA-256 of the input table "
        "and scans: the same fingerprint means the same training data)."
    )
elif summary.active_version is not None:
    st.caption(
        "The active model's registry entry does not record its training data (it was built "
        "before imports were tracked, e.g. by `riskfusion demo`)."
    )
else:
    st.caption("No model yet: import a cohort, then train one below.")

busy = running_job(settings.artifacts_dir) is not None

# ------------------------------------------------------------------------------ 1. source
st.subheader("1. Choose a cohort")
st.caption(
    "A cohort folder holds patients, outcomes, optional genomics, images/ and schema.toml "
    "(docs/import.md). Validation runs as a background job: it reads every table and scan "
    "and writes nothing."
)
source = st.radio("Source", SOURCES, horizontal=True, key="data.source")
uploaded = None
typed = ""
if source == SOURCES[0]:
    uploaded = st.file_uploader(
        "Cohort folder as a .zip",
        type=["zip"],
        key="data.upload",
        help="Up to the server's upload limit (server.maxUploadSize, 200 MB by default); for "
        "larger cohorts copy the folder to the server and choose 'Folder on the server'.",
    )
elif source == SOURCES[1]:
    typed = st.text_input(
        "Cohort folder on the server",
        key="data.folder",
        placeholder="/srv/cohorts/my_cohort",
        help="An absolute path on the machine that runs riskfusion.",
    )
else:
    st.caption(f"The synthetic example shipped with riskfusion: `{EXAMPLE_COHORT}`.")
validate = st.button(
    "Validate",
    type="primary",
    key="data.validate",
    disabled=(source == SOURCES[0] and uploaded is None) or busy,
    help="Another job is running." if busy else None,
)


def discard_previous_upload() -> None:
    """Remove this session's previous extracted upload unless a job is reading it."""
    previous = get_cohort_check()
    if previous is None or previous.upload_root is None:
        return
    running = running_job(settings.artifacts_dir)
    if running is not None and any(previous.upload_root in arg for arg in running.args):
        return
    remove_upload(Path(previous.upload_root), settings.artifacts_dir)


if validate:
    upload_root: Path | None = None
    try:
        if uploaded is not None and source == SOURCES[0]:
            discard_previous_upload()
            with st.spinner(f"Unpacking {uploaded.name} ..."):
                extracted = extract_zip(uploaded, settings.artifacts_dir)
            folder, upload_root, label = extracted.cohort, extracted.root, uploaded.name
            if extracted.skipped:
                st.info(f"Left out {len(extracted.skipped)} archiver file(s) (__MACOSX, ._*).")
        elif source == SOURCES[1]:
            folder = check_cohort_folder(typed)
            label = str(folder)
        else:
            folder, label = EXAMPLE_COHORT, "the shipped example"
    except UploadError as err:
        st.error(str(err))
        audit("import", {"step": "validate", "source": source, "refused": str(err)[:200]})
    else:
        try:  # a background job: the dashboard process never holds the cohort's tables
            handle = start_validation(
                folder,
                settings.artifacts_dir,
                extra_args=["--actor", identity.user, "--role", identity.role],
                database_url=None if settings.uses_default_sqlite else settings.database_url,
            )
        except JobBusyError as err:
            st.error(str(err))
        else:
            set_cohort_check(
                CohortCheck(
                    source=label,
                    folder=str(folder),
                    upload_root=None if upload_root is None else str(upload_root),
                    report=None,
                    job_id=handle.job_id,
                )
            )
            st.rerun()

# ------------------------------------------------------------------------------ 2. validation
check = get_cohort_check()
if check is not None and check.report is None and check.job_id is not None:
    job_dir = settings.artifacts_dir / JOBS_DIR / check.job_id
    job = read_job(job_dir)
    finished = read_validation(job_dir) if job.state != "running" else None
    if finished is not None:
        check = replace(check, report=finished)
        set_cohort_check(check)
        audit(
            "import",
            {
                "step": "validate",
                "source": check.source,
                "job_id": check.job_id,
                "patients": finished.n_patients,
                "scans": finished.n_images,
                "errors": len(finished.errors),
                "warnings": len(finished.problems) - len(finished.errors),
            },
        )
    else:
        st.subheader("2. Validation")
        st.caption(f"Source: {check.source} (`{check.folder}`).")
        if job.state == "running":
            st.info(
                "Validating in the background: every table is read in chunks and every scan "
                "once; nothing is written. Progress is shown below; the table appears here "
                "when it finishes."
            )
        else:
            st.error(f"The validation stopped before it finished: {job.detail}")
if check is not None and check.report is not None:
    st.subheader("2. Validation")
    report = check.report
    n_errors = len(report.errors)
    n_warnings = len(report.problems) - n_errors
    st.caption(f"Source: {check.source} (`{check.folder}`).")
    cols = st.columns(4)
    cols[0].metric("Patients", f"{report.n_patients:,}")
    cols[1].metric("Scans read", f"{report.n_images:,}")
    cols[2].metric("Errors", f"{n_errors:,}")
    cols[3].metric("Warnings", f"{n_warnings:,}")
    if report.problems.empty:
        st.success("No problems found: the cohort can be imported.")
    elif n_errors:
        st.error(
            f"{n_errors:,} error(s): fix them in your files (each row says how) and validate "
            "again. Nothing can be imported until then; nothing was written."
        )
    else:
        st.warning(f"{n_warnings:,} warning(s) only: the import is allowed.")
    if not report.problems.empty:
        problems = report.problems.astype({"row": "string"}).fillna("")
        st.dataframe(problems, hide_index=True, width="stretch")

        def problems_csv() -> str:
            """Built only when clicked; the download goes on the audit trail."""
            audit("export", {"format": "csv", "what": "problem table"})
            return safe_csv(report.problems)

        st.download_button(
            "Download the problem table (CSV)",
            data=problems_csv,
            file_name="riskfusion-problems.csv",
            mime="text/csv",
            key="data.problems_csv",
            on_click="ignore",
        )
    import_help = "Fix the errors first." if n_errors else "Writes the cohort in one transaction."
    if st.button(
        "Import",
        type="primary",
        key="data.import",
        disabled=bool(n_errors) or busy,
        help="Another job is running." if busy else import_help,
    ):
        start("import", [check.folder], {"source": check.source})

# ------------------------------------------------------------------------------ 3. train, score
st.subheader("3. Train and score")
st.caption(
    "Train: imaging and fusion models on the store's cohort; the new version becomes active "
    "at the end. Score: risks of the patients the active version has not scored yet."
)
cols = st.columns(2)
if cols[0].button(
    "Train",
    key="data.train",
    disabled=busy or summary.n_patients == 0,
    help="Import a cohort first." if summary.n_patients == 0 else None,
):
    start("train", [], {})
if cols[1].button(
    "Score",
    key="data.score",
    disabled=busy or summary.active_version is None,
    help="Train a model first." if summary.active_version is None else None,
):
    start("score", [], {})

# ------------------------------------------------------------------------------ progress
st.subheader("Progress")
render_job_progress(settings.artifacts_dir, key="data.progress")
jobs = list_jobs(settings.artifacts_dir, limit=10)
if jobs:
    with st.expander("Recent jobs"):
        st.dataframe(
            pd.DataFrame(
                {
                    "job": [job.job_id for job in jobs],
                    "kind": [job.kind for job in jobs],
                    "state": [job.state for job in jobs],
                    "started (UTC)": [job.started_at for job in jobs],
                    "detail": [job.detail for job in jobs],
                }
            ),
            hide_index=True,
            width="stretch",
        )
