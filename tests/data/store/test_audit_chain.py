"""Audit trail: every rewrite path refused, hash chain verified, older stores upgraded."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from data.errors import CohortError
from data.store import AUDIT_GENESIS, AuditEntry, CohortStore, make_engine

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# An event 1 with a back-dated time and another actor, inserted over the real event 1.
_FAKE = (
    "(event_id, at, actor, role, action, detail, prev_hash, event_hash) VALUES "
    "(1, '2020-01-01 00:00:00', 'mallory', 'admin', 'export', '{}', :zero, :zero)"
)
REWRITES = {
    "replace": f"INSERT OR REPLACE INTO audit_events {_FAKE}",
    "replace_into": f"REPLACE INTO audit_events {_FAKE}",
    "upsert": (
        f"INSERT INTO audit_events {_FAKE} ON CONFLICT (event_id) DO UPDATE "
        "SET actor = excluded.actor, at = excluded.at"
    ),
    "upsert_nothing_else": (
        "INSERT INTO audit_events (event_id, at, actor, role, action, detail, prev_hash, "
        "event_hash) SELECT event_id, at, 'mallory', role, action, detail, prev_hash, "
        "event_hash FROM audit_events WHERE event_id = 1 "
        "ON CONFLICT (event_id) DO UPDATE SET actor = excluded.actor"
    ),
    "update": "UPDATE audit_events SET actor = 'mallory' WHERE event_id = 1",
    "delete": "DELETE FROM audit_events WHERE event_id = 1",
}
SQLITE_ONLY = {"replace", "replace_into"}


def entry(number: int = 0, action: str = "view_patient") -> AuditEntry:
    return AuditEntry(
        actor="ana@h.org",
        role="clinician",
        action=action,
        patient_id=f"P{number:07d}",
        model_version="fusion-1",
        detail={"page": "explorer", "n": number, "ratio": 0.1 * number, "note": "é<b>"},
    )


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL per test on each backend (SQLite: a file, as deployed)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    factory: Callable[[], str] = request.getfixturevalue("postgres_database")
    return factory()


@pytest.fixture
def store(url: str) -> Iterator[CohortStore]:
    result = CohortStore(make_engine(url))
    result.create_schema()
    yield result
    result.engine.dispose()


@pytest.mark.parametrize("path", sorted(REWRITES))
def test_every_rewrite_path_is_refused(store: CohortStore, path: str) -> None:
    if path in SQLITE_ONLY and store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite syntax")
    for number in range(3):
        store.record_event(entry(number))
    before = store.audit_events()
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text(REWRITES[path]), {"zero": AUDIT_GENESIS})
    after = store.audit_events()
    assert after.equals(before)
    assert after["actor"].tolist() == ["ana@h.org"] * 3
    assert store.verify_audit_chain().ok


@pytest.mark.parametrize("statement", ["replace", "upsert"])
def test_sqlite_refuses_replace_on_a_plain_connection(store: CohortStore, statement: str) -> None:
    """The refusal is in the database file, not only in the app's connection settings."""
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite file")
    store.record_event(entry())
    path = store.engine.url.database
    assert path is not None
    conn = sqlite3.connect(path)  # no PRAGMA recursive_triggers: the app's hook is not here
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(REWRITES[statement].replace(":zero", "'0'"))
    finally:
        conn.rollback()
        conn.close()
    assert store.audit_events()["actor"].tolist() == ["ana@h.org"]


def test_events_are_chained_and_verify(store: CohortStore) -> None:
    for number in range(5):
        store.record_event(entry(number))
    check = store.verify_audit_chain()
    assert check.ok
    assert check.events == 5
    assert check.head_id == 5
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT event_id, prev_hash, event_hash FROM audit_events ORDER BY event_id")
        ).all()
    assert rows[0].prev_hash == AUDIT_GENESIS
    assert all(b.prev_hash == a.event_hash for a, b in itertools.pairwise(rows))
    assert len({row.event_hash for row in rows}) == 5
    assert store.verify_audit_chain(expect=(5, rows[-1].event_hash)).ok
    assert store.verify_audit_chain(chunk=2).ok  # keyset chunks join up


def _tamper(store: CohortStore, statement: str) -> None:
    """What an attacker with the owner's rights does: lift the triggers, then edit."""
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            for name in ("audit_events_no_update", "audit_events_no_delete"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text(statement))


