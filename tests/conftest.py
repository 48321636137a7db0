"""Shared, generic test fixtures: a disposable in-memory store, PostgreSQL scratch databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from data.store import CohortStore, make_engine

PG_HOST = "127.0.0.1:5432"
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}/postgres"

# Session fixtures that build one tiny real demo (``tiny_demo``, ``tiny_service``).
pytest_plugins = ["tests.fixtures_demo"]


@pytest.fixture
def memory_store() -> Iterator[CohortStore]:
    """An empty in-memory SQLite cohort store with the schema created."""
    store = CohortStore(make_engine("sqlite://"))
    store.create_schema()
    yield store
    store.engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's ``postgres`` database, or a clear skip."""
    engine = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as err:
        engine.dispose()
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        pytest.skip(
            f"PostgreSQL not reachable at {PG_HOST}: {reason}; .ci/ensure-services starts it"
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_database(postgres_admin: Engine) -> Iterator[Callable[[], str]]:
    """Factory of fresh, uniquely named PostgreSQL databases with the schema; all dropped after."""
    names: list[str] = []

    def create() -> str:
        name = f"riskfusion_test_{uuid.uuid4().hex}"
        with postgres_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            names.append(name)
            # A throwaway database: do not wait for the disk on every commit.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        url = f"postgresql+psycopg://postgres@{PG_HOST}/{name}"
        engine = make_engine(url)
        CohortStore(engine).create_schema()
        engine.dispose()
        return url

    yield create
    with postgres_admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
