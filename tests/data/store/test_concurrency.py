"""Concurrency and crash safety of the store on SQLite (WAL) and PostgreSQL.

20 reader threads (what a patient page reads, plus one audit event per view) run while an
import (cohort batches) and a scoring run (prediction chunks, then activation) write. Nothing
may fail, and every row must arrive exactly once. A scoring process killed with SIGKILL inside
its transaction leaves no rows and the previous model active.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from data.store import AuditEntry, CohortStore, make_engine
from tests.data.store.test_store import make_tables, model_record

READERS = 20
BATCHES = 6
BATCH_SIZE = 12
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with the schema: a SQLite file (WAL needs a file) or a scratch PG DB."""
    if request.param == "sqlite":
        result = f"sqlite:///{tmp_path / 'store.db'}"
        engine = make_engine(result)
        CohortStore(engine).create_schema()
        engine.dispose()
        return result
    factory: Callable[[], str] = request.getfixturevalue("postgres_database")
    return factory()


@pytest.fixture
def store(url: str) -> Iterator[CohortStore]:
    """A store on ``url`` holding a base cohort of 12 patients and an active model."""
    result = CohortStore(make_engine(url))
    result.write_cohort(make_tables("P"))
    result.register_model(model_record("fusion-1"))
    result.write_predictions("fusion-1", make_tables("P").patients["patient_id"], np.full(12, 0.5))
    yield result
    result.engine.dispose()


def test_readers_never_fail_while_an_import_and_a_scoring_run_write(store: CohortStore) -> None:
    base_ids = list(make_tables("P").patients["patient_id"])
    errors: list[BaseException] = []
    writers_done = threading.Event()
    views = [0] * READERS

    def reader(number: int) -> None:
        rng = np.random.default_rng(number)
        try:
            while not writers_done.is_set() or views[number] < 3:
                patient_id = str(rng.choice(base_ids))
                record = store.get_patient(patient_id)
                assert record.patient_id == patient_id
                assert not store.search_patients(patient_id[:4], limit=5).empty
                assert store.get_prediction(patient_id, "fusion-1") == 0.5
                store.record_event(
                    AuditEntry(
                        actor=f"reader-{number}",
                        role="clinician",
                        action="view_patient",
                        patient_id=patient_id,
                    )
                )
                views[number] += 1
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    def importer() -> None:
        try:
            for batch in range(BATCHES):
                store.write_cohort(make_tables(chr(ord("A") + batch), BATCH_SIZE, seed=batch))
        except BaseException as err:
            errors.append(err)

    def scorer() -> None:
        try:
            store.register_model(model_record("fusion-2", day=2), activate=False)
            for start in range(0, 12, 3):
                chunk = base_ids[start : start + 3]
                store.write_predictions("fusion-2", chunk, np.full(len(chunk), 0.25))
            store.activate_model("fusion-2")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    writers = [threading.Thread(target=importer), threading.Thread(target=scorer)]
    for thread in threads + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    writers_done.set()
    for thread in threads:
        thread.join(timeout=300)

    assert not errors, errors
    assert store.count_patients() == 12 + BATCHES * BATCH_SIZE
    assert store.count_predictions("fusion-2") == 12
    assert store.count_predictions("fusion-1") == 12
    assert store.active_model("fusion").version == "fusion-2"
    assert store.count_audit_events() == sum(views)


KILLED_SCORER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from data.store import CohortStore, make_engine

    store = CohortStore(make_engine(sys.argv[1]))
    ids = [f"P{i:07d}" for i in range(1, 13)]
    from data.store import predictions

    real = predictions.insert

    def slow_insert(table):  # announce the open transaction, then hang inside it
        print("inside", flush=True)
        sys.stdin.readline()
        return real(table)

    predictions.insert = slow_insert
    store.write_predictions("fusion-1", ids, np.full(len(ids), 0.25))  # a re-score
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_scoring_run_killed_inside_its_transaction_changes_nothing(
    store: CohortStore, url: str
) -> None:
    root = Path(__file__).resolve().parents[3]
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SCORER, url],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # The re-score has deleted the old risks inside its open transaction when it says this.
    assert process.stdout.readline().strip() == "inside"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    ids = [f"P{i:07d}" for i in range(1, 13)]
    assert [store.get_prediction(pid, "fusion-1") for pid in ids] == [0.5] * 12
    assert store.active_model("fusion").version == "fusion-1"
    # The interrupted job can simply be re-run.
    store.write_predictions("fusion-1", ids, np.full(12, 0.25))
    assert [store.get_prediction(pid, "fusion-1") for pid in ids] == [0.25] * 12