@pytest.mark.parametrize(
    ("statement", "bad", "words"),
    [
        ("UPDATE audit_events SET actor = 'mallory' WHERE event_id = 2", 2, "was changed"),
        (
            "UPDATE audit_events SET at = '2020-01-01 00:00:00+00' WHERE event_id = 3",
            3,
            "was changed",
        ),
        ("UPDATE audit_events SET detail = '{}' WHERE event_id = 1", 1, "was changed"),
        ("DELETE FROM audit_events WHERE event_id = 3", 4, "does not follow event #2"),
        # SQLite: unreadable ("cannot be read"); PostgreSQL parses 'yesterday' ("was changed").
        ("UPDATE audit_events SET at = 'yesterday' WHERE event_id = 4", 4, "event #4 "),
        ("DELETE FROM audit_events WHERE event_id = 1", 2, "does not follow the start"),
    ],
)
def test_verify_names_the_first_tampered_event(
    store: CohortStore, statement: str, bad: int, words: str
) -> None:
    for number in range(5):
        store.record_event(entry(number))
    _tamper(store, statement)
    check = store.verify_audit_chain()
    assert not check.ok
    assert check.bad_event_id == bad
    assert check.problem is not None
    assert words in check.problem
    assert f"event #{bad}" in check.problem


def test_a_recorded_head_detects_removed_newest_events(store: CohortStore) -> None:
    for number in range(4):
        store.record_event(entry(number))
    head = store.verify_audit_chain()
    assert head.head_id == 4
    assert head.head_hash is not None
    _tamper(store, "DELETE FROM audit_events WHERE event_id = 4")
    assert store.verify_audit_chain().ok  # a shortened chain is still a chain ...
    check = store.verify_audit_chain(expect=(4, head.head_hash))
    assert not check.ok
    assert check.bad_event_id == 4
    assert "is not in the chain" in str(check.problem)


def test_concurrent_writers_do_not_fork_the_chain(url: str) -> None:
    writers, per_writer = 4, 15
    errors: list[BaseException] = []
    setup = CohortStore(make_engine(url))
    setup.create_schema()
    setup.engine.dispose()

    def write(worker: int) -> None:
        store = CohortStore(make_engine(url))
        try:
            for number in range(per_writer):
                store.record_event(entry(worker * 100 + number))
        except BaseException as err:  # reported below, with the worker's number
            errors.append(err)
        finally:
            store.engine.dispose()

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = CohortStore(make_engine(url))
    check = store.verify_audit_chain()
    store.engine.dispose()
    assert check.ok, check.problem
    assert check.events == writers * per_writer


_LEGACY_SQLITE = [
    "CREATE TABLE audit_events (event_id INTEGER NOT NULL PRIMARY KEY, at DATETIME NOT NULL, "
    "actor VARCHAR(256) NOT NULL, role VARCHAR(32) NOT NULL, action VARCHAR(32) NOT NULL, "
    "patient_id VARCHAR(64), model_version VARCHAR(64), detail JSON NOT NULL)",
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
]
_LEGACY_POSTGRES = [
    "CREATE TABLE audit_events (event_id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, "
    "actor VARCHAR(256) NOT NULL, role VARCHAR(32) NOT NULL, action VARCHAR(32) NOT NULL, "
    "patient_id VARCHAR(64), model_version VARCHAR(64), detail JSON NOT NULL)",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
    "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION riskfusion_audit_append_only()",
]


def test_a_store_made_before_the_chain_is_upgraded_and_sealed(url: str) -> None:
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS audit_events"))
        for ddl in _LEGACY_POSTGRES if postgres else _LEGACY_SQLITE:
            conn.execute(text(ddl))
        for number, at in enumerate(("2026-01-01 08:00:00.250000", "2026-01-02 09:30:00")):
            conn.execute(
                text(
                    "INSERT INTO audit_events (at, actor, role, action, patient_id, detail) "
                    "VALUES (:at, 'old@h.org', 'admin', 'export', :pid, :detail)"
                ),
                {"at": at, "pid": f"P{number}", "detail": '{"rows": 3, "x": [1, 2.5]}'},
            )
    store = CohortStore(engine)
    store.create_schema()
    check = store.verify_audit_chain()
    assert check.ok, check.problem
    assert check.events == 2
    store.record_event(entry(7))
    assert store.verify_audit_chain().ok
    assert store.audit_events()["event_id"].tolist() == [3, 2, 1]
    assert store.upgrade_audit_trail() == 0  # idempotent
    # An older app version still running writes an event without hashes: the next append
    # stops (never chains onto it unsealed), and the upgrade seals it.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (event_id, at, actor, role, action, detail) "
                "VALUES (4, '2026-01-03 10:00:00', 'old@h.org', 'admin', 'export', '{}')"
            )
        )
    with pytest.raises(CohortError, match="written before events were hash-chained"):
        store.record_event(entry(8))
    assert store.upgrade_audit_trail() == 1
    store.record_event(entry(8))
    check = store.verify_audit_chain()
    assert check.ok, check.problem
    assert check.events == 5
    sql = REWRITES["upsert"] if postgres else REWRITES["replace"]
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(sql), {"zero": AUDIT_GENESIS})
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(REWRITES["update"]))
    engine.dispose()
