"""Property-based tests (hypothesis) of the store's write paths: random bad input gets a clear
error and leaves the store exactly as it was; good input is stored exactly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from data.errors import CohortError
from data.store import CohortStore, CohortTables, make_engine
from tests.data.store.test_store import make_tables, model_record

IDS = [f"P{i:07d}" for i in range(1, 13)]
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def snapshot(store: CohortStore) -> dict[str, object]:
    """Everything a failed write could have touched."""
    predictions = {pid: store.get_prediction(pid, "fusion-1") for pid in IDS}
    return {"patients": store.count_patients(), "predictions": predictions}


@pytest.fixture(scope="module")
def store() -> CohortStore:
    result = CohortStore(make_engine("sqlite://"))
    result.create_schema()
    result.write_cohort(make_tables("P"))
    result.register_model(model_record("fusion-1"))
    result.write_predictions("fusion-1", IDS, np.full(12, 0.5))
    return result


risks = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(allow_nan=True, allow_infinity=True),
)
patient_ids = st.one_of(st.sampled_from(IDS), st.text(min_size=1, max_size=9))


@PROPERTY_SETTINGS
@given(
    ids=st.lists(patient_ids, min_size=0, max_size=8),
    values=st.lists(risks, min_size=0, max_size=8),
    version=st.sampled_from(["fusion-1", "fusion-unregistered"]),
)
def test_write_predictions_is_all_or_nothing(
    store: CohortStore, ids: list[str], values: list[float], version: str
) -> None:
    before = snapshot(store)
    try:
        store.write_predictions(version, ids, values)
    except (ValueError, CohortError) as err:
        message = str(err)  # a message that says what to do, not a bare exception
        assert snapshot(store) == before
        assert len(message) > 20
        return
    # Accepted: exactly what was given is stored, and nothing else changed.
    assert version == "fusion-1"
    after = snapshot(store)
    expected = dict(before["predictions"])  # type: ignore[call-overload]
    expected.update(dict(zip(ids, values, strict=True)))
    assert after["predictions"] == expected
    store.write_predictions("fusion-1", IDS, np.full(12, 0.5))  # restore for the next example


def corrupt(tables: CohortTables, how: str, row: int) -> CohortTables:
    """One kind of damage at one row of a valid new cohort."""
    patients = tables.patients.copy()
    if how == "duplicate_id":
        patients.loc[row, "patient_id"] = patients.loc[(row + 1) % len(patients), "patient_id"]
        return replace(tables, patients=patients)
    if how == "existing_id":
        patients.loc[row, "patient_id"] = "P0000001"
        return replace(tables, patients=patients)
    if how == "bad_split":
        patients.loc[row, "split"] = "holdout"
        return replace(tables, patients=patients)
    if how == "missing_column":
        return replace(tables, outcomes=tables.outcomes.drop(columns="label"))
    if how == "orphan_outcome":
        outcomes = tables.outcomes.copy()
        outcomes.loc[row, "patient_id"] = "NOBODY"
        return replace(tables, outcomes=outcomes)
    images = tables.images.copy()  # "orphan_image"
    images.loc[row, "patient_id"] = "NOBODY"
    return replace(tables, images=images)


@PROPERTY_SETTINGS
@given(
    how=st.sampled_from(
        [
            "duplicate_id",
            "existing_id",
            "bad_split",
            "missing_column",
            "orphan_outcome",
            "orphan_image",
        ]
    ),
    row=st.integers(min_value=0, max_value=11),
)
def test_a_damaged_cohort_is_refused_whole(store: CohortStore, how: str, row: int) -> None:
    before = snapshot(store)
    with pytest.raises((ValueError, IntegrityError)):
        store.write_cohort(corrupt(make_tables("N"), how, row))
    assert snapshot(store) == before
    assert store.search_patients("N", limit=5).empty
    assert isinstance(store.load_patient_frame(), pd.DataFrame)
