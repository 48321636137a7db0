"""A killed ``riskfusion score`` resumes to exactly the values of an uninterrupted run, readers
never see a partial result, and only complete model versions are listed and activatable.

Every test works on a copy of the session's tiny demo (``tests/fixtures_demo.py``). The
``unscored`` copy plays a later import: the validation and test patients lose their
embeddings, risks and SHAP values (new patients with scans), a few training patients lose only
their risks and SHAP values (changed EHR). Kills are injected deterministically (an exception
at a named point: between the two nets' embeddings, inside the chunk's transaction, ...) and
once as a real SIGKILL of a ``riskfusion score`` process inside a transaction; after each, the
resumed run must store embeddings, risks and SHAP values bit for bit equal to a clean run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, select, update

from data.artifacts import file_digest
from data.errors import IncompleteVersionError, NotScoredError
from data.store import (
    COMPLETION_PARAM,
    AuditEntry,
    CohortStore,
    ModelRecord,
    make_engine,
    predictions,
)
from data.store.schema import Embedding, ModelVersion, Patient, Prediction, StoredExplanation
from fusion.cli import main
from fusion.service.facade import RiskService
from fusion.training import embeddings, score
from fusion.training.score import score_cohort
from fusion.training.stages import StageEvent, Stages
from fusion.training.versions import (
    PLANNED_PARAM,
    activate_version,
    check_version,
    complete_fusion_versions,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

ROOT = Path(__file__).resolve().parents[3]
CHUNK = 16  # patients per scoring transaction: the unscored patients span several chunks
SCORER = AuditEntry(actor="test:admin", role="admin", action="score", detail={"command": "t"})


class InjectedKill(Exception):
    """Stands for the process dying at the injection point."""


def _store(home: Path) -> CohortStore:
    return CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.db-shm"))
    return target


def _versions(store: CohortStore) -> tuple[str, str]:
    return store.active_model("fusion").version, store.active_model("imaging").version


def _snapshot(store: CohortStore) -> dict[str, pd.DataFrame]:
    """Every stored value scoring writes: embeddings, risks, SHAP values (bytes as stored)."""
    fusion, imaging = _versions(store)
    queries = {
        "embeddings": select(
            Embedding.image_id,
            Embedding.fold,
            Embedding.in_training,
            Embedding.logit,
            Embedding.vector,
        )
        .where(Embedding.model_version == imaging)
        .order_by(Embedding.image_id, Embedding.fold),
        "predictions": select(Prediction.patient_id, Prediction.risk)
        .where(Prediction.model_version == fusion)
        .order_by(Prediction.patient_id),
        "explanations": select(
            StoredExplanation.patient_id, StoredExplanation.base_value, StoredExplanation.shap
        )
        .where(StoredExplanation.model_version == fusion)
        .order_by(StoredExplanation.patient_id),
    }
    with store.engine.connect() as conn:
        return {
            name: pd.DataFrame([tuple(row) for row in conn.execute(query)])
            for name, query in queries.items()
        }


def _assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


def _assert_all_or_nothing(store: CohortStore, n_nets: int) -> None:
    """No patient has a risk without SHAP values (or back), nor a scan embedded by some nets."""
    snap = _snapshot(store)
    assert set(snap["predictions"][0]) == set(snap["explanations"][0])
    folds = snap["embeddings"].groupby(0)[1].nunique()
    assert set(folds) <= {n_nets}, f"scans embedded by only some nets: {folds[folds < n_nets]}"


@pytest.fixture(scope="module")
def unscored(tiny_demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the tiny demo with unscored patients, its clean score and the unscored ids."""
    settings, _ = tiny_demo
    home = _copy(settings.artifacts_dir, tmp_path_factory.mktemp("unscored") / "home")
    store = _store(home)
    fusion, imaging = _versions(store)
    with store.engine.begin() as conn:
        splits = dict(conn.execute(select(Patient.patient_id, Patient.split)).all())
        new = sorted(pid for pid, split in splits.items() if split != "train")
        changed = sorted(pid for pid, split in splits.items() if split == "train")[::9]
        images = store.image_rows(new)["image_id"].tolist()
        conn.execute(
            delete(Embedding).where(
                Embedding.model_version == imaging, Embedding.image_id.in_(images)
            )
        )
        for table in (Prediction, StoredExplanation):
            conn.execute(
                delete(table).where(
                    table.model_version == fusion, table.patient_id.in_(new + changed)
                )
            )
    store.engine.dispose()
    clean = _copy(home, tmp_path_factory.mktemp("clean") / "home")
    store = _store(clean)
    result = score_cohort(store, clean, chunk_size=CHUNK, audit=SCORER)
    reference = _snapshot(store)
    chunks = len(store.audit_events(action="score"))
    store.engine.dispose()
    assert result["scored"] == len(new) + len(changed)
    assert chunks >= 4
    return {
        "home": home,
        "reference": reference,
        "chunks": chunks,
        "ids": sorted(new + changed),
        "new": new,
        "embedded": result["embedded"],
    }


