"""Survival utilities: person-period expansion, Kaplan-Meier, true curve, anchoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from fusion.forecast.survival import (
    anchor_hazards,
    cumulative_risk,
    kaplan_meier,
    person_period,
    true_curve,
)


@pytest.mark.parametrize(
    ("time", "event", "periods", "labels"),
    [
        (0.7, 1, [0, 1], [0, 1]),  # event in the second interval
        (0.2, 0, [], []),  # censored before the first midpoint: not at risk long enough
        (0.3, 0, [0], [0]),  # censored after the midpoint: counts as at risk
        (1.1, 0, [0, 1], [0, 0]),  # censored early in interval 2: dropped from it
        (7.0, 1, list(range(10)), [0] * 10),  # event after the horizon: truncated, no event
        (5.0, 1, list(range(10)), [0] * 9 + [1]),  # event exactly at the horizon
    ],
)
def test_person_period_rows(time, event, periods, labels) -> None:
    patient, period, y = person_period([time], [event])
    assert patient.tolist() == [0] * len(periods)
    assert period.tolist() == periods
    assert y.tolist() == labels


def test_person_period_rejects_non_positive_time() -> None:
    with pytest.raises(ValueError, match="time must be finite and positive"):
        person_period([1.0, 0.0], [1, 0])


def test_kaplan_meier_without_censoring_is_the_empirical_cdf() -> None:
    times = np.array([0.5, 1.5, 2.5, 3.5])
    estimate = kaplan_meier(times, np.ones(4), [1.0, 2.0, 4.0])
    assert estimate.tolist() == [0.25, 0.5, 1.0]
    assert kaplan_meier(times, np.zeros(4), [1.0, 4.0]).tolist() == [0.0, 0.0]  # no events


def test_true_curve_reaches_the_horizon_risk() -> None:
    curve = true_curve(0.4, [0.0, 2.5, 5.0])
    assert curve[0] == 0.0
    assert curve[2] == pytest.approx(0.4)
    assert 0.0 < curve[1] < 0.4


def test_anchored_hazards_reach_the_target_and_keep_the_treatment_terms() -> None:
    rng = np.random.default_rng(5)
    hazards = special.expit(rng.normal(-2.5, 1.0, size=(4, 30, 3, 10)))
    received = rng.integers(0, 3, 30)
    target = np.r_[rng.uniform(0.001, 0.999, 28), 0.0, 1.0]
    anchored = anchor_hazards(hazards, received, target)
    curves = cumulative_risk(anchored)
    reached = curves[:, np.arange(30), received, -1]
    clipped = np.clip(target, 1e-9, 1 - 1e-9)
    assert reached == pytest.approx(np.broadcast_to(clipped, reached.shape), abs=1e-9)
    assert np.all(np.diff(curves, axis=-1) >= 0.0)
    # One shift per member and patient: the options' logit-hazard differences are unchanged.
    before = special.logit(hazards)
    after = special.logit(anchored)
    assert np.diff(after, axis=2) == pytest.approx(np.diff(before, axis=2), abs=1e-6)
    with pytest.raises(ValueError, match=r"received must hold option indices 0\.\.2"):
        anchor_hazards(hazards, np.full(30, 3), target)
    with pytest.raises(ValueError, match=r"risk must hold probabilities in \[0, 1\]"):
        anchor_hazards(hazards, received, target + 1.0)
