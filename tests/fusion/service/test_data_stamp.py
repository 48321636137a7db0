"""Cohort views follow the stored data: a score under the same version is never served stale.

A long-lived service (as the dashboard keeps one per version) is opened on a copy of the tiny
demo in which some patients arrived after training (``late_patients_copy``). ``riskfusion
score`` then scores them under the same active version: the data stamp changes, the test
predictions and performance count them, and they can be returned as similar patients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from data.store import CohortStore, make_engine
from fusion.service.facade import RiskService
from fusion.training.score import score_cohort
from tests.fixtures_demo import late_patients_copy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def scored_later(tiny_demo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The service's views before and after a score of the late patients, same service."""
    settings, _ = tiny_demo
    home, late = late_patients_copy(
        settings.artifacts_dir, tmp_path_factory.mktemp("stamp") / "home"
    )
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    service = RiskService(store, Path(home))
    before = {
        "test": service.test_predictions(),
        "n": service.performance().n,
        "shap": service.test_shap(),
        "stored": service.explanation_metrics()["n_stored"],
        "index": set(service.similarity_index.patient_ids),
    }
    result = score_cohort(store, Path(home), chunk_size=8)
    yield {"service": service, "store": store, "late": late, "before": before, "result": result}
    store.engine.dispose()


def test_a_score_changes_the_data_stamp(tiny_demo, tmp_path: Path) -> None:
    settings, _ = tiny_demo
    home, late = late_patients_copy(settings.artifacts_dir, tmp_path / "home")
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    service = RiskService(store, home)
    before = service.data_stamp()
    assert service.data_stamp() == before  # nothing changed: the same key
    assert score_cohort(store, home, chunk_size=8)["scored"] == len(late)
    stamp = service.data_stamp()
    assert stamp != before
    assert stamp.model_version == before.model_version == service.version
    assert stamp.scoring_batch > before.scoring_batch
    assert stamp.explanations != before.explanations  # the refreshed index
    store.engine.dispose()


def test_test_predictions_and_performance_count_the_scored_patients(scored_later) -> None:
    service, before, late = scored_later["service"], scored_later["before"], scored_later["late"]
    tested = service.store.search_patients(split="test", limit=500)["patient_id"]
    late_test = set(late) & set(tested)
    assert late_test
    assert not late_test & set(before["test"]["patient_id"])
    frame = service.test_predictions()
    assert len(frame) == len(before["test"]) + len(late_test)
    assert late_test <= set(frame["patient_id"])
    assert service.performance().n == before["n"] + len(late_test)


def test_the_service_caches_views_per_stamp(scored_later) -> None:
    service, before = scored_later["service"], scored_later["before"]
    shap = service.test_shap()
    assert shap is not before["shap"]  # held under the old stamp: computed again
    assert service.test_shap() is shap  # same stamp: held
    frame = service.test_predictions()
    frame.loc[:, "risk"] = -1.0  # a caller's edit does not reach the held view
    assert (service.test_predictions()["risk"] >= 0).all()


def test_scored_patients_become_similar_patients(scored_later) -> None:
    service, before, late = scored_later["service"], scored_later["before"], scored_later["late"]
    assert not set(late) & before["index"]
    index = set(service.similarity_index.patient_ids)
    assert set(late) <= index  # late test and training patients are both reference splits
    similar = service.similar_patients(late[0], k=10)
    assert set(similar["patient_id"]) & (set(late) - {late[0]})
    stored = service.store.count_explanations(service.version)
    assert service.explanation_metrics()["n_stored"] == stored == before["stored"] + len(late)


def test_the_refreshed_index_is_registered_for_the_version(scored_later) -> None:
    store, service = scored_later["store"], scored_later["service"]
    record = store.artifact_of(service.version, "explanations")
    assert record is not None
    assert record.version == service.data_stamp().explanations
    assert record.metrics["scoring_batch"] == service.data_stamp().scoring_batch
    assert record.params["refreshed_by"] == "score"
    again = score_cohort(store, service.artifacts_dir)  # nothing new: nothing rebuilt
    assert again["scored"] == 0
    assert again["index_reference"] is None
    assert store.artifact_of(service.version, "explanations") == record
