"""Progress of the newest background job (import, train, score), polled while it runs."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fusion.admin.jobs import JobStatus, latest_job, read_job

__all__ = ["POLL_SECONDS", "render_job_progress"]

POLL_SECONDS = 2.0


def _render(job: JobStatus) -> None:
    if job.state == "running":
        st.progress(job.fraction, text=job.text)
        st.caption(
            f"Job `{job.job_id}` started {job.started_at} UTC. It keeps running if you leave "
            "this page or close the tab; come back to see how it went."
        )
    elif job.state == "done":
        st.success(f"The {job.kind} job finished: {job.detail or 'done'}.")
        st.caption(f"Job `{job.job_id}`, started {job.started_at} UTC.")
    else:
        st.error(f"The {job.kind} job failed: {job.detail}")
        if job.log_tail:
            st.caption(f"Last lines of its log ({job.folder / 'log.txt'}):")
            st.code("\n".join(job.log_tail), language=None)


def render_job_progress(artifacts_dir: Path, *, key: str) -> JobStatus | None:
    """Show the newest job of the store; while it runs, poll it every ``POLL_SECONDS``.

    Only this section reruns while polling. When the job ends, the whole page reruns once, so
    its buttons and the store summary catch up.

    Returns
    -------
    JobStatus or None
        The job as first read on this run, or None if no job has run on this store.
    """
    job = latest_job(artifacts_dir)
    if job is None:
        st.caption("No import, training or scoring job has run on this store yet.")
        return None
    was_running = job.state == "running"

    @st.fragment(run_every=POLL_SECONDS if was_running else None, key=key)
    def _poll() -> None:
        current = read_job(job.folder)
        _render(current)
        if was_running and current.state != "running":
            st.rerun(scope="app")

    _poll()
    return job
