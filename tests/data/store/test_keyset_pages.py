"""Keyset pages of the store: every patient once and in order, no OFFSET, plans on indexes.

The picker and the audit trail page through the store by key (``after`` / ``before`` an id,
``from_end``), never by skipping rows; SQLite's plans read them from the covering indexes
without sorting, and a store made before those indexes gets them when it is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, text

from data.store import AuditEntry, CohortStore, make_engine
from tests.data.store.test_store import make_tables

N = 60
PAGE = 7
SPLITS = [None, "train", "val", "test"]
QUERIES = ["", "P00000", "p000002", "P0000013"]


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def cohort(memory_store: CohortStore) -> CohortStore:
    memory_store.write_cohort(make_tables("P", N))
    return memory_store


def _fresh_cohort(request: pytest.FixtureRequest, backend: str) -> Iterator[CohortStore]:
    if backend == "sqlite":
        url = "sqlite://"
    else:
        factory: Callable[[], str] = request.getfixturevalue("postgres_database")
        url = factory()
    store = CohortStore(make_engine(url))
    store.create_schema()
    store.write_cohort(make_tables("P", N))
    yield store
    store.engine.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_cohort(request: pytest.FixtureRequest) -> Iterator[CohortStore]:
    """The cohort on each backend, shared by the tests that only read it."""
    yield from _fresh_cohort(request, request.param)


@pytest.fixture(params=BACKENDS)
def own_cohort(request: pytest.FixtureRequest) -> Iterator[CohortStore]:
    """The cohort on each backend, for one test that writes to it."""
    yield from _fresh_cohort(request, request.param)


def _expected(store: CohortStore, query: str, split: str | None) -> list[str]:
    """Every matching id, read in one go (what the pages must add up to)."""
    return store.search_patients(query, split=split, limit=1000)["patient_id"].tolist()


def _forwards(store: CohortStore, query: str, split: str | None) -> list[list[str]]:
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = store.search_patients(query, split=split, limit=PAGE, after=after)
        ids = page["patient_id"].tolist()
        if not ids:
            return pages
        pages.append(ids)
        after = ids[-1]


def _backwards(store: CohortStore, query: str, split: str | None) -> list[list[str]]:
    pages: list[list[str]] = []
    page = store.search_patients(query, split=split, limit=PAGE, from_end=True)
    while not page.empty:
        ids = page["patient_id"].tolist()
        pages.append(ids)
        page = store.search_patients(query, split=split, limit=PAGE, before=ids[0])
    return pages


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (and its parameters) sent to the database inside the block."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def skipped_rows(statement: str, parameters: Any) -> int:
    """Rows a statement skips with OFFSET (SQLAlchemy's SQLite dialect always binds one, 0)."""
    clause = statement.upper().rsplit("OFFSET", 1)
    if len(clause) == 1:
        return 0
    value = clause[1].strip()
    return int(parameters[-1] if value == "?" else value)


def _plans(engine: Engine, read: Callable[[], object]) -> list[str]:
    """SQLite's query plan of each SELECT that ``read`` sends, one string per statement."""
    with _statements(engine) as seen:
        read()
    plans = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append(" | ".join(str(row[-1]) for row in rows))
    assert plans
    return plans


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("query", QUERIES)
def test_pages_forwards_and_backwards_list_every_patient_once_in_order(
    shared_cohort: CohortStore, query: str, split: str | None
) -> None:
    cohort = shared_cohort
    expected = _expected(cohort, query, split)
    forwards = _forwards(cohort, query, split)
    assert [pid for page in forwards for pid in page] == expected
    assert all(len(page) == PAGE for page in forwards[:-1])
    backwards = _backwards(cohort, query, split)
    assert [pid for page in reversed(backwards) for pid in page] == expected
    assert all(len(page) == PAGE for page in backwards[:-1])
    assert all(page == sorted(page) for page in backwards)  # each page in id order


def test_the_last_page_is_read_from_the_end_and_nothing_follows_it(
    shared_cohort: CohortStore,
) -> None:
    cohort = shared_cohort
    ids = _expected(cohort, "", "test")
    last = cohort.search_patients(split="test", limit=PAGE, from_end=True)["patient_id"]
    assert last.tolist() == ids[-PAGE:]
    assert cohort.search_patients(split="test", limit=PAGE, after=ids[-1]).empty
    assert cohort.search_patients(split="test", limit=PAGE, before=ids[0]).empty
    # A short last page (what is left after the full pages) ends the list as well.
    assert (
        cohort.search_patients(split="test", limit=3, from_end=True)["patient_id"].tolist()
        == ids[-3:]
    )


def test_patients_added_between_page_views_are_neither_repeated_nor_skipped(
    own_cohort: CohortStore,
) -> None:
    cohort = own_cohort
    before = _expected(cohort, "", None)
    first = cohort.search_patients(limit=PAGE)["patient_id"].tolist()
    second = cohort.search_patients(limit=PAGE, after=first[-1])["patient_id"].tolist()
    # New patients sort before the pages already seen (A...) and after them (Z...).
    cohort.write_cohort(make_tables("A", 12, seed=1))
    cohort.write_cohort(make_tables("Z", 12, seed=2))
    rest: list[str] = []
    after = second[-1]
    while not (page := cohort.search_patients(limit=PAGE, after=after)).empty:
        rest += page["patient_id"].tolist()
        after = rest[-1]
    seen = first + second + rest
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert seen == before + [f"Z{i:07d}" for i in range(1, 13)]
    # Paging back from where the user is reaches the new patients before the first page.
    back = cohort.search_patients(limit=PAGE, before=first[0])["patient_id"].tolist()
    assert back == [f"A{i:07d}" for i in range(6, 13)]


def test_a_page_has_one_anchor(cohort: CohortStore) -> None:
    with pytest.raises(ValueError, match=r"one anchor; got \['after', 'from_end'\]"):
        cohort.search_patients(after="P0000001", from_end=True)


def test_no_page_read_skips_rows_with_offset(shared_cohort: CohortStore) -> None:
    cohort = shared_cohort
    version_free = [
        {},
        {"after": "P0000020"},
        {"before": "P0000040"},
        {"from_end": True},
    ]
    with _statements(cohort.engine) as seen:
        for split in SPLITS:
            for anchor in version_free:
                cohort.search_patients("P", split=split, limit=PAGE, **anchor)
        cohort.audit_events(limit=5, before_id=10, action="view_patient")
    selects = [(sql, parameters) for sql, parameters in seen if "SELECT" in sql.upper()]
    assert len(selects) == 4 * len(version_free) + 1
    assert all("LIMIT" in sql.upper() for sql, _ in selects)
    assert [skipped_rows(*select) for select in selects] == [0] * len(selects)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    "anchor", [{}, {"after": "P0000020"}, {"before": "P0000040"}, {"from_end": True}]
)
def test_sqlite_reads_picker_pages_from_an_index_without_sorting(
    cohort: CohortStore, split: str | None, anchor: dict[str, Any]
) -> None:
    plans = _plans(
        cohort.engine,
        lambda: cohort.search_patients("P00000", split=split, limit=PAGE, **anchor),
    )
    for plan in plans:
        assert "TEMP B-TREE" not in plan, plan
        index = (
            "COVERING INDEX ix_patients_split_id" if split else "INDEX sqlite_autoindex_patients_1"
        )
        assert f"SEARCH patients USING {index}" in plan, plan


