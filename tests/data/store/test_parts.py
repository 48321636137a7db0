"""A version's parts are found by ``parent_version`` and ``kind``, in new and old stores."""

from __future__ import annotations

import pandas as pd
import pytest

from data.store import CohortStore
from fusion.service.cohort import baseline_versions, list_models
from fusion.training.versions import version_parts


def _add(store: CohortStore, version: str, kind: str, parent: str | None) -> None:
    store.register_artifact(
        version,
        kind,
        f"models/{version}",
        "0" * 64,
        metrics={},
        params={},
        parent_version=parent,
        activate=version == "fusion-1",
    )


def _register(store: CohortStore, *, legacy: bool) -> None:
    """One imaging version, one fusion version and its parts (a new or an old store's way)."""
    _add(store, "imaging-1", "imaging", None)
    _add(store, "fusion-1", "fusion", "imaging-1")
    for name in ("ehr", "imaging", "logistic"):  # a baseline of any name is found
        _add(store, f"fusion-1-{name}", f"baseline_{name}", "imaging-1" if legacy else "fusion-1")
    _add(store, "fusion-1-interval", "interval", "fusion-1")
    # Another fusion version on the same imaging nets: its baselines are not fusion-1's.
    _add(store, "fusion-10", "fusion", "imaging-1")
    _add(store, "fusion-10-ehr", "baseline_ehr", "imaging-1" if legacy else "fusion-10")


@pytest.mark.parametrize("legacy", [False, True], ids=["parent-is-fusion", "old-store"])
def test_parts_are_found_through_the_registry(memory_store: CohortStore, legacy: bool) -> None:
    _register(memory_store, legacy=legacy)
    parts = [r.version for r in memory_store.parts_of("fusion-1")]
    assert parts == ["fusion-1-ehr", "fusion-1-imaging", "fusion-1-interval", "fusion-1-logistic"]
    assert baseline_versions(memory_store, "fusion-1") == {
        "ehr": "fusion-1-ehr",
        "imaging": "fusion-1-imaging",
        "logistic": "fusion-1-logistic",
    }
    assert baseline_versions(memory_store, "fusion-10") == {"ehr": "fusion-10-ehr"}
    records = {r.version: r for r in memory_store.list_models()}
    assert [r.version for r in version_parts(records, "fusion-1")] == ["imaging-1", *parts]


def test_a_part_named_like_another_version_is_not_taken_for_its_part(
    memory_store: CohortStore,
) -> None:
    """The version string no longer decides: any name registered with the version is its part."""
    _register(memory_store, legacy=False)
    _add(memory_store, "fusion-1-stray", "baseline_ehr", "imaging-1")
    names = [r.version for r in memory_store.parts_of("fusion-10")]
    assert names == ["fusion-10-ehr"]
    assert "fusion-1-stray" in [r.version for r in memory_store.parts_of("fusion-1")]  # legacy
    _add(memory_store, "logistic-7", "baseline_logistic", "fusion-10")
    assert baseline_versions(memory_store, "fusion-10") == {
        "ehr": "fusion-10-ehr",
        "logistic": "logistic-7",
    }


def test_the_registry_table_lists_each_versions_parts(memory_store, tmp_path) -> None:
    _register(memory_store, legacy=False)
    table = list_models(memory_store, tmp_path)
    row = table.set_index("version").loc["fusion-1"]
    assert isinstance(table, pd.DataFrame)
    assert row["parts"] == "ehr, imaging, interval, logistic"
