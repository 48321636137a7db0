"""The data stamp: what a version's cohort views are computed from, in one small query."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text

from data.store import CohortStore, DataStamp, ModelRecord
from tests.data.store.test_store import make_tables

VERSION = "fusion-test"


@pytest.fixture
def store(memory_store: CohortStore) -> CohortStore:
    memory_store.write_cohort(make_tables())
    for version in (VERSION, "fusion-other"):
        memory_store.register_model(
            ModelRecord(version, "fusion", datetime.now(UTC), "m.txt", "0" * 64, {}, {})
        )
    return memory_store


def _ids(store: CohortStore) -> list[str]:
    return store.search_patients(limit=100)["patient_id"].tolist()


def test_every_prediction_write_changes_the_stamp_of_its_version_only(store) -> None:
    ids = _ids(store)
    empty = store.data_stamp(VERSION)
    assert empty == DataStamp(VERSION)
    store.write_predictions(VERSION, ids[:4], np.full(4, 0.5))
    first = store.data_stamp(VERSION)
    assert first.scoring_batch > 0
    store.write_scored(VERSION, ids[4:6], [0.1, 0.2], 0.0, np.zeros((2, 3)))
    second = store.data_stamp(VERSION)
    assert second.scoring_batch > first.scoring_batch
    store.write_predictions("fusion-other", ids[:4], np.full(4, 0.5))
    assert store.data_stamp(VERSION) == second
    store.write_predictions(VERSION, ids[:1], [0.7])  # a rescore: same count, new stamp
    assert store.count_predictions(VERSION) == 6
    assert store.data_stamp(VERSION) != second


def test_the_newest_explanations_artifact_is_in_the_stamp(store) -> None:
    assert store.data_stamp(VERSION).explanations == ""
    for suffix in ("explanations", "explanations-7"):
        store.register_artifact(
            f"{VERSION}-{suffix}",
            "explanations",
            "index.npz",
            "0" * 64,
            metrics={},
            params={},
            parent_version=VERSION,
        )
        assert store.data_stamp(VERSION).explanations == f"{VERSION}-{suffix}"


def test_a_store_from_before_scoring_batches_has_stamp_zero(store) -> None:
    store.write_predictions(VERSION, _ids(store)[:2], [0.1, 0.2])
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE scoring_batches"))
    assert store.data_stamp(VERSION) == DataStamp(VERSION)
    store.create_schema()  # what score, import and train do first
    store.write_predictions(VERSION, _ids(store)[:1], [0.3])
    assert store.data_stamp(VERSION).scoring_batch > 0


def test_explained_patients_and_their_values(store) -> None:
    ids = _ids(store)
    values = np.arange(len(ids) * 2, dtype=np.float64).reshape(-1, 2)
    store.write_explanations(VERSION, ids, np.zeros(len(ids)), values)
    explained = store.explained_patients(VERSION)
    assert explained["patient_id"].tolist() == sorted(ids)
    assert set(explained["split"]) <= {"train", "val", "test"}
    wanted = [ids[3], ids[0]]
    np.testing.assert_array_equal(store.explanation_values(VERSION, wanted), values[[3, 0]])
    with pytest.raises(KeyError, match="NOPE"):
        store.explanation_values(VERSION, ["NOPE"])
