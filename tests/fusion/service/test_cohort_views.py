"""Cohort pages from stored aggregates: read by key, never stale, suppression kept.

Each test works on its own copy of the tiny demo, whose training stored the default views
(``train`` calls :func:`fusion.service.cohort_views.precompute`). A page's reads are checked by
making the raw reads of the test split fail: a stored view needs none of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.store import CohortStore, make_engine
from fusion.admin.access import AccessDeniedError, Identity
from fusion.evaluation.performance import evaluate_performance
from fusion.evaluation.risk_histograms import RiskHistograms, performance_at
from fusion.service import cohort
from fusion.service.aggregate_codec import decode, encode
from fusion.service.cohort_views import precompute
from fusion.service.facade import RiskService

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

FLOOR = 3  # the tiny demo's test split is ~24 patients: a floor of 11 hides every group
ADMIN = Identity("a@h.org", "admin", "local")
RESEARCHER = Identity("r@h.org", "researcher", "local")


class RawReads:
    """Counts (or refuses) the store's raw reads of the test split."""

    def __init__(self, store: CohortStore, monkeypatch: pytest.MonkeyPatch, *, refuse: bool):
        self.calls = 0
        for name in ("split_predictions", "load_patient_frame", "split_logits"):
            original = getattr(store, name)

            def read(*args: object, _original=original, **kwargs: object) -> object:
                self.calls += 1
                if refuse:
                    raise AssertionError("a stored cohort view read the test split's raw rows")
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, read)


@pytest.fixture
def home(tiny_demo, tmp_path: Path) -> Path:
    settings, _ = tiny_demo
    target = tmp_path / "home"
    shutil.copytree(settings.artifacts_dir, target, ignore=shutil.ignore_patterns("*.db-shm"))
    result = precompute(open_service(target).cohort)  # as score does, at this floor
    assert result["views"] > 10
    return target


def open_service(home: Path) -> RiskService:
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    return RiskService(store, home, min_cell=FLOOR)


def page_views(service: RiskService, identity: Identity) -> dict[str, object]:
    """What the performance and bias-audit pages ask for with their default widgets."""
    info = service.model_info()
    floor = service.min_cell_floor
    choice = service.threshold_choice(round(info.threshold, 2), identity, floor)
    report = service.performance(threshold=choice.threshold)
    if choice.curve_cuts is not None:
        report = service.performance_through(report, choice.curve_cuts)
    by = ("sex",)
    audit_choice = service.threshold_choice(round(info.threshold, 2), identity, floor, by)
    audit = service.audit(by, threshold=audit_choice.threshold, min_cell=floor, identity=identity)
    if audit_choice.curve_cuts is None:
        curves = service.group_curves(
            by, min_cell=floor, identity=identity, threshold=audit_choice.threshold
        )
    else:
        curves = service.group_curves(
            by, min_cell=floor, identity=identity, cut_points=audit_choice.curve_cuts
        )
    return {
        "report": report,
        "shap": service.test_shap(),
        "audit": audit,
        "curves": curves,
        "reliance": service.modality_reliance(by, min_cell=floor, identity=identity),
    }