@pytest.mark.parametrize("split", SPLITS)
def test_sqlite_counts_a_split_from_an_index(cohort: CohortStore, split: str | None) -> None:
    for plan in _plans(cohort.engine, lambda: cohort.count_patients(split, "P00000")):
        assert "COVERING INDEX" in plan or "USING INDEX sqlite_autoindex" in plan, plan


@pytest.mark.parametrize(
    ("kwargs", "index"),
    [
        ({"action": "view_patient"}, "ix_audit_events_action_id"),
        ({"patient_id": "P0000001"}, "ix_audit_events_patient_id"),
    ],
)
def test_sqlite_reads_filtered_audit_pages_from_an_index_without_sorting(
    memory_store: CohortStore, kwargs: dict[str, str], index: str
) -> None:
    for action in ("view_patient", "export", "view_patient"):
        memory_store.record_event(
            AuditEntry(actor="ana", role="admin", action=action, patient_id="P0000001")
        )
    assert len(memory_store.audit_events(**kwargs)) >= 2
    for before_id in (None, 3):
        plans = _plans(
            memory_store.engine,
            lambda before_id=before_id: memory_store.audit_events(
                limit=5, before_id=before_id, **kwargs
            ),
        )
        for plan in plans:
            assert "TEMP B-TREE" not in plan, plan
            assert f"INDEX {index}" in plan, plan


def test_a_store_made_before_the_indexes_gets_them_when_opened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = CohortStore(make_engine(url))
    old.create_schema()
    new_indexes = (
        "ix_patients_split_id",
        "ix_audit_events_action_id",
        "ix_audit_events_patient_id",
    )
    with old.engine.begin() as conn:
        for name in new_indexes:
            conn.execute(text(f"DROP INDEX {name}"))
    old.engine.dispose()

    store = CohortStore(make_engine(url))
    assert sorted(store.upgrade_indexes()) == sorted(new_indexes)
    assert store.upgrade_indexes() == []  # idempotent: nothing left to create
    present = {
        index["name"]
        for table in ("patients", "audit_events")
        for index in inspect(store.engine).get_indexes(table)
    }
    assert set(new_indexes) <= present
    store.engine.dispose()

    reopened = CohortStore(make_engine(url))
    with reopened.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_patients_split_id"))
    reopened.create_schema()  # what the CLI runs on an existing store
    assert "ix_patients_split_id" in {
        index["name"] for index in inspect(reopened.engine).get_indexes("patients")
    }
    reopened.engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("anchor", [{}, {"after": "P0000020"}, {"from_end": True}])
def test_postgres_reads_a_split_page_from_its_index_without_sorting(
    postgres_database: Callable[[], str], anchor: dict[str, Any]
) -> None:
    store = CohortStore(make_engine(postgres_database()))
    store.create_schema()
    store.write_cohort(make_tables("P", N))
    with _statements(store.engine) as seen:
        store.search_patients(split="test", limit=PAGE, **anchor)
    statement, parameters = seen[-1]
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("SET enable_seqscan = off")  # a 60-row table: force the choice
        plan = "\n".join(
            str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
    store.engine.dispose()
    assert "ix_patients_split_id" in plan, plan
    assert "Sort" not in plan, plan