def _fail_on_call(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, call: int, *, after: bool = False
) -> None:
    """Make ``owner.name`` raise :class:`InjectedKill` on its ``call``-th call.

    ``after``: run the real function first (the kill comes right after it returned).
    """
    real = getattr(owner, name)
    calls = 0

    def injected(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and not after:
            raise InjectedKill(f"{name} call {call}")
        value = real(*args, **kwargs)
        if calls == call:
            raise InjectedKill(f"after {name} call {call}")
        return value

    monkeypatch.setattr(owner, name, injected)


def _event_kill(stage_state: tuple[str, str]) -> Callable[[StageEvent], None]:
    def sink(event: StageEvent) -> None:
        if (event.stage, event.state) == stage_state:
            raise InjectedKill(f"{event.stage} {event.state}")

    return sink


# Each case: where the process dies. ``chunks`` is the number of chunks of a clean run.
KILL_POINTS: dict[str, Callable[[pytest.MonkeyPatch, int], Stages | None]] = {
    "at the start of the stage": lambda mp, n: Stages(
        1, lambda _: None, _event_kill(("score", "start"))
    ),
    "1st embedded chunk, between the two nets": lambda mp, n: _fail_on_call(
        mp, embeddings, "embed", 2
    ),
    "2nd embedded chunk, after both nets": lambda mp, n: _fail_on_call(
        mp, embeddings, "embed", 4, after=True
    ),
    "chunk 2, after embedding, before TreeSHAP": lambda mp, n: _fail_on_call(
        mp, score, "shap_values", 2
    ),
    "chunk 2, in the transaction after the embeddings": lambda mp, n: _fail_on_call(
        mp, predictions, "replace_predictions", 2
    ),
    "chunk 3, in the transaction after the risks": lambda mp, n: _fail_on_call(
        mp, predictions, "replace_explanations", 3, after=True
    ),
    "last chunk, in the transaction after its audit event": lambda mp, n: _fail_on_call(
        mp, predictions, "append_audit", n, after=True
    ),
    "after the last chunk": lambda mp, n: Stages(1, lambda _: None, _event_kill(("score", "done"))),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_score_resumes_to_exactly_the_values_of_a_clean_run(
    unscored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    home = _copy(unscored["home"], tmp_path / "home")
    store = _store(home)
    stages = KILL_POINTS[point](monkeypatch, unscored["chunks"])
    with pytest.raises(InjectedKill):
        score_cohort(store, home, chunk_size=CHUNK, audit=SCORER, stages=stages)
    monkeypatch.undo()
    store.engine.dispose()
    store = _store(home)  # the restarted process
    _assert_all_or_nothing(store, n_nets=2)
    resumed = score_cohort(store, home, chunk_size=CHUNK, audit=SCORER)
    _assert_same(_snapshot(store), unscored["reference"])
    # One committed chunk, one audit event: the killed chunk left none.
    assert len(store.audit_events(action="score")) == unscored["chunks"]
    assert resumed["scored"] <= len(unscored["ids"])
    store.engine.dispose()


def test_a_score_resumes_after_an_older_run_left_scans_embedded_by_one_net(
    unscored, tmp_path: Path
) -> None:
    """The state an interrupted run of the per-net writes left: it is repaired, not trusted."""
    home = _copy(unscored["home"], tmp_path / "home")
    store = _store(home)
    _, imaging = _versions(store)
    reference = unscored["reference"]["embeddings"]
    patients = unscored["new"][:20]
    images = store.image_rows(patients)["image_id"].tolist()
    half = reference[reference[0].isin(images) & (reference[1] == 0)]
    store.write_embeddings(
        imaging,
        half[0].to_numpy(),
        half[1].to_numpy(),
        half[2].to_numpy(),
        half[3].to_numpy(),
        np.stack([np.frombuffer(blob, dtype=np.float32) for blob in half[4]]),
    )
    service = RiskService(store, home)
    with_scan = store.image_rows(patients)["patient_id"].iloc[0]
    with pytest.raises(NotScoredError, match=r"has not embedded yet.*riskfusion score"):
        service.predict(with_scan)  # a one-net risk is never shown
    result = score_cohort(store, home, chunk_size=CHUNK, audit=SCORER)
    assert result["embedded"] == unscored["embedded"]
    _assert_same(_snapshot(store), unscored["reference"])
    store.engine.dispose()


def test_readers_never_see_a_patient_with_a_partial_result(
    unscored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page reads while ``score`` runs: not scored yet, or exactly the final result."""
    home = _copy(unscored["home"], tmp_path / "home")
    reader_store = _store(home)
    reader = RiskService(reader_store, home)
    final = unscored["reference"]["predictions"].set_index(0)[1]
    sample = unscored["ids"][::3]
    checks = {"not scored": 0, "final": 0}

    def read_all() -> None:
        pages = reader_store.patient_summaries(sample, reader.model_info().version)
        for pid, stored in zip(pages["patient_id"], pages["risk"], strict=True):
            assert np.isnan(stored) or stored == final[pid], pid
            try:
                risk = reader.predict(pid).risk
                explanation = reader.explain(pid)
            except NotScoredError:
                checks["not scored"] += 1
                continue
            checks["final"] += 1
            assert risk == pytest.approx(final[pid], abs=1e-9), pid
            assert explanation.risk == pytest.approx(final[pid], abs=1e-9), pid

    def reading(owner: object, name: str) -> None:
        real = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            read_all()  # after each net's embeddings; inside the chunk's open transaction
            return value

        monkeypatch.setattr(owner, name, wrapped)

    reading(embeddings, "embed")
    reading(predictions, "replace_explanations")
    writer = _store(home)
    score_cohort(writer, home, chunk_size=CHUNK, audit=SCORER)
    monkeypatch.undo()
    read_all()
    assert checks["not scored"] > 0
    assert checks["final"] > 0
    _assert_same(_snapshot(writer), unscored["reference"])
    writer.engine.dispose()
    reader_store.engine.dispose()


KILLER = textwrap.dedent(
    """
    import functools, os, signal, sys
    from data.store import predictions
    from fusion import cli
    from fusion.training import score

    score.score_cohort = functools.partial(score.score_cohort, chunk_size=int(sys.argv[2]))

    real, calls = predictions.replace_explanations, []

    def killing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # chunk 2: embeddings and risks written, transaction still open
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    predictions.replace_explanations = killing
    sys.exit(cli.main(["score", "--events", sys.argv[1]]))
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_sigkilled_score_process_resumes_to_the_clean_values(unscored, tmp_path: Path) -> None:
    home = _copy(unscored["home"], tmp_path / "home")
    env = {**os.environ, "RISKFUSION_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("RISKFUSION_DATABASE_URL", None)
    events = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(events), str(CHUNK)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    started = [json.loads(line)["stage"] for line in events.read_text().splitlines()]
    assert started == ["score"]  # killed inside the stage, no end event
    store = _store(home)
    _assert_all_or_nothing(store, n_nets=2)
    assert len(store.audit_events(action="score")) == 1  # only chunk 1 committed
    score_cohort(store, home, chunk_size=CHUNK, audit=SCORER)
    _assert_same(_snapshot(store), unscored["reference"])
    store.engine.dispose()


# --------------------------------------------------------------------------- complete versions
def _records(store: CohortStore) -> dict[str, ModelRecord]:
    return {record.version: record for record in store.list_models()}


def _part_file(home: Path, records: dict[str, ModelRecord], version: str, part: str) -> Path:
    record = records[records[version].parent_version or ""] if part == "imaging" else None
    record = record or records[f"{version}-{part}"]
    path = home / record.artifact_path
    if part == "imaging":
        return path / "fold_1.pt"
    if part == "forecast":
        return path / json.loads((path / "manifest.json").read_text())["members"][0][0]["file"]
    return path


def _unfinish(store: CohortStore, version: str) -> None:
    """Drop the completion record: the registry as a kill before the activation left it."""
    with store.engine.begin() as conn:
        params = conn.execute(
            select(ModelVersion.params).where(ModelVersion.version == version)
        ).scalar_one()
        kept = {k: v for k, v in params.items() if k != COMPLETION_PARAM}
        conn.execute(
            update(ModelVersion).where(ModelVersion.version == version).values(params=kept)
        )


# What is damaged, and the words the refusal must contain.
DAMAGE = {
    "a fold net's weights": ("imaging", "fold_1.pt"),
    "the risk interval": ("interval", "calibration.json"),
    "the similar-patient index": ("explanations", "similar.npz"),
    "a forecast model file": ("forecast", "member_00"),
    "a baseline model": ("ehr", "baseline_ehr.txt"),
    "the completion record": ("", "no completion record"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_activate_refuses_a_version_with_a_missing_or_changed_part(
    tiny_demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    settings, _ = tiny_demo
    home = _copy(settings.artifacts_dir, tmp_path / "home")
    store = _store(home)
    version, _ = _versions(store)
    assert check_version(_records(store), home, version).complete
    part, words = DAMAGE[damage]
    if part:
        path = _part_file(home, _records(store), version, part)
        path.write_bytes(path.read_bytes()[:-7])  # truncated, as a killed write leaves it
    else:
        _unfinish(store, version)
    with pytest.raises(IncompleteVersionError, match=f"incomplete.*{words}.*riskfusion train"):
        activate_version(store, home, version)
    assert not check_version(_records(store), home, version).complete
    assert complete_fusion_versions(store, home) == []
    monkeypatch.setenv("RISKFUSION_HOME", str(home))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    assert main(["activate", version]) == 2
    assert store.audit_events(action="activate_model").empty
    store.engine.dispose()


def test_an_unfinished_version_is_neither_listed_nor_activatable(
    tiny_demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kill during `train` after the fusion model and its interval were registered."""
    settings, _ = tiny_demo
    home = _copy(settings.artifacts_dir, tmp_path / "home")
    store = _store(home)
    version, imaging = _versions(store)
    records = _records(store)
    done = records[version]
    unfinished = "fusion-29991231-235959-000000"  # newest: listed first if it were listed
    params = {k: v for k, v in done.params.items() if k != COMPLETION_PARAM}
    store.register_model(
        ModelRecord(
            version=unfinished,
            kind="fusion",
            created_at=done.created_at.replace(year=2999),
            artifact_path=done.artifact_path,
            sha256=file_digest(home / done.artifact_path),
            metrics=done.metrics,
            params={**params, PLANNED_PARAM: ["interval", "explanations", "forecast"]},
            parent_version=imaging,
        ),
        activate=False,
    )
    interval = records[f"{version}-interval"]
    store.register_model(
        ModelRecord(
            version=f"{unfinished}-interval",
            kind="interval",
            created_at=interval.created_at,
            artifact_path=interval.artifact_path,
            sha256=interval.sha256,
            metrics=interval.metrics,
            params=interval.params,
            parent_version=unfinished,
        ),
        activate=False,
    )
    service = RiskService(store, home)
    assert service.list_models()["version"].tolist() == [version]
    assert complete_fusion_versions(store, home) == [version]
    with pytest.raises(
        IncompleteVersionError, match=r"did not finish.*parts never written: explanations, forecast"
    ):
        activate_version(store, home, unfinished)
    monkeypatch.setenv("RISKFUSION_HOME", str(home))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    assert main(["activate", unfinished]) == 2
    capsys.readouterr()
    assert main(["versions"]) == 0
    listed = capsys.readouterr().out  # the version list is a result: stdout
    assert version in listed
    assert unfinished not in listed
    assert "1 unfinished or damaged version(s) not listed" in listed
    assert _versions(store) == (version, imaging)
    assert not any(r.is_active for v, r in _records(store).items() if v.startswith(unfinished))
    activate_version(store, home, version)  # a complete version still activates
    store.engine.dispose()


def test_a_complete_version_activates_every_part_with_it(tiny_demo, tmp_path: Path) -> None:
    settings, _ = tiny_demo
    home = _copy(settings.artifacts_dir, tmp_path / "home")
    store = _store(home)
    version, imaging = _versions(store)
    completion = _records(store)[version].params[COMPLETION_PARAM]
    parts = set(completion["parts"])
    assert {imaging, f"{version}-interval", f"{version}-explanations"} <= parts
    assert f"{version}-forecast" in parts
    assert all(_records(store)[v].is_active for v in parts)
    assert completion["counts"]["predictions"] == store.count_patients()
    with store.engine.begin() as conn:  # as if another version had been activated since
        conn.execute(update(ModelVersion).values(is_active=False))
    activate_version(store, home, version)
    active = {v for v, r in _records(store).items() if r.is_active}
    assert active == {version, *parts}
    store.engine.dispose()
