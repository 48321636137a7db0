"""Background jobs: start, progress from the events file, failure, one job at a time."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from data.store import CohortStore, make_engine
from fusion.admin.jobs import (
    JobBusyError,
    JobStatus,
    latest_job,
    list_jobs,
    read_job,
    running_job,
    start_job,
)
from fusion.admin.store_status import record_data_event, store_summary
from fusion.admin.validation_jobs import read_validation, start_validation
from fusion.settings import Settings
from tests.cohorts import broken_copy

# A fake command: writes the events it is told to (argv[1], JSON) to the --events file, with a
# pause before the end; the last argument is the events file that start_job appends.
FAKE = """
import json, sys, time
events, path = json.loads(sys.argv[1]), sys.argv[-1]
pause = float(sys.argv[2])
with open(path, "a") as f:
    for e in events[:-1]:
        f.write(json.dumps(e) + "\\n"); f.flush()
    print("working on", len(events), "events", flush=True)
    time.sleep(pause)
    if events:
        f.write(json.dumps(events[-1]) + "\\n")
sys.exit(int(sys.argv[3]))
"""


def _event(stage: str, index: int, total: int, state: str, detail: str = "") -> dict[str, object]:
    return {
        "stage": stage,
        "index": index,
        "total": total,
        "state": state,
        "detail": detail,
        "seconds": None,
        "time": "2026-11-30T10:00:00+00:00",
    }


def _fake(events: list[dict[str, object]], *, pause: float = 0.0, code: int = 0) -> list[str]:
    return [sys.executable, "-c", FAKE, json.dumps(events), str(pause), str(code)]


def _wait(folder: Path, until: str = "finished", timeout: float = 30.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = read_job(folder)
        done = status.state != "running" if until == "finished" else status.stage == until
        if done or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_a_job_reports_progress_then_done(tmp_path: Path) -> None:
    events = [
        _event("imaging", 1, 4, "start", "epoch 1"),
        _event("imaging", 3, 4, "done", "epoch 3"),
        _event("job", 1, 1, "done", "trained version v2"),
    ]
    handle = start_job("train", [], tmp_path, command=_fake(events, pause=1.0))
    assert handle.folder == tmp_path / "jobs" / handle.job_id
    running = _wait(handle.folder, until="imaging")
    assert running.state == "running"
    assert running.text == "train: imaging (3/4) - epoch 3"
    assert running.fraction == pytest.approx(0.75)
    assert running_job(tmp_path) is not None
    finished = _wait(handle.folder)
    assert finished.state == "done"
    assert finished.exit_code == 0
    assert finished.fraction == 1.0
    assert finished.detail == "trained version v2"
    assert any("working on 3 events" in line for line in finished.log_tail)
    assert running_job(tmp_path) is None


def test_a_failed_job_carries_its_error_and_log(tmp_path: Path) -> None:
    events = [
        _event("validate", 0, 1, "start"),
        _event("job", 0, 1, "failed", "The cohort has 2 problem(s) and was not imported"),
    ]
    handle = start_job("import", ["/data/cohort"], tmp_path, command=_fake(events, code=2))
    status = _wait(handle.folder)
    assert status.state == "failed"
    assert status.exit_code == 2
    assert status.detail.startswith("The cohort has 2 problem(s)")
    assert status.args == ("/data/cohort",)


def test_a_job_that_dies_without_a_final_event_is_failed(tmp_path: Path) -> None:
    events = [_event("imaging", 1, 30, "start"), _event("job", 1, 1, "done")]
    handle = start_job("train", [], tmp_path, command=_fake(events, pause=30.0))
    _wait(handle.folder, until="imaging")
    os.killpg(handle.pid, signal.SIGKILL)  # its own session: the whole group
    status = _wait(handle.folder)
    assert status.state == "failed"
    assert "stopped without finishing" in status.detail
    assert status.stage == "imaging"


def test_only_one_job_at_a_time(tmp_path: Path) -> None:
    first = start_job("train", [], tmp_path, command=_fake([_event("job", 1, 1, "done")], pause=30))
    try:
        with pytest.raises(JobBusyError, match=rf"A train job \({first.job_id}\) is still running"):
            start_job("score", [], tmp_path, command=_fake([]))
    finally:
        os.killpg(first.pid, signal.SIGKILL)
    _wait(first.folder)
    second = start_job("score", [], tmp_path, command=_fake([_event("job", 1, 1, "done")]))
    assert _wait(second.folder).state == "done"
    assert [job.job_id for job in list_jobs(tmp_path)] == [second.job_id, first.job_id]
    latest = latest_job(tmp_path)
    assert latest is not None
    assert latest.job_id == second.job_id


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    stale = {"job_id": "old", "kind": "import", "pid": 2**22 + 12345, "ticks": 1, "args": []}
    (tmp_path / "jobs" / "lock").write_text(json.dumps(stale), encoding="utf-8")
    handle = start_job("score", [], tmp_path, command=_fake([_event("job", 1, 1, "done")]))
    assert _wait(handle.folder).state == "done"
    assert json.loads((tmp_path / "jobs" / "lock").read_text())["job_id"] == handle.job_id


def test_a_job_started_by_another_process_is_read_through_psutil(tmp_path: Path) -> None:
    handle = start_job("train", [], tmp_path, command=_fake([_event("job", 1, 1, "done")]))
    _wait(handle.folder)
    # A new server process has no Popen of it: the state comes from the events and psutil.
    from fusion.admin import jobs

    jobs._CHILDREN.pop(handle.pid)
    status = read_job(handle.folder)
    assert status.state == "done"
    assert status.exit_code is None


def test_the_default_command_runs_the_cli_with_events(tmp_path: Path) -> None:
    handle = start_job("score", ["--help"], tmp_path)
    status = _wait(handle.folder, timeout=120)
    meta = json.loads((handle.folder / "job.json").read_text())
    assert meta["args"] == ["--help"]
    # argparse answers (help, or "invalid choice" before the subcommand exists): the command
    # really is the riskfusion CLI, and its output landed in the log.
    assert status.state != "running"
    assert any("usage: riskfusion" in line for line in status.log_tail)


def test_bad_kind_and_missing_folder() -> None:
    with pytest.raises(ValueError, match=r"Unknown job kind 'demo'"):
        start_job("demo", [], Path("/nonexistent"))  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="not a job folder"):
        read_job(Path("/nonexistent"))


def test_store_summary_and_events_on_a_store_that_does_not_exist_yet(tmp_path: Path) -> None:
    settings = Settings.from_env({"RISKFUSION_HOME": str(tmp_path / "new" / "home")})
    summary = store_summary(settings)
    assert (summary.n_patients, summary.active_version, dict(summary.training_data)) == (
        0,
        None,
        {},
    )
    record_data_event(settings, actor="local:ana", role="admin", action="import", detail={"x": 1})
    store = CohortStore(make_engine(settings.database_url))
    trail = store.audit_events(limit=10)
    store.engine.dispose()
    assert list(trail["action"]) == ["import"]
    assert json.loads(trail["detail"][0]) == {"x": 1}
    with pytest.raises(ValueError, match="Unknown audit action 'validate'"):
        record_data_event(settings, actor="local:ana", role="admin", action="validate")


def test_store_summary_of_a_built_store(tiny_demo) -> None:
    settings, _ = tiny_demo
    summary = store_summary(settings)
    assert summary.n_patients > 0
    assert summary.active_version is not None


def test_a_validation_job_writes_its_report_and_its_log_names_no_patient(
    tmp_path: Path,
) -> None:
    cohort = broken_copy(tmp_path / "cohort")  # age "twenty" in spreadsheet row 2
    (cohort / "images" / "P0000005.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    handle = start_validation(cohort, tmp_path / "home")
    status = _wait(handle.folder, timeout=600)
    assert status.kind == "validate"
    assert status.state == "done", status  # the dry run exits 2 on errors: still a validation
    assert "error(s)" in status.detail
    report = read_validation(handle.folder)
    assert report is not None
    assert report.n_patients == 160
    errors = report.errors
    assert errors[errors["column"] == "age"][["row", "value"]].values.tolist() == [[2, "twenty"]]
    assert "images/P0000005.png" in set(errors["file"])
    log = (handle.folder / "log.txt").read_text(encoding="utf-8")
    assert "patients.csv, column age: 1 x not a number (rows 2)" in log
    ids = pd.read_csv(cohort / "patients.csv", dtype=str)["patient_id"]
    leaked = [pid for pid in ids if pid in log]
    assert not leaked, leaked[:5]
    assert "twenty" not in log