@pytest.mark.parametrize("identity", [ADMIN, RESEARCHER], ids=["admin", "researcher"])
def test_cold_pages_read_stored_views_only(
    home: Path, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = open_service(home)  # computes every view from the rows, stores nothing
    monkeypatch.setattr(fresh.store, "read_aggregates", lambda stamp, kinds: {})
    monkeypatch.setattr(fresh.store, "write_aggregates", lambda stamp, payloads: None)
    computed = page_views(fresh, identity)
    service = open_service(home)  # a new process: nothing cached, views stored by precompute
    RawReads(service.store, monkeypatch, refuse=True)
    stored = page_views(service, identity)
    pd.testing.assert_frame_equal(stored["report"].ablation, computed["report"].ablation)
    pd.testing.assert_frame_equal(stored["report"].roc, computed["report"].roc)
    pd.testing.assert_frame_equal(stored["audit"].by_group, computed["audit"].by_group)
    pd.testing.assert_frame_equal(stored["curves"][1], computed["curves"][1])
    pd.testing.assert_frame_equal(stored["reliance"], computed["reliance"])
    pd.testing.assert_frame_equal(stored["shap"].beeswarm, computed["shap"].beeswarm)
    assert stored["shap"].per_patient.empty  # no per-patient table is stored


def test_stored_views_equal_a_computation_from_the_rows(home: Path) -> None:
    service = open_service(home)
    frame = service.test_predictions()
    threshold = service.model_info().threshold
    expected = evaluate_performance(
        frame, model_version=service.version, threshold=threshold, min_cell=service.min_cell_floor
    )
    report = open_service(home).performance()
    for name in ("ablation", "calibration", "confusion", "roc", "pr", "curves"):
        pd.testing.assert_frame_equal(getattr(report, name), getattr(expected, name))
    assert report.n == len(frame)
    assert report.brier == expected.brier


def test_codec_round_trips_every_view(home: Path) -> None:
    service = open_service(home)
    report = service.performance()
    audit = service.audit(["sex", "site"])
    shap = service.test_shap()
    for value in (report, audit, shap):
        back = decode(encode(value))
        assert type(back) is type(value)
    back = decode(encode(audit))
    pd.testing.assert_frame_equal(back.by_group, audit.by_group)
    pd.testing.assert_frame_equal(back.hidden, audit.hidden)
    assert back.attributes == audit.attributes
    assert back.threshold == audit.threshold
    pd.testing.assert_series_equal(decode(encode(shap)).modalities, shap.modalities)
    pd.testing.assert_frame_equal(decode(encode(report)).confusion, report.confusion)


def test_a_newer_stamp_recomputes_and_drops_old_views(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = open_service(home)
    before = service.performance()
    store = service.store
    stamp = service.data_stamp()
    frame = service.test_predictions()
    # A rescore of the test split (risks moved towards the outcome) writes a scoring batch.
    moved = np.clip(0.5 * frame["risk"] + 0.5 * frame["label"], 0, 1)
    store.write_predictions(service.version, frame["patient_id"].tolist(), moved)
    assert service.data_stamp() != stamp
    reads = RawReads(store, monkeypatch, refuse=False)
    after = service.performance()  # the same long-lived service
    assert reads.calls >= 1  # computed afresh from the new rows
    assert (
        after.ablation.loc["Fusion (all modalities)", "auroc"]
        > before.ablation.loc["Fusion (all modalities)", "auroc"]
    )
    # Stored under the new stamp: a new process reads it without the rows.
    again = open_service(home)
    RawReads(again.store, monkeypatch, refuse=True)
    assert again.performance().ablation.equals(after.ablation)
    precompute(open_service(home).cohort)
    from sqlalchemy import select

    from data.store.aggregates import stamp_key
    from data.store.schema import CohortAggregate

    with store.engine.connect() as conn:
        keys = set(conn.execute(select(CohortAggregate.stamp_key).distinct()).scalars())
    assert keys == {stamp_key(service.data_stamp())}


def test_suppression_floor_is_kept_by_role(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = open_service(home)
    floor = service.min_cell_floor
    assert service.performance(identity=RESEARCHER).min_cell == floor
    raised = service.audit(["sex"], min_cell=floor + 5, identity=RESEARCHER)
    assert raised.min_cell == floor + 5
    small = raised.by_group.loc[raised.by_group["suppressed"]]
    assert small[["n", "auroc"]].isna().all().all()
    shown = raised.by_group.loc[~raised.by_group["suppressed"], "n"]
    assert (shown >= floor + 5).all()
    with pytest.raises(AccessDeniedError):
        service.audit(["sex"], min_cell=floor - 1, identity=RESEARCHER)
    # The raised floor's view is stored too: a new process reads it without the rows.
    again = open_service(home)
    RawReads(again.store, monkeypatch, refuse=True)
    assert again.audit(["sex"], min_cell=floor + 5, identity=RESEARCHER).min_cell == floor + 5


def test_custom_threshold_comes_from_histograms(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm = open_service(home)
    frame = warm.test_predictions()
    service = open_service(home)
    RawReads(service.store, monkeypatch, refuse=True)
    report = service.performance(threshold=0.3, identity=ADMIN)
    expected = evaluate_performance(
        frame, model_version=warm.version, threshold=0.3, min_cell=FLOOR
    )
    assert report.threshold == 0.3
    assert report.min_cell == FLOOR
    pd.testing.assert_frame_equal(report.confusion, expected.confusion)
    for column in ("auroc", "brier", "tpr", "fpr"):  # points (and what is hidden) exact
        np.testing.assert_allclose(report.ablation[column], expected.ablation[column])


def test_histograms_give_exact_counts_on_the_grid() -> None:
    rng = np.random.default_rng(0)
    risk = rng.random(500)
    risk[:3] = [0.3, 1.0, 0.0]  # edges themselves
    y = (rng.random(500) < risk).astype(int)
    frame = pd.DataFrame({"label": y, "risk": risk})
    histograms = RiskHistograms.from_frame(frame)
    for threshold in (0.0, 0.01, 0.3, 0.55, 0.999, 1.0):
        cells = histograms.cells("risk", threshold)
        flagged = risk >= threshold
        assert cells[1, 1] == (flagged & (y == 1)).sum()
        assert cells[0, 1] == (flagged & (y == 0)).sum()
    assert not RiskHistograms.exact_at(0.3001)
    report = evaluate_performance(frame, model_version="v", threshold=0.5, min_cell=0)
    with pytest.raises(ValueError, match="not a multiple"):
        performance_at(report, histograms, 0.3001)


def test_views_of_the_service_match_the_cohort_functions(home: Path) -> None:
    service = open_service(home)
    frame = service.test_predictions()
    threshold = service.model_info().threshold
    floor = service.min_cell_floor
    expected = cohort.audit(
        frame,
        ("site",),
        threshold=threshold,
        reference=None,
        min_cell=floor,
        n_resamples=200,
        random_state=0,
    )
    got = service.audit(["site"])
    pd.testing.assert_frame_equal(got.by_group, expected.by_group)
