"""Every served interval has low < risk < high; too few patients give no interval and a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.features import mask_modalities
from fusion.interval_folds import (
    binomial_band,
    combinations,
    conformal_quantile,
    minimum_calibration,
    too_few_reason,
)
from fusion.model import FusionClassifier
from fusion.training.bench_intervals import interval_figures_of
from fusion.training.serving_artifacts import build_interval
from fusion.uncertainty import (
    calibrated_intervals,
    fit_interval_calibration,
    measure_interval,
    risk_interval,
)

COLUMNS = {"imaging": ("a",), "genomics": ("b",), "ehr": ("c",)}


def _cohort(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    true_risk = 1 / (1 + np.exp(-(1.5 * X["a"] + X["b"] + rng.normal(size=n) - 1)))
    y = (rng.uniform(size=n) < true_risk).astype(int).to_numpy().copy()
    return X, y, true_risk.to_numpy()


@pytest.fixture(scope="module", params=[0, 1, 2])
def tiny(request):
    """120 patients: 60 train, 30 validation, 30 test (the size that gave 0-0 and 100-100)."""
    X, y, t = _cohort(120, request.param)
    model = FusionClassifier(min_child_samples=5, random_state=0).fit(
        X[:60], y[:60], X_val=X[60:90], y_val=y[60:90]
    )
    with_truth = fit_interval_calibration(model, X[:90], y[:90], t[:90], modality_columns=COLUMNS)
    outcomes_only = fit_interval_calibration(model, X[:90], y[:90], None, modality_columns=COLUMNS)
    return model, (with_truth, outcomes_only), X[90:], y[90:], t[90:]


def test_every_interval_of_a_tiny_cohort_contains_its_own_risk(tiny) -> None:
    model, calibrations, X_test, _, _ = tiny
    for calibration in calibrations:
        assert calibration.available
        assert calibration.n_calibration == 90
        for missing in combinations():
            X = mask_modalities(X_test, COLUMNS, missing)
            risk = model.predict_proba(X)[:, 1]
            low, high = calibrated_intervals(calibration, risk, [missing] * len(X))
            assert np.all((low >= 0) & (low < risk) & (risk < high) & (high <= 1))
            # Never a 0-0 or 100-100 interval.
            assert np.all(high - low > 1e-3)
        served = risk_interval(calibration, model, X_test.iloc[[0]])
        assert served.low < model.predict_proba(X_test.iloc[[0]])[0, 1] < served.high


def test_the_tiny_cohort_measures_strictness_and_coverage(tiny) -> None:
    model, (with_truth, _), X_test, y_test, t_test = tiny
    measured = measure_interval(with_truth, model, X_test, t_test, y_test)
    for entry in measured.values():
        for target in ("true_risk", "event_rate"):
            assert entry[target]["strict_share"] == 1.0
            assert 0 <= entry[target]["coverage_true_risk"] <= 1


@settings(max_examples=60, deadline=None)
@given(risk=st.floats(min_value=1e-9, max_value=1 - 1e-9), missing=st.sampled_from(combinations()))
def test_any_risk_gets_a_strict_interval(tiny, risk: float, missing: tuple[str, ...]) -> None:
    for calibration in tiny[1]:
        low, high = calibrated_intervals(calibration, [risk], [missing])
        assert low[0] < risk < high[0]


def test_too_few_patients_give_no_interval_and_say_why() -> None:
    X, y, t = _cohort(8, 4)
    y[:2], y[2:] = 1, 0
    model = FusionClassifier(n_estimators=5, min_child_samples=2).fit(X, y)
    calibration = fit_interval_calibration(model, X, y, t, modality_columns=COLUMNS)
    assert not calibration.available
    assert calibration.reason == (
        "no interval: only 8 patients to calibrate a 90% interval; needs at least 9"
    )
    with pytest.raises(ValueError, match="only 8 patients"):
        calibrated_intervals(calibration, [0.3], [()])
    with pytest.raises(ValueError, match="needs at least 9"):
        risk_interval(calibration, model, X.iloc[[0]])
    assert measure_interval(calibration, model, X, t) == {}


def test_a_single_event_gives_no_interval_and_says_why() -> None:
    X, y, _ = _cohort(40, 5)
    y[:] = 0
    y[0] = 1
    model = FusionClassifier(n_estimators=5, min_child_samples=2).fit(X, y)
    calibration = fit_interval_calibration(model, X, y, None, modality_columns=COLUMNS)
    assert not calibration.available
    assert calibration.reason.startswith("no interval: only 40 patients")
    assert "rarer outcome has 1 patients" in calibration.reason


def test_an_unavailable_interval_is_registered_with_its_reason(memory_store, tmp_path) -> None:
    X, y, t = _cohort(12, 6)
    y[:3], y[3:] = 1, 0
    model = FusionClassifier(n_estimators=5, min_child_samples=2).fit(X[:6], y[:6])
    metrics = build_interval(
        memory_store,
        "fusion-small",
        model,
        X[:4],
        y[:4],
        X[6:],
        t[6:],
        tmp_path / "small",
        tmp_path,
        X_val=X[4:6],
        y_val=y[4:6],
        true_risk_val=t[4:6],
        true_risk_train=t[:4],
    )
    assert metrics["available"] is False
    assert metrics["reason"] == too_few_reason(6, 0.9)
    assert "test_mean_width" not in metrics
    record = next(r for r in memory_store.list_models() if r.version == "fusion-small-interval")
    assert record.metrics["reason"] == metrics["reason"]
    figures = interval_figures_of(memory_store, "fusion-small")
    assert (figures["available"], figures["reason"]) == (False, metrics["reason"])
    assert "test_mean_width" not in figures


@pytest.mark.parametrize(("level", "needed"), [(0.9, 9), (0.95, 19), (0.5, 1)])
def test_the_minimum_is_where_the_conformal_rank_first_exists(level, needed) -> None:
    assert minimum_calibration(level) == needed
    conformal_quantile(np.ones(needed), level)
    if needed > 1:
        with pytest.raises(ValueError, match=f"needs at least {needed}"):
            conformal_quantile(np.ones(needed - 1), level)


def test_the_binomial_band_is_exact_and_never_degenerate() -> None:
    low, high = binomial_band([0.5] * 20, [0] * 20, [0.0, 0.5, 1.0], level=0.9)
    assert low == (0.0, 0.0, 0.0)
    # 0 events of 20: the exact upper limit is 1 - 0.05 ** (1 / 20).
    assert high[1] == pytest.approx(1 - 0.05 ** (1 / 20))
    low, high = binomial_band([0.5] * 20, [1] * 20, [0.5], level=0.9)
    assert (low[0], high[0]) == (pytest.approx(0.05 ** (1 / 20)), 1.0)
