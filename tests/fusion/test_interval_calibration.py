"""Calibrated risk interval: covers what it claims, per missing modality, SHA-checked file.

The interval is calibrated out of fold on a calibration set (train + validation in a build):
the model is refitted in folds inside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.errors import ArtifactIntegrityError
from fusion.features import mask_modalities
from fusion.interval_calibration import load_calibration, save_calibration
from fusion.model import FusionClassifier
from fusion.training.bench_intervals import interval_figures_of
from fusion.training.serving_artifacts import build_interval
from fusion.uncertainty import (
    calibrated_intervals,
    fit_interval_calibration,
    interval_coverage,
    measure_interval,
    missing_key,
    risk_interval,
)

COLUMNS = {"imaging": ("a",), "genomics": ("b",), "ehr": ("c",)}


def _cohort(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Inputs a, b, c plus an unobserved term: the true risk spreads around any prediction."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    hidden = rng.normal(size=n)
    true_risk = 1 / (1 + np.exp(-(1.5 * X["a"] + X["b"] + 0.5 * X["c"] + hidden - 1)))
    y = (rng.uniform(size=n) < true_risk).astype(int).to_numpy()
    return X, y, true_risk.to_numpy()


@pytest.fixture(scope="module")
def setting():
    X, y, t = _cohort(1500, 0)
    model = FusionClassifier(n_estimators=60, random_state=0).fit(X, y)
    X_test, _, t_test = _cohort(1500, 2)
    calibration = fit_interval_calibration(model, X, y, t, modality_columns=COLUMNS)
    return model, calibration, X_test, t_test


def test_true_risk_interval_covers_the_true_risk_near_its_level(setting) -> None:
    model, calibration, X_test, t_test = setting
    assert calibration.target == "true_risk"
    for missing in [(), ("imaging",), ("imaging", "genomics", "ehr")]:
        X = mask_modalities(X_test, COLUMNS, missing)
        low, high = calibrated_intervals(
            calibration, model.predict_proba(X)[:, 1], [missing] * len(X)
        )
        assert np.all((low >= 0) & (low <= high) & (high <= 1))
        # 1,500 test rows: the binomial SD of the coverage is 0.008.
        assert interval_coverage(low, high, t_test) == pytest.approx(0.9, abs=0.035)
    # Without the strongest input the model knows less, so the calibrated interval is wider.
    assert calibration.logit_halfwidths["imaging"] > calibration.logit_halfwidths["none"]


def test_a_row_with_a_missing_modality_uses_that_modality_calibration(setting) -> None:
    model, calibration, X_test, _ = setting
    row = mask_modalities(X_test.iloc[[0]], COLUMNS, ["imaging"])
    interval = risk_interval(calibration, model, row)
    assert interval.missing == ("imaging",)
    assert interval.target == "true_risk"
    assert interval.method == "cross_conformal_logit"
    low, high = calibrated_intervals(
        calibration, model.predict_proba(row)[:, 1], [("imaging",)], target="true_risk"
    )
    assert (interval.low, interval.high) == pytest.approx((low[0], high[0]))
    assert "true risk" in interval.describe()
    full = risk_interval(calibration, model, X_test.iloc[[0]])
    assert full.missing == ()
    with pytest.raises(ValueError, match="one patient's row"):
        risk_interval(calibration, model, X_test.iloc[:2])


def test_without_ground_truth_the_interval_is_for_the_event_rate(setting) -> None:
    model, _, X_test, t_test = setting
    X_val, y_val, _ = _cohort(600, 1)
    calibration = fit_interval_calibration(model, X_val, y_val, None, modality_columns=COLUMNS)
    assert calibration.target == "event_rate"
    assert not calibration.logit_halfwidths
    interval = risk_interval(calibration, model, X_test.iloc[[0]])
    assert interval.target == "event_rate"
    assert "event rate among patients with this predicted risk" in interval.describe()
    with pytest.raises(ValueError, match="no ground truth"):
        calibrated_intervals(calibration, [0.2], [()], target="true_risk")
    measured = measure_interval(calibration, model, X_test, t_test)
    assert len(measured) == 8
    assert {"none", "imaging", "imaging+genomics+ehr"} <= set(measured)
    # The band is about the group's event rate, so it is far narrower than the spread of
    # the individual true risks and misses most of them: the reason it claims no more.
    assert measured["none"]["event_rate"]["coverage_true_risk"] < 0.6
    # It does contain the event rate of similar-risk patients about as often as it says
    # (estimated from 40 test neighbours' true risk, itself uncertain by a few points).
    assert measured["none"]["event_rate"]["coverage_event_rate"] == pytest.approx(0.9, abs=0.07)


def test_calibration_round_trips_and_refuses_a_modified_file(setting, tmp_path) -> None:
    model, calibration, X_test, _ = setting
    path = tmp_path / "interval" / "calibration.json"
    sha = save_calibration(calibration, path)
    loaded = load_calibration(path, expected_sha256=sha)
    assert loaded == calibration
    row = X_test.iloc[[3]]
    assert risk_interval(loaded, model, row) == risk_interval(calibration, model, row)
    path.write_text(path.read_text().replace('"level": 0.9', '"level": 0.5'))
    with pytest.raises(ArtifactIntegrityError, match="SHA-256"):
        load_calibration(path, expected_sha256=sha)


def test_arguments_are_validated(setting) -> None:
    model = setting[0]
    X_val, y_val, t_val = _cohort(40, 3)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        fit_interval_calibration(model, X_val, y_val, t_val, modality_columns=COLUMNS, level=1)
    with pytest.raises(ValueError, match="Unknown modalities"):
        fit_interval_calibration(model, X_val, y_val, t_val, modality_columns={"scan": ("a",)})
    with pytest.raises(ValueError, match="Unknown modalities"):
        missing_key(["scan"])
    assert missing_key(["ehr", "imaging"]) == "imaging+ehr"


def test_build_interval_calibrates_out_of_fold_and_registers_its_metrics(
    setting, memory_store, tmp_path
) -> None:
    _, _, X_test, t_test = setting
    X_train, y_train, t_train = _cohort(300, 4)
    X_val, y_val, t_val = _cohort(100, 5)
    # As in a build: the served model is fitted on train, early-stopped on validation.
    model = FusionClassifier(random_state=0).fit(X_train, y_train, X_val=X_val, y_val=y_val)
    metrics = build_interval(
        memory_store,
        "fusion-b",
        model,
        X_train,
        y_train,
        X_test,
        t_test,
        tmp_path / "b",
        tmp_path,
        X_val=X_val,
        y_val=y_val,
        true_risk_val=t_val,
        true_risk_train=t_train,
        y_test=np.zeros(len(X_test), dtype=int),
    )
    assert metrics["target"] == "true_risk"
    assert metrics["available"] is True
    assert metrics["reason"] == ""
    assert metrics["calibration_split"] == "train+val out-of-fold"
    assert (metrics["n_calibration"], metrics["folds"], metrics["min_calibration"]) == (400, 5, 9)
    # Cross-conformal is valid (>= about 90%); refits on 320 patients err a little more than
    # the served model, so it may over-cover somewhat (0.957 on this seed), never by far.
    assert 0.86 <= metrics["test_coverage_true_risk"] <= 0.98
    assert metrics["test_strict_share"] == 1.0
    assert metrics["test_outcome_rate"] == 0.0
    assert 0 < metrics["test_mean_low"] < metrics["test_mean_high"] < 1
    assert len(metrics["by_missing"]) == 8
    record = next(r for r in memory_store.list_models() if r.version == "fusion-b-interval")
    assert record.params["target"] == "true_risk"
    assert record.metrics["test_mean_width"] == metrics["test_mean_width"]
    calibration = load_calibration(tmp_path / record.artifact_path, expected_sha256=record.sha256)
    assert calibration.n_calibration == 400
    # What a bench prints for this build, read back from the registry.
    figures = interval_figures_of(memory_store, "fusion-b")
    assert figures["test_coverage_true_risk"] == metrics["test_coverage_true_risk"]
    assert figures["test_mean_width"] == metrics["test_mean_width"]
    assert figures["n_calibration"] == 400
    assert set(figures["coverage_by_missing"]) == set(metrics["by_missing"])


def test_without_the_training_true_risk_the_build_serves_the_event_rate(
    setting, memory_store, tmp_path
) -> None:
    model, _, X_test, t_test = setting
    X_train, y_train, _ = _cohort(200, 6)
    X_val, y_val, t_val = _cohort(60, 7)
    metrics = build_interval(
        memory_store,
        "fusion-c",
        model,
        X_train,
        y_train,
        X_test,
        t_test,
        tmp_path / "c",
        tmp_path,
        X_val=X_val,
        y_val=y_val,
        true_risk_val=t_val,
    )
    assert (metrics["target"], metrics["method"]) == ("event_rate", "neighbour_binomial")
    assert metrics["test_strict_share"] == 1.0
