"""AppTests of the Data page: access, validation table, import gating, job progress, empty store."""

from __future__ import annotations

import getpass
import io
import json
import os
import signal
import sys
import time
import zipfile
from pathlib import Path
from unittest.mock import patch

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import IDENTITY
from data.errors import StoreNotBuiltError
from data.store import CohortStore, make_engine
from fusion.admin import jobs
from fusion.admin.access import Identity
from fusion.admin.uploads import EXAMPLE_COHORT
from tests.cohorts import broken_copy

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGE = "dashboard/pages/data.py"

# A fake job command: writes its events (argv[1]) then waits argv[2] seconds and exits argv[3].
FAKE = """
import json, sys, time
events, path = json.loads(sys.argv[1]), sys.argv[-1]
with open(path, "a") as f:
    for e in events[:-1]:
        f.write(json.dumps(e) + "\\n"); f.flush()
    print("fake job log line", flush=True)
    time.sleep(float(sys.argv[2]))
    f.write(json.dumps(events[-1]) + "\\n")
sys.exit(int(sys.argv[3]))
"""


def _event(stage: str, index: int, total: int, state: str, detail: str) -> dict[str, object]:
    return {"stage": stage, "index": index, "total": total, "state": state, "detail": detail}


def _fake(events: list[dict[str, object]], pause: float, code: int) -> list[str]:
    return [sys.executable, "-c", FAKE, json.dumps(events), str(pause), str(code)]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The page's store: a fresh, empty runtime directory (the service is patched apart)."""
    folder = tmp_path / "home"
    monkeypatch.setenv("RISKFUSION_HOME", str(folder))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    return folder


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    return at


def _validate(at: AppTest) -> AppTest:
    """Click Validate; when that started a validation job, wait for it and rerun the page."""
    before = jobs.latest_job(Path(os.environ["RISKFUSION_HOME"]))
    at.button(key="data.validate").click().run()
    assert not at.exception, at.exception
    job = jobs.latest_job(Path(os.environ["RISKFUSION_HOME"]))
    if (
        job is not None
        and job.kind == "validate"
        and (before is None or job.job_id != before.job_id)
    ):
        deadline = time.monotonic() + 300
        while jobs.read_job(job.folder).state == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _events(service, action: str) -> list[dict]:
    """The Data page's audit details of ``action``, newest first."""
    trail = service.audit_trail(limit=10_000)
    details = [json.loads(d) for d in trail[trail["action"] == action]["detail"]]
    return [d for d in details if d.get("page") == "data"]


def test_admin_sees_the_page_with_the_clinical_use_note(patched_service, home: Path) -> None:
    at = _page()
    assert "Not for clinical use" in at.warning[0].value
    assert _metric(at, "Patients") == "0"  # the page's store is the empty one in `home`
    assert at.button(key="data.train").disabled
    assert at.button(key="data.score").disabled


@pytest.mark.parametrize("role", ["clinician", "researcher"])
def test_other_roles_are_refused(patched_service, home: Path, role: str) -> None:
    page = AppTest.from_file(str(ROOT / PAGE), default_timeout=60)
    page.session_state[IDENTITY] = Identity(user="x@h.org", role=role, source="oidc")
    page.run()
    assert not page.exception
    assert f"{role} role may not open admin pages" in page.error[0].value
    assert not page.button
    assert not page.dataframe


