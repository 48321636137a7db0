"""Long ``riskfusion`` commands (validate, import, train, score) as background jobs.

Owns starting a command as a detached subprocess (its own session, so a page rerun, a closed
tab or a stopped Streamlit script does not kill it), the job folder
``<artifacts>/jobs/<job id>/`` (``job.json``, ``events.jsonl``, ``log.txt``), reading a job's
state from its events file and whether its process is alive (``psutil``: the pid and its start
time), and the one-job-at-a-time lock (``filelock``). Validation jobs are in
:mod:`fusion.admin.validation_jobs`, the store summary of the Data page in
:mod:`fusion.admin.store_status`. Must not import streamlit or the dashboard.

Events contract (written by ``riskfusion import|train|score --events FILE``): one JSON object a
line, ``{"stage", "index", "total", "state": "start"|"done"|"failed", "detail", "seconds",
"time"}``; the last line of a finished job has ``"stage": "job"`` and ``"state": "done"`` or
``"failed"`` with the summary or error in ``detail``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

import psutil
from filelock import FileLock

__all__ = [
    "JOBS_DIR",
    "JOB_KINDS",
    "VALIDATION_REPORT",
    "VALIDATION_SUMMARY",
    "JobBusyError",
    "JobHandle",
    "JobKind",
    "JobState",
    "JobStatus",
    "json_int",
    "latest_job",
    "list_jobs",
    "read_job",
    "running_job",
    "start_job",
]

logger = logging.getLogger(__name__)

JobKind = Literal["import", "train", "score", "validate"]
JobState = Literal["running", "done", "failed"]
JOB_KINDS: Final[tuple[str, ...]] = get_args(JobKind)
JOBS_DIR: Final[str] = "jobs"
LOCK_FILE: Final[str] = "lock"
"""JSON record of the job holding (or last holding) the one-job lock: id, kind, pid, start."""
GUARD_FILE: Final[str] = "lock.guard"
"""The file lock held while a job is chosen and started (a separate file: ``filelock`` owns it)."""
CREATE_TIME_TOLERANCE_S: Final[float] = 0.05
"""Process start times match within this (they come from the kernel's clock ticks)."""
JOB_FILE: Final[str] = "job.json"
EVENTS_FILE: Final[str] = "events.jsonl"
LOG_FILE: Final[str] = "log.txt"
LOG_TAIL_LINES: Final[int] = 30
# A validation job is ``riskfusion import DIR --dry-run``, writing these files into its folder.
VALIDATION_REPORT: Final[str] = "problems.csv"
VALIDATION_SUMMARY: Final[str] = "validation.json"
_SUBCOMMAND: Final[dict[str, tuple[str, ...]]] = {"validate": ("import", "--dry-run")}
_TAIL_BYTES: Final[int] = 64 * 1024

# Popen objects of the jobs this process started: polling them reaps the finished child (no
# zombie) and gives its exit code. Jobs of an earlier server process are checked with psutil.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class JobBusyError(RuntimeError):
    """Another import, train or score job is still running."""


@dataclass(frozen=True, slots=True)
class JobHandle:
    """A started job.

    Attributes
    ----------
    job_id : str
        ``<UTC time to the microsecond>-<kind>-<random>``; sorts by start time.
    kind : JobKind
        ``import``, ``train`` or ``score``.
    folder : Path
        ``<artifacts>/jobs/<job_id>``.
    pid : int
        The subprocess id.
    """

    job_id: str
    kind: JobKind
    folder: Path
    pid: int


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What a job is doing, read from its folder.

    Attributes
    ----------
    job_id, kind, folder : str, JobKind, Path
        As in :class:`JobHandle`.
    state : {"running", "done", "failed"}
        Running while the process lives; then ``done`` if it ended with a ``job done`` event
        and exit code 0 (or unknown), else ``failed``.
    stage : str
        The stage of the last event (``""`` before the first one).
    index, total : int
        Position of the current stage and number of stages, from the last stage event.
    detail : str
        The last event's detail; for a failed job, the error.
    started_at : str
        ISO-8601 UTC start time.
    args : tuple of str
        The command's arguments after the subcommand.
    exit_code : int or None
        Known when this process started the job, or from the last event.
    log_tail : tuple of str
        The last lines of the command's output.
    stages_done : int
        Stages finished (the current one counts once its ``done`` event arrives).
    """

    job_id: str
    kind: JobKind
    folder: Path
    state: JobState
    stage: str
    index: int
    total: int
    detail: str
    started_at: str
    args: tuple[str, ...] = ()
    exit_code: int | None = None
    log_tail: tuple[str, ...] = field(default=())
    stages_done: int = 0

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]: 1 when done, otherwise the share of stages finished."""
        if self.state == "done":
            return 1.0
        if self.total <= 0:
            return 0.0
        return min(max(self.stages_done / self.total, 0.0), 1.0)

    @property
    def text(self) -> str:
        """One line for a progress bar: ``train: imaging (3/30) - epoch 3``."""
        stage = self.stage or "starting"
        count = f" ({self.index}/{self.total})" if self.total > 0 else ""
        detail = f" - {self.detail}" if self.detail else ""
        return f"{self.kind}: {stage}{count}{detail}"


def _jobs_root(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / JOBS_DIR


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _create_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None if it is gone or a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # it has finished
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return None


def _alive(pid: int, created: float | None) -> bool:
    """Whether process ``pid`` is still the one started (its start time matches ``created``)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    with contextlib.suppress(ChildProcessError):  # reap it if it is our child after all
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        now = _create_time(pid)
    except psutil.AccessDenied:  # another user's process: its start time cannot be read
        return bool(psutil.pid_exists(pid))
    return now is not None and (created is None or abs(now - created) < CREATE_TIME_TOLERANCE_S)


@contextlib.contextmanager
def _locked(artifacts_dir: Path) -> Iterator[Path]:
    """Hold the jobs lock while choosing and starting a job; yields the holder record's path."""
    root = _jobs_root(artifacts_dir)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(root / GUARD_FILE):
        yield root / LOCK_FILE


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, json.JSONDecodeError):
        return None
    return content if isinstance(content, dict) else None


def start_job(
    kind: JobKind,
    args: Sequence[str],
    artifacts_dir: Path,
    *,
    database_url: str | None = None,
    command: Sequence[str] | None = None,
) -> JobHandle:
    """Start ``riskfusion <kind> *args --events FILE`` in the background; one job at a time.

    The process runs in its own session with output to ``log.txt`` and with
    ``RISKFUSION_HOME`` (and ``RISKFUSION_DATABASE_URL`` when given) set to this store, so it
    outlives the page that started it. The lock file ``<artifacts>/jobs/lock`` names the
    running job and its pid; a lock whose process has ended is taken over.

    Parameters
    ----------
    kind : {"import", "train", "score", "validate"}
        The subcommand (``validate`` runs ``import --dry-run``: see :func:`start_validation`).
    args : sequence of str
        Its arguments (paths absolute: the job does not run in the server's folder).
    artifacts_dir : Path
        The store's runtime directory.
    database_url : str or None, default=None
        The store's database, when it is not the default file in ``artifacts_dir``.
    command : sequence of str or None, default=None
        Replaces ``[python, -m, fusion.cli, kind, *args]`` (tests run a fake command);
        ``--events FILE`` is still appended.

    Returns
    -------
    JobHandle
        The job's id, folder and pid.

    Raises
    ------
    ValueError
        If ``kind`` is not a job kind.
    JobBusyError
        If another job is running (the message names it).
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"Unknown job kind {kind!r}; use one of {list(JOB_KINDS)}.")
    artifacts_dir = Path(artifacts_dir).resolve()
    with _locked(artifacts_dir) as lock:
        holder = _read_lock(lock)
        if holder is not None and _alive(int(holder["pid"]), holder.get("created")):
            raise JobBusyError(
                f"A {holder['kind']} job ({holder['job_id']}) is still running; wait for it to "
                "finish (the Data page shows its progress) and start this one again."
            )
        if holder is not None:
            logger.info("taking over the lock of the finished job %s", holder["job_id"])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S-%fZ")  # microseconds: sorts by start
        job_id = f"{stamp}-{kind}-{secrets.token_hex(3)}"
        folder = _jobs_root(artifacts_dir) / job_id
        folder.mkdir(mode=0o700)
        events = folder / EVENTS_FILE
        events.touch()
        subcommand = _SUBCOMMAND.get(kind, (kind,))
        base = (
            [sys.executable, "-m", "fusion.cli", *subcommand, *args] if command is None else command
        )
        argv = [*base, "--events", str(events)]
        env = dict(os.environ)  # the child needs PATH, the venv, locale: pass them through
        env["RISKFUSION_HOME"] = str(artifacts_dir)
        if database_url is not None:
            env["RISKFUSION_DATABASE_URL"] = database_url
        with (folder / LOG_FILE).open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=env,
                start_new_session=True,
            )
        _CHILDREN[process.pid] = process
        meta = {
            "job_id": job_id,
            "kind": kind,
            "args": list(args),
            "pid": process.pid,
            "created": _create_time(process.pid),
            "started_at": _now(),
        }
        (folder / JOB_FILE).write_text(json.dumps(meta), encoding="utf-8")
        lock.write_text(json.dumps(meta), encoding="utf-8")
    logger.info("started %s job %s (pid %d)", kind, job_id, process.pid)
    return JobHandle(job_id, kind, folder, process.pid)


def _events(path: Path) -> list[dict[str, Any]]:
    """The parsed events; a torn last line (being written) is left for the next read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    parsed: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number < len(lines):
                logger.warning("skipping line %d of %s: not JSON", number, path)
            continue
        if isinstance(event, dict):
            parsed.append(event)
    return parsed


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> tuple[str, ...]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ()
    return tuple(text.splitlines()[-lines:])


def json_int(value: object) -> int:
    """``value`` if it is a JSON integer (not a bool), else 0: counts read from job files."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_job(job_dir: Path) -> JobStatus:
    """The state of the job in ``job_dir``, from its events, its process and its log.

    Parameters
    ----------
    job_dir : Path
        ``<artifacts>/jobs/<job id>``.

    Returns
    -------
    JobStatus
        The current state; a job whose process ended without a final ``job`` event is
        ``failed`` ("stopped without finishing").

    Raises
    ------
    FileNotFoundError
        If ``job_dir`` holds no ``job.json``.
    """
    job_dir = Path(job_dir)
    try:
        meta = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{job_dir} is not a job folder (no {JOB_FILE}); list jobs with list_jobs()."
        ) from None
    pid = int(meta["pid"])
    alive = _alive(pid, meta.get("created"))
    child = _CHILDREN.get(pid)
    exit_code = None if child is None else child.returncode
    events = _events(job_dir / EVENTS_FILE)
    last = events[-1] if events else {}
    final = last if last.get("stage") == "job" else None
    progress: dict[str, Any] = next((e for e in reversed(events) if e.get("stage") != "job"), {})
    detail = str(last.get("detail") or "")
    state: JobState
    validated = meta["kind"] == "validate" and (job_dir / VALIDATION_SUMMARY).is_file()
    if alive:
        state = "running"
    elif final is not None and final.get("state") == "done" and exit_code in (0, None):
        state = "done"
    elif validated:  # a dry run exits 2 when it finds errors: the validation itself finished
        state = "done"
        detail = _validation_text(job_dir)
    else:
        state = "failed"
        if final is None or final.get("state") == "done":
            code = "unknown" if exit_code is None else str(exit_code)
            detail = (
                f"The {meta['kind']} job stopped without finishing (exit code {code}); "
                "see the log below, fix the cause and start it again."
            )
    return JobStatus(
        job_id=str(meta["job_id"]),
        kind=meta["kind"],
        folder=job_dir,
        state=state,
        stage=str(progress.get("stage") or ""),
        index=json_int(progress.get("index")),
        total=json_int(progress.get("total")),
        detail=detail,
        started_at=str(meta.get("started_at", "")),
        args=tuple(str(a) for a in meta.get("args", [])),
        exit_code=exit_code,
        log_tail=_tail(job_dir / LOG_FILE) if state != "running" else (),
        # A started stage is not finished yet: count it once its "done" event arrives.
        stages_done=max(json_int(progress.get("index")) - (progress.get("state") != "done"), 0),
    )


def _validation_text(job_dir: Path) -> str:
    try:
        counts = json.loads((job_dir / VALIDATION_SUMMARY).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "validated"
    patients, scans, errors, warnings = (
        json_int(counts.get(key)) for key in ("patients", "scans", "errors", "warnings")
    )
    return (
        f"{patients:,} patients, {scans:,} scans read, {errors:,} error(s), {warnings:,} warning(s)"
    )


def list_jobs(artifacts_dir: Path, *, limit: int | None = None) -> list[JobStatus]:
    """The jobs of a store, newest first (at most ``limit``)."""
    root = _jobs_root(artifacts_dir)
    if not root.is_dir():
        return []
    folders = sorted(
        (child for child in root.iterdir() if (child / JOB_FILE).is_file()),
        key=lambda child: child.name,
        reverse=True,
    )
    return [read_job(folder) for folder in folders[:limit]]


def latest_job(artifacts_dir: Path) -> JobStatus | None:
    """The newest job of a store (running or finished), or None."""
    jobs = list_jobs(artifacts_dir, limit=1)
    return jobs[0] if jobs else None


def running_job(artifacts_dir: Path) -> JobStatus | None:
    """The job holding the lock while its process lives, or None."""
    holder = _read_lock(_jobs_root(artifacts_dir) / LOCK_FILE)
    if holder is None:
        return None
    folder = _jobs_root(artifacts_dir) / str(holder["job_id"])
    if not (folder / JOB_FILE).is_file():
        return None
    status = read_job(folder)
    return status if status.state == "running" else None
