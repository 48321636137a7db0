"""Shared, generic test fixtures (cosmicpython style: a disposable in-memory store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from data.store import CohortStore, make_engine

# Session fixtures that build one tiny real demo (``tiny_demo``, ``tiny_service``).
pytest_plugins = ["tests.fixtures_demo"]


@pytest.fixture
def memory_store() -> Iterator[CohortStore]:
    """An empty in-memory SQLite cohort store with the schema created."""
    store = CohortStore(make_engine("sqlite://"))
    store.create_schema()
    yield store
    store.engine.dispose()
