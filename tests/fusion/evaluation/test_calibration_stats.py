"""Calibration statistics against statsmodels' GLM, on calibrated and miscalibrated risks."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit, logit

from fusion.evaluation.calibration_stats import (
    calibration_by_group_statistics,
    calibration_statistics,
    spline_basis,
)


def _world(n: int, seed: int, *, scale: float = 1.0, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.03, 0.9, n)
    y = (rng.random(n) < true).astype(float)
    # The model's risk: the truth, made too extreme (scale > 1) and shifted.
    risk = expit((logit(true) - shift) * scale)
    return y, risk


def test_intercept_slope_and_ici_equal_statsmodels_glm() -> None:
    y, risk = _world(3000, 0, scale=1.6, shift=0.4)
    stats, curve = calibration_statistics(y, risk, n_resamples=0)
    z = logit(np.clip(risk, 1e-6, 1 - 1e-6))
    family = sm.families.Binomial()
    slope_fit = sm.GLM(y, sm.add_constant(z), family=family).fit()
    offset_fit = sm.GLM(y, np.ones((len(y), 1)), family=family, offset=z).fit()
    assert stats["slope"] == pytest.approx(slope_fit.params[1], abs=1e-6)
    assert stats["intercept"] == pytest.approx(offset_fit.params[0], abs=1e-6)
    assert stats["observed_expected"] == pytest.approx(y.sum() / risk.sum())
    knots = np.quantile(z, (0.05, 0.35, 0.65, 0.95))
    smooth_fit = sm.GLM(y, spline_basis(z, knots), family=family).fit()
    ici = np.mean(np.abs(smooth_fit.fittedvalues - risk))
    assert stats["ici"] == pytest.approx(ici, abs=1e-6)
    assert len(curve) == 50
    assert curve["observed"].between(0, 1).all()


def test_a_too_extreme_model_has_slope_under_one_and_a_calibrated_one_near_one() -> None:
    y, risk = _world(4000, 1, scale=2.0)
    over, _ = calibration_statistics(y, risk, n_resamples=100)
    assert over["slope_high"] < 1.0
    y, risk = _world(4000, 2)
    good, _ = calibration_statistics(y, risk, n_resamples=100)
    assert good["slope_low"] < 1.0 < good["slope_high"]
    assert good["intercept_low"] < 0.0 < good["intercept_high"]
    assert good["observed_expected_low"] < 1.0 < good["observed_expected_high"]
    assert good["ici"] < over["ici"]


def test_ci_bounds_the_point_and_band_bounds_the_curve() -> None:
    y, risk = _world(800, 3, scale=1.3)
    stats, curve = calibration_statistics(y, risk, n_resamples=150)
    for name in ("intercept", "slope", "observed_expected", "ici"):
        assert stats[f"{name}_low"] <= stats[name] <= stats[f"{name}_high"]
    inside = (curve["low"] <= curve["observed"] + 1e-9) & (
        curve["observed"] <= curve["high"] + 1e-9
    )
    assert inside.mean() > 0.9


def test_too_few_events_to_smooth_gives_no_curve_but_the_rest() -> None:
    rng = np.random.default_rng(4)
    risk = rng.uniform(0.01, 0.1, 200)
    y = np.zeros(200)
    y[:6] = 1
    stats, curve = calibration_statistics(y, risk, n_resamples=0)
    assert np.isnan(stats["ici"])
    assert curve.empty
    assert np.isfinite(stats["slope"])
    assert np.isfinite(stats["observed_expected"])


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="with and without"):
        calibration_statistics([0, 0, 0], [0.1, 0.2, 0.3])


def test_by_group_resamples_within_groups_and_respects_suppression() -> None:
    y, risk = _world(1200, 5)
    labels = np.where(np.arange(1200) % 2 == 0, "F", "M")
    table, curves = calibration_by_group_statistics(y, risk, labels, n_resamples=20)
    assert table.index.tolist() == ["F", "M"]
    member = labels == "M"
    alone, _ = calibration_statistics(y[member], risk[member], n_resamples=0)
    assert table.loc["M", "slope"] == pytest.approx(alone["slope"])
    assert set(curves["group"]) == {"F", "M"}
    hidden, hidden_curves = calibration_by_group_statistics(
        y, risk, labels, shown={"F": True}, n_resamples=0
    )
    assert hidden.index.tolist() == ["F"]
    assert set(hidden_curves["group"]) == {"F"}
