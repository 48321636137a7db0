"""The Model pages follow a ``riskfusion score`` under the same version without a restart.

The performance and bias-audit pages cache their views across reruns and sessions; the cache
key holds the active version's data stamp, so the next run after a score recomputes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import resources
from data.store import CohortStore, make_engine
from fusion.service.facade import RiskService
from fusion.training.score import score_cohort
from tests.fixtures_demo import late_patients_copy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def late_service(tiny_demo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A served copy of the demo with late patients not scored yet (see late_patients_copy)."""
    settings, _ = tiny_demo
    home, late = late_patients_copy(settings.artifacts_dir, tmp_path / "home")
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    service = RiskService(store, home, min_cell=2)  # tiny groups: audited, not suppressed
    with patch("dashboard.resources.get_risk_service", return_value=service):
        yield {"service": service, "home": home, "late": late}
    store.engine.dispose()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_performance_page_counts_patients_scored_since_the_last_view(late_service) -> None:
    service = late_service["service"]
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("dashboard/pages/performance.py").run()
    assert not at.exception, at.exception
    before = len(service.test_predictions())
    assert _metric(at, "Test patients") == f"{before:,}"
    score_cohort(service.store, late_service["home"], chunk_size=8)
    at.run()  # the same server process, its caches warm
    assert not at.exception, at.exception
    after = len(service.test_predictions())
    assert after > before
    assert _metric(at, "Test patients") == f"{after:,}"


def test_fairness_page_audits_again_after_a_score_and_only_then(late_service) -> None:
    service = late_service["service"]
    at = AppTest.from_file(APP, default_timeout=120).run()
    with patch.object(service, "audit", wraps=service.audit) as audit:
        at.switch_page("dashboard/pages/fairness.py").run()
        assert not at.exception, at.exception
        first = audit.call_count
        assert first >= 1
        at.run()  # nothing changed: served from the cache
        assert audit.call_count == first
        score_cohort(service.store, late_service["home"], chunk_size=8)
        at.run()
        assert not at.exception, at.exception
        assert audit.call_count > first  # the score changed the key: audited afresh


def test_cached_getters_recompute_when_the_stamp_changes(late_service) -> None:
    service = late_service["service"]
    threshold = service.model_info().threshold
    stamp = service.data_stamp()
    with patch.object(service, "test_shap", wraps=service.test_shap) as test_shap:
        first = resources.get_performance(service, stamp, threshold)
        shap = resources.get_test_shap(service, stamp)
        assert resources.get_test_shap(service, stamp).features.equals(shap.features)
        assert test_shap.call_count == 1  # the same stamp: cached
        score_cohort(service.store, late_service["home"], chunk_size=8)
        fresh = service.data_stamp()
        assert fresh != stamp
        assert resources.get_performance(service, fresh, threshold).n > first.n
        resources.get_test_shap(service, fresh)
        assert test_shap.call_count == 2  # the new stamp: computed again
    registry = resources.list_models(service, fresh)
    assert "explanations-" in registry.loc[registry["active"], "parts"].iloc[0]
