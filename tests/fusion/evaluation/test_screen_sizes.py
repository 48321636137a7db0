"""What a large split sends to the screen: thinned curves, a fixed-size beeswarm, group labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fusion.evaluation.curves import (
    MAX_CURVE_POINTS,
    coarse_curve,
    coarse_pr,
    coarse_roc,
    thin_curve,
)
from fusion.evaluation.groups import group_curves, group_labels
from fusion.evaluation.importance import (
    MAX_BEESWARM_POINTS,
    ShapSummary,
    sample_beeswarm,
    summarise_shap,
)

N = 200_000


@pytest.fixture(scope="module")
def large_split() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(17)
    y = rng.integers(0, 2, N)
    return y, rng.random(N)


@pytest.mark.parametrize("min_cell", [0, 11])
def test_roc_of_200k_random_predictions_is_thinned_with_its_ends_and_area(
    large_split, min_cell
) -> None:
    y, risk = large_split
    roc = coarse_roc(y, risk, min_cell=min_cell, threshold=0.5)
    assert len(roc) <= MAX_CURVE_POINTS
    assert roc[["fpr", "tpr"]].iloc[0].tolist() == [0.0, 0.0]
    assert roc[["fpr", "tpr"]].iloc[-1].tolist() == [1.0, 1.0]
    assert abs(np.trapezoid(roc["tpr"], roc["fpr"]) - roc_auc_score(y, risk)) < 0.002


@pytest.mark.parametrize("min_cell", [0, 11])
def test_pr_of_200k_random_predictions_is_thinned_with_its_ends(large_split, min_cell) -> None:
    y, risk = large_split
    pr = coarse_pr(y, risk, min_cell=min_cell, threshold=0.5)
    assert len(pr) <= MAX_CURVE_POINTS
    assert pr["recall"].iloc[0] == 1.0
    assert pr["precision"].iloc[0] == pytest.approx(y.mean())


def test_a_thinned_coarse_curve_is_still_coarse(large_split) -> None:
    y, risk = large_split
    roc = coarse_roc(y, risk, min_cell=11, threshold=0.5)
    events = np.diff(np.round(roc["tpr"].to_numpy() * y.sum()))
    non_events = np.diff(np.round(roc["fpr"].to_numpy() * (len(y) - y.sum())))
    assert (events >= 11).all()
    assert (non_events >= 11).all()


def test_group_curves_of_a_large_split_are_thinned(large_split) -> None:
    y, risk = large_split
    frame = pd.DataFrame({"label": y, "risk": risk, "sex": np.where(np.arange(N) % 3, "F", "M")})
    roc, _ = group_curves(frame, ["sex"], min_cell=0)
    assert roc.groupby("group").size().max() <= MAX_CURVE_POINTS
    assert set(roc["group"]) == {"F", "M"}


def test_thinning_keeps_the_corners_of_a_curve() -> None:
    x = np.linspace(0, 1, 2001)
    curve = pd.DataFrame({"fpr": x, "tpr": np.minimum(2 * x, 1.0)})  # one corner at (0.5, 1)
    thinned = thin_curve(curve, "fpr", "tpr", max_points=10)
    assert thinned[["fpr", "tpr"]].to_numpy().tolist() == [[0.0, 0.0], [0.5, 1.0], [1.0, 1.0]]


def _large_summary(n: int = N) -> tuple[pd.DataFrame, ShapSummary]:
    rng = np.random.default_rng(5)
    X = pd.DataFrame(
        {"age": rng.normal(65, 10, n), "smoker": rng.integers(0, 2, n).astype(float)},
        index=pd.Index(np.arange(n), name="patient_id"),
    )
    X.loc[X.index[::50], "age"] = np.nan
    values = np.stack([0.05 * (X["age"].fillna(65) - 65), 0.4 * X["smoker"]], axis=1)
    summary = summarise_shap(
        values,
        X,
        labels=["Age", "Smoker"],
        modalities=["demographics", "ehr"],
        order=["demographics", "ehr"],
    )
    return X, summary


def test_beeswarm_of_200k_patients_is_a_fixed_stratified_sample() -> None:
    X, summary = _large_summary()
    sizes = summary.beeswarm.groupby("label").size()
    assert sizes.to_dict() == {"Age": MAX_BEESWARM_POINTS, "Smoker": MAX_BEESWARM_POINTS}
    assert summary.n_patients == N
    age = summary.beeswarm.loc[summary.beeswarm["label"] == "Age"]
    # One draw per stratum of the value's rank: every decile holds a tenth of the sample.
    deciles = np.floor(age["value_rank"].dropna() * 10).clip(upper=9).value_counts()
    assert deciles.between(0.1 * MAX_BEESWARM_POINTS - 40, 0.1 * MAX_BEESWARM_POINTS + 40).all()
    assert age["value"].isna().sum() == pytest.approx(MAX_BEESWARM_POINTS / 50, abs=2)
    # The researcher's bins still count every patient.
    assert summary.bins.loc[summary.bins["label"] == "Age", "n"].sum() == N
    # Seeded: the same split gives the same picture.
    assert sample_beeswarm(summary.beeswarm).equals(summary.beeswarm)
    again = summarise_shap(
        np.zeros((len(X), 2)),
        X,
        labels=["Age", "Smoker"],
        modalities=["demographics", "ehr"],
        order=["demographics", "ehr"],
    )
    assert again.beeswarm["value"].equals(summary.beeswarm["value"])


def test_a_small_beeswarm_is_kept_whole() -> None:
    swarm = pd.DataFrame(
        {"label": ["Age"] * 5, "shap": range(5), "value_rank": np.linspace(0, 1, 5)}
    )
    assert sample_beeswarm(swarm).equals(swarm)


def test_group_labels_are_the_row_by_row_join_without_a_row_loop() -> None:
    frame = pd.DataFrame(
        {
            "sex": ["F", "M", None, "F"],
            "age_band": pd.Categorical(["<50", "75+", "<50", None]),
            "site": pd.Series([1, 2, 3, 4], dtype="Int64"),
            "score": [0.5, 1.0, 2.0, np.nan],
        }
    )
    labels = group_labels(frame, ["sex", "age_band", "site", "score"])
    complete = frame.notna().all(axis=1)
    before = frame.loc[complete].astype(str).agg(" & ".join, axis=1)
    assert (
        labels[complete].tolist() == before.tolist() == ["F & <50 & 1 & 0.5", "M & 75+ & 2 & 1.0"]
    )
    assert labels[~complete].isna().all()
    assert labels.index.equals(frame.index)


def _walked_cuts(y: np.ndarray, risk: np.ndarray, min_cell: int, threshold: float) -> list[float]:
    """The coarse cuts by a plain walk over every distinct risk, highest first."""
    cuts = np.unique(risk)[::-1]
    events = np.array([y[risk >= cut].sum() for cut in cuts])
    non_events = np.array([(1 - y)[risk >= cut].sum() for cut in cuts])
    ends = [len(cuts) - 1]
    if cuts[0] >= threshold > cuts[-1]:
        ends = [int(np.flatnonzero(cuts >= threshold)[-1]), len(cuts) - 1]
    kept, start, first = [], (0, 0), 0
    for end in ends:
        for index in range(first, end):
            step = min(events[index] - start[0], non_events[index] - start[1])
            rest = min(events[end] - events[index], non_events[end] - non_events[index])
            if step >= min_cell and rest >= min_cell:
                kept.append(float(cuts[index]))
                start = (events[index], non_events[index])
        start, first = (events[end], non_events[end]), end + 1
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_coarse_cuts_are_those_of_the_walk_over_every_risk(seed) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    risk = np.round(rng.random(300), 2)
    curve = coarse_curve(y, risk, min_cell=7, threshold=0.4)
    assert curve["threshold"].iloc[1:-1].tolist() == _walked_cuts(y, risk, 7, 0.4)