def test_other_roles_do_not_see_it_in_the_navigation(patched_service, home: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.selectbox(key="signin.local_role").set_value("clinician").run()
    assert not at.exception, at.exception
    with pytest.raises(Exception, match=r"data\.py"):  # no such page for this role
        at.switch_page(PAGE).run()


def test_a_broken_cohort_shows_its_problems_and_cannot_be_imported(
    patched_service, home: Path, tmp_path: Path
) -> None:
    cohort = broken_copy(tmp_path / "cohort")
    before = len(_events(patched_service, "import"))
    at = _page()
    at.radio(key="data.source").set_value("Folder on the server").run()
    at.text_input(key="data.folder").input(str(cohort)).run()
    _validate(at)
    problems = at.dataframe[0].value
    assert "twenty" in set(problems["value"])
    assert int(_metric(at, "Errors")) >= 1
    assert "fix them in your files" in at.error[0].value
    assert at.button(key="data.import").disabled
    validated = _events(patched_service, "import")  # newest first
    assert len(validated) == before + 1
    assert validated[0]["step"] == "validate"
    assert validated[0]["errors"] >= 1


def test_a_missing_folder_is_refused_with_its_path(patched_service, home: Path) -> None:
    at = _page()
    at.radio(key="data.source").set_value("Folder on the server").run()
    at.text_input(key="data.folder").input("/no/such/cohort").run()
    _validate(at)
    assert "/no/such/cohort does not exist on the server" in at.error[0].value


def test_the_shipped_example_validates_and_import_starts_a_job(patched_service, home: Path) -> None:
    at = _page()
    at.radio(key="data.source").set_value("Shipped example").run()
    _validate(at)
    validation = jobs.latest_job(home)  # validated in a background job, not in the page
    assert validation is not None
    assert (validation.kind, validation.state) == ("validate", "done")
    assert (validation.folder / jobs.VALIDATION_REPORT).is_file()
    assert int(_metric(at, "Errors")) == 0
    assert not at.button(key="data.import").disabled
    started: list[tuple[str, list[str]]] = []
    real_start = jobs.start_job

    def fake_start(kind, args, artifacts_dir, **kwargs):
        started.append((kind, list(args)))
        done = [_event("job", 1, 1, "done", "imported 3 patients")]
        return real_start(kind, args, artifacts_dir, command=_fake(done, 0, 0))

    with patch("fusion.admin.jobs.start_job", side_effect=fake_start):
        at.button(key="data.import").click().run()
    assert not at.exception, at.exception
    # The job audits its writes as the signed-in user, not as the server's OS user.
    user = f"local:{getpass.getuser()}"
    assert started == [("import", [str(EXAMPLE_COHORT), "--actor", user, "--role", "admin"])]
    assert _events(patched_service, "import")[0]["step"] == "start"  # newest first


def test_an_uploaded_zip_is_extracted_and_validated(patched_service, home: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(EXAMPLE_COHORT.rglob("*")):
            if path.is_file():
                archive.write(path, f"cohort/{path.relative_to(EXAMPLE_COHORT)}")
    at = _page()
    at.file_uploader(key="data.upload").set_value(
        ("cohort.zip", buffer.getvalue(), "application/zip")
    ).run()
    _validate(at)
    assert int(_metric(at, "Errors")) == 0
    uploads = list((home / "uploads").iterdir())
    assert len(uploads) == 1
    assert (uploads[0] / "cohort" / "patients.csv").is_file()


def test_an_unsafe_zip_is_refused(patched_service, home: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../patients.csv", "patient_id\n")
    at = _page()
    at.file_uploader(key="data.upload").set_value(("evil.zip", buffer.getvalue(), "x")).run()
    _validate(at)
    assert "points outside the archive" in at.error[0].value
    uploads = home / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())


def test_progress_shows_a_running_job_and_disables_the_buttons(patched_service, home) -> None:
    events = [_event("imaging", 2, 5, "start", "epoch 2"), _event("job", 1, 1, "done", "ok")]
    handle = jobs.start_job("train", [], home, command=_fake(events, 60, 0))
    try:
        deadline = time.monotonic() + 30
        while jobs.read_job(handle.folder).stage != "imaging" and time.monotonic() < deadline:
            time.sleep(0.05)
        at = _page()
        progress = at.get("progress")[0]
        assert progress.value == 20  # percent: stage 2 of 5 started, 1 finished
        assert progress.text == "train: imaging (2/5) - epoch 2"
        assert at.button(key="data.score").disabled
    finally:
        os.killpg(handle.pid, signal.SIGKILL)


def test_progress_shows_a_failed_job_with_its_log(patched_service, home: Path) -> None:
    events = [_event("job", 0, 1, "failed", "The cohort has 2 problem(s) and was not imported")]
    handle = jobs.start_job("import", ["/x"], home, command=_fake(events, 0, 2))
    deadline = time.monotonic() + 30
    while jobs.read_job(handle.folder).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    at = _page()
    assert any("import job failed: The cohort has 2 problem(s)" in e.value for e in at.error)
    assert any("fake job log line" in code.value for code in at.code)


def test_an_empty_store_still_offers_validation_and_audits_it(home: Path) -> None:
    with patch(
        "dashboard.resources.get_risk_service",
        side_effect=StoreNotBuiltError("No active 'fusion' model in the store"),
    ):
        at = _page()
        assert _metric(at, "Active model") == "none yet"
        at.radio(key="data.source").set_value("Shipped example").run()
        _validate(at)
        assert not at.button(key="data.import").disabled
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    trail = store.audit_events(limit=100)
    store.engine.dispose()
    assert "import" in set(trail["action"])
