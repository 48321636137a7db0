"""Decision curves against a direct computation, and a researcher's curve at allowed cuts only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from fusion.evaluation.disclosure import allowed_thresholds
from fusion.evaluation.net_benefit import decision_curve, decision_curves_by_group, snap_up


def _world(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = rng.beta(2, 5, n)
    y = (rng.random(n) < risk).astype(int)
    return y, risk


def _direct(y: np.ndarray, risk: np.ndarray, t: float, cut: float | None = None) -> float:
    """Net benefit by the textbook formula, through sklearn's confusion matrix."""
    flagged = risk >= (t if cut is None else cut)
    _tn, fp, _fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
    return (tp - fp * t / (1 - t)) / len(y)


def test_net_benefit_matches_the_textbook_formula_at_every_threshold() -> None:
    y, risk = _world()
    curve = decision_curve(y, risk, n_resamples=0)
    expected = [_direct(y, risk, t) for t in curve["threshold"]]
    np.testing.assert_allclose(curve["net_benefit"], expected, atol=1e-12)
    prevalence = y.mean()
    odds = curve["threshold"] / (1 - curve["threshold"])
    np.testing.assert_allclose(curve["treat_all"], prevalence - (1 - prevalence) * odds)
    assert (curve["treat_none"] == 0).all()


def test_bands_cover_the_point_and_shrink_with_more_patients() -> None:
    y, risk = _world(400)
    small = decision_curve(y, risk, thresholds=[0.1, 0.2, 0.3], n_resamples=300)
    assert (small["low"] <= small["net_benefit"]).all()
    assert (small["net_benefit"] <= small["high"]).all()
    y4, risk4 = _world(4000, seed=1)
    large = decision_curve(y4, risk4, thresholds=[0.1, 0.2, 0.3], n_resamples=300)
    assert ((large["high"] - large["low"]) < (small["high"] - small["low"])).all()


def test_a_useful_model_beats_treat_all_and_none_over_the_usual_range() -> None:
    y, risk = _world(3000, seed=2)
    curve = decision_curve(y, risk, thresholds=[0.1, 0.2, 0.3, 0.4], n_resamples=0)
    assert (curve["net_benefit"] > curve["treat_all"]).all()
    assert (curve["net_benefit"] > 0).all()
    noise = decision_curve(
        y, np.random.default_rng(3).random(len(y)) * 0.6, thresholds=[0.2], n_resamples=0
    )
    assert noise["net_benefit"].iloc[0] < curve["net_benefit"].iloc[1]


def test_researcher_curve_takes_counts_at_allowed_cuts_only() -> None:
    """Two thresholds with no patient between them cannot give a refused cut's counts."""
    y, risk = _world(500, seed=4)
    cuts = allowed_thresholds(y, [risk], min_cell=11, threshold=0.3)
    thresholds = np.round(np.arange(1, 61) / 100, 2)
    curve = decision_curve(y, risk, thresholds=thresholds, cuts=np.append(cuts, 0.3), n_resamples=0)
    allowed = set(np.append(cuts, [0.3, np.inf]).round(10))
    assert set(curve["applied_cut"].round(10)) <= allowed
    # The attacker: every pair of thresholds acting at the same cut solves for TP and FP.
    for cut, rows in curve.groupby("applied_cut"):
        if len(rows) < 2 or not np.isfinite(cut):
            continue
        t1, t2 = rows["threshold"].iloc[:2]
        w1, w2 = t1 / (1 - t1), t2 / (1 - t2)
        nb1, nb2 = rows["net_benefit"].iloc[:2] * len(y)
        fp = (nb1 - nb2) / (w2 - w1)
        tp = nb1 + fp * w1
        flagged = risk >= cut
        assert round(tp) == int(y[flagged].sum())
        assert round(fp) == int((1 - y[flagged]).sum())
        # What the attacker learns is a count the researcher may see: ≥ the floor, or none.
        assert round(tp) >= 11 or round(tp) == 0
        assert round(fp) >= 11 or round(fp) == 0
    for t, cut in zip(curve["threshold"], curve["applied_cut"], strict=True):
        if np.isfinite(cut):
            assert curve.loc[curve["threshold"] == t, "net_benefit"].iloc[0] == pytest.approx(
                _direct(y, risk, t, cut)
            )


def test_snap_up_acts_at_the_lowest_allowed_cut_at_or_above() -> None:
    assert snap_up([0.1, 0.11, 0.3], [0.1, 0.3]).tolist() == [0.1, 0.3, 0.3]
    assert snap_up([0.2], None).tolist() == [0.2]


def test_by_group_leaves_out_groups_the_audit_suppresses() -> None:
    y, risk = _world(600, seed=5)
    labels = np.where(np.arange(600) % 3 == 0, "A", "B")
    both = decision_curves_by_group(y, risk, labels, thresholds=[0.2], n_resamples=0)
    assert sorted(both["group"]) == ["A", "B"]
    only_b = decision_curves_by_group(
        y, risk, labels, shown={"A": False, "B": True}, thresholds=[0.2], n_resamples=0
    )
    assert only_b["group"].tolist() == ["B"]
    member = labels == "B"
    assert only_b["net_benefit"].iloc[0] == pytest.approx(_direct(y[member], risk[member], 0.2))
    none = decision_curves_by_group(y, risk, labels, shown={}, thresholds=[0.2], n_resamples=0)
    assert none.empty
    assert "group" in none.columns


@pytest.mark.parametrize("bad", [[0.0], [1.0], [-0.1], [0.5, 1.2]])
def test_thresholds_outside_zero_one_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="strictly inside"):
        decision_curve([0, 1], [0.2, 0.8], thresholds=bad)


def test_frame_columns() -> None:
    curve = decision_curve([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6], n_resamples=5)
    assert list(curve.columns) == [
        "threshold",
        "applied_cut",
        "net_benefit",
        "low",
        "high",
        "treat_all",
        "treat_all_low",
        "treat_all_high",
        "treat_none",
    ]
    assert isinstance(curve, pd.DataFrame)
