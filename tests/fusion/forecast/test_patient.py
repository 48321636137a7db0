"""One patient's forecast: the option comparison and the record's effects."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.forecast.patient import (
    MIN_DISTINGUISHABLE_GAIN,
    compare_options,
    make_patient_forecast,
)


@pytest.mark.parametrize(
    ("members", "best", "distinguishable"),
    [
        # The case: 0.4 points apart, bands fully overlapping.
        ([[0.300, 0.256, 0.250], [0.320, 0.266, 0.270], [0.310, 0.272, 0.262]], "targeted", False),
        # Consistently lower in every refit, by 4 points.
        ([[0.30, 0.29, 0.25], [0.32, 0.31, 0.27], [0.31, 0.30, 0.26]], "targeted", True),
        # Lower in every refit but by less than the smallest gain worth naming.
        ([[0.30, 0.255, 0.250], [0.32, 0.275, 0.270], [0.31, 0.265, 0.260]], "targeted", False),
    ],
)
def test_compare_options_says_when_the_lowest_option_is_not_distinguishable(
    members, best, distinguishable
) -> None:
    comparison = compare_options(np.asarray(members))
    assert comparison.best == best
    assert comparison.distinguishable is distinguishable
    sentence = comparison.describe(5.0)
    if distinguishable:
        assert sentence.startswith("Lowest estimated risk at 5 years: targeted, 4.0 points")
    else:
        assert sentence.startswith("No option has a distinguishably lower risk at 5 years")
        assert comparison.gain < MIN_DISTINGUISHABLE_GAIN or comparison.gain_lower <= 0
    with pytest.raises(ValueError, match=r"pass \(n_members, 3\) risks"):
        compare_options(np.zeros((3, 2)))


def test_patient_forecast_effects_arr_nnt_and_best_arm() -> None:
    times = np.linspace(0.0, 5.0, 3)
    risk = np.array([[0.0, 0.2, 0.4], [0.0, 0.15, 0.3], [0.0, 0.25, 0.5]])
    forecast = make_patient_forecast(
        patient_id="P1",
        model_version="v",
        method="m",
        times=times,
        risk=risk,
        lower=risk - 0.01,
        upper=risk + 0.01,
        true_risks={"none": 0.45, "standard": 0.35, "targeted": 0.4},
        received_treatment="standard",
    )
    effects = forecast.effects.set_index("treatment")
    assert forecast.horizon == 5.0
    assert forecast.best_treatment == "standard"
    assert effects.loc["standard", "arr"] == pytest.approx(0.1)
    assert effects.loc["standard", "nnt"] == pytest.approx(10.0)
    assert np.isnan(effects.loc["targeted", "nnt"])  # harmful: no NNT
    assert np.isnan(effects.loc["none", "nnt"])
    assert list(forecast.curves.columns) == [
        "treatment",
        "time",
        "risk",
        "lower",
        "upper",
        "true_risk",
    ]
    none = forecast.curves[forecast.curves["treatment"] == "none"]
    assert none["true_risk"].iloc[-1] == pytest.approx(0.45)
