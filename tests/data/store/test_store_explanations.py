"""Stored explanations: exact float64 round trip, replace semantics, keyset streaming, summaries."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from data.store import CohortStore, ModelRecord
from tests.data.store.test_store import make_tables

VERSION = "fusion-test"


@pytest.fixture
def store(memory_store: CohortStore) -> CohortStore:
    memory_store.write_cohort(make_tables())
    memory_store.register_model(
        ModelRecord(VERSION, "fusion", datetime.now(UTC), "m.txt", "0" * 64, {}, {})
    )
    return memory_store


def _ids(store: CohortStore) -> list[str]:
    return store.search_patients(limit=100)["patient_id"].tolist()


def test_values_round_trip_exactly(store: CohortStore) -> None:
    ids = _ids(store)
    values = np.random.default_rng(0).normal(size=(len(ids), 5)) / 3
    store.write_explanations(VERSION, ids, np.full(len(ids), -1.25), values)
    assert store.count_explanations(VERSION) == len(ids)
    base, row = store.get_explanation(VERSION, ids[4])
    assert base == -1.25
    np.testing.assert_array_equal(row, values[4])  # bit-exact: additivity survives storage
    assert store.get_explanation(VERSION, "NOPE") is None
    assert store.get_explanation("other-version", ids[4]) is None


def test_writing_again_replaces_rows(store: CohortStore) -> None:
    ids = _ids(store)[:3]
    store.write_explanations(VERSION, ids, np.zeros(3), np.zeros((3, 2)))
    store.write_explanations(VERSION, ids[:1], np.ones(1), np.ones((1, 2)))
    assert store.count_explanations(VERSION) == 3
    assert store.get_explanation(VERSION, ids[0])[0] == 1.0


def test_bad_input_writes_nothing(store: CohortStore) -> None:
    ids = _ids(store)[:2]
    with pytest.raises(ValueError, match="one row per patient"):
        store.write_explanations(VERSION, ids, np.zeros(2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        store.write_explanations(VERSION, ids, np.zeros(2), np.full((2, 2), np.nan))
    assert store.count_explanations(VERSION) == 0


def test_streaming_covers_every_row_once_in_id_order(store: CohortStore) -> None:
    ids = _ids(store)
    values = np.arange(len(ids) * 2, dtype=np.float64).reshape(-1, 2)
    store.write_explanations(VERSION, ids, np.zeros(len(ids)), values)
    chunks = list(store.iter_explanations(VERSION, chunk_size=5))
    assert [len(c[0]) for c in chunks] == [5, 5, len(ids) - 10]
    seen = [pid for c in chunks for pid in c[0]]
    assert seen == sorted(ids)
    np.testing.assert_array_equal(np.concatenate([c[2] for c in chunks]), values[np.argsort(ids)])
    test_ids = [pid for c in store.iter_explanations(VERSION, split="test") for pid in c[0]]
    assert test_ids == sorted(store.search_patients(split="test", limit=100)["patient_id"])


def test_summaries_keep_the_requested_order(store: CohortStore) -> None:
    ids = _ids(store)
    store.write_predictions(VERSION, ids[:2], [0.2, 0.7])
    frame = store.patient_summaries([ids[1], "NOPE", ids[0], ids[5]], VERSION)
    assert frame["patient_id"].tolist() == [ids[1], ids[0], ids[5]]
    assert frame["risk"].tolist()[:2] == [0.7, 0.2]
    assert np.isnan(frame["risk"].iloc[2])
    with pytest.raises(ValueError, match="at most 1000"):
        store.patient_summaries([f"P{i}" for i in range(1001)])
