"""Bias audit: metrics against fairlearn, bootstrap CIs, edge cases and suppression."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

from fusion.fairness import METRICS, FairnessReport, audit, group_metrics


def _npv(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    negatives = y_pred == 0
    return float((y_true[negatives] == 0).mean())


@pytest.fixture
def cohort() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 600
    features = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "site": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    y = rng.integers(0, 2, n)
    risk = np.clip(0.25 * y + rng.uniform(0, 0.75, n), 0, 1)
    return y, risk, features


@pytest.mark.parametrize("columns", [["sex"], ["site"], ["sex", "site"]])
def test_point_metrics_match_fairlearn(cohort, columns: list[str]) -> None:
    y, risk, features = cohort
    threshold = 0.45
    report = audit(y, risk, features[columns], threshold=threshold, n_resamples=0, min_cell=0)
    frame = MetricFrame(
        metrics={
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "ppv": precision_score,
            "npv": _npv,
            "selection_rate": selection_rate,
            "n": lambda t, p: float(len(t)),
            "prevalence": lambda t, p: float(np.mean(t)),
        },
        y_true=y,
        y_pred=(risk >= threshold).astype(int),
        sensitive_features=features[columns],
    )
    scores = MetricFrame(
        metrics={"auroc": roc_auc_score, "brier": brier_score_loss},
        y_true=y,
        y_pred=risk,
        sensitive_features=features[columns],
    )
    expected = frame.by_group.join(scores.by_group)
    expected.index = expected.index.map(
        lambda key: " & ".join(key) if isinstance(key, tuple) else key
    )
    got = report.by_group.loc[expected.index]
    for name in ("n", "prevalence", "tpr", "fpr", "ppv", "npv", "selection_rate", "auroc", "brier"):
        np.testing.assert_allclose(got[name], expected[name].astype(float), rtol=1e-12)
    mean_risk = pd.Series(risk).groupby([features[c] for c in columns]).mean().to_numpy()
    np.testing.assert_allclose(
        got["calibration_in_the_large"], mean_risk - got["prevalence"].to_numpy(), atol=1e-12
    )
    assert report.summary.loc["demographic_parity_difference", "value"] == pytest.approx(
        demographic_parity_difference(y, risk >= threshold, sensitive_features=features[columns])
    )
    assert report.summary.loc["equalized_odds_difference", "value"] == pytest.approx(
        equalized_odds_difference(y, risk >= threshold, sensitive_features=features[columns])
    )


def test_vectorised_bootstrap_matches_weighted_sklearn(cohort) -> None:
    """Each resample's AUROC and rates equal sklearn's on the same draw counts."""
    y, risk, features = cohort
    risk = np.round(risk, 1)  # many ties: the tie blocks must count half
    codes = features["site"].map({"east": 0, "north": 1, "south": 2}).to_numpy()
    _, draws = group_metrics(y, risk, codes, threshold=0.5, n_resamples=3, random_state=11)
    rng = np.random.default_rng(11)
    order = np.lexsort((risk, codes))
    y_sorted, risk_sorted, codes_sorted = y[order], risk[order], codes[order]
    indices = rng.integers(0, len(y), (3, len(y)))
    for b in range(3):
        weights = np.bincount(indices[b], minlength=len(y))
        for g in range(3):
            member = codes_sorted == g
            w, t, s = weights[member], y_sorted[member], risk_sorted[member]
            assert draws["n"][b, g] == w.sum()
            assert draws["auroc"][b, g] == pytest.approx(roc_auc_score(t, s, sample_weight=w))
            flagged = s >= 0.5
            assert draws["tpr"][b, g] == pytest.approx((w * t * flagged).sum() / (w * t).sum())


def test_ci_contains_point_and_is_deterministic(cohort) -> None:
    y, risk, features = cohort
    first = audit(y, risk, features[["site"]], threshold=0.5, random_state=3)
    again = audit(y, risk, features[["site"]], threshold=0.5, random_state=3)
    other = audit(y, risk, features[["site"]], threshold=0.5, random_state=4)
    pd.testing.assert_frame_equal(first.by_group, again.by_group)
    pd.testing.assert_frame_equal(first.difference, again.difference)
    assert not np.allclose(first.by_group["auroc_low"], other.by_group["auroc_low"])
    for name in METRICS:
        low, point, high = (first.by_group[f"{name}{s}"] for s in ("_low", "", "_high"))
        assert (low <= point + 1e-12).all(), name
        assert (point <= high + 1e-12).all(), name
        assert (high - low > 0).all(), name


def test_reference_defaults_to_largest_and_differences_are_paired(cohort) -> None:
    y, risk, features = cohort
    report = audit(y, risk, features[["site"]], threshold=0.5, n_resamples=50)
    assert report.reference == "north"
    ref = report.by_group.loc["north"]
    for name in METRICS:
        np.testing.assert_allclose(
            report.difference[name], report.by_group[name] - ref[name], atol=1e-12
        )
        np.testing.assert_allclose(report.ratio[name], report.by_group[name] / ref[name])
        assert report.difference.loc["north", [f"{name}_low", f"{name}_high"]].tolist() == [0, 0]
    assert not report.difference.loc["north"].filter(like="_flag").any()


def test_a_real_disparity_is_flagged() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    group = rng.choice(["a", "b"], n)
    y = rng.integers(0, 2, n)
    # Group b's risk ignores the outcome: its TPR and AUROC collapse.
    risk = np.where(
        group == "a", np.clip(0.6 * y + rng.uniform(0, 0.4, n), 0, 1), rng.uniform(size=n)
    )
    report = audit(y, risk, pd.DataFrame({"group": group}), threshold=0.5, reference="a")
    assert report.difference.loc["b", "auroc_flag"]
    assert report.difference.loc["b", "auroc_high"] < 0
    assert report.difference.loc["b", "equalized_odds_flag"]
    fair = audit(y, rng.uniform(size=n), pd.DataFrame({"group": group}), threshold=0.5)
    assert not fair.difference.loc["b", "auroc_flag"]


def test_one_class_group_and_group_of_one_give_nan_not_a_crash() -> None:
    rng = np.random.default_rng(1)
    n = 300
    group = np.array(["big"] * (n - 21) + ["negatives"] * 20 + ["single"])
    y = rng.integers(0, 2, n)
    y[group == "negatives"] = 0
    risk = rng.uniform(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from empty slices or 0/0
        report = audit(y, risk, pd.DataFrame({"g": group}), threshold=0.5, min_cell=0)
    negatives = report.by_group.loc["negatives"]
    assert negatives["n"] == 20
    assert negatives["prevalence"] == 0
    assert np.isnan([negatives["auroc"], negatives["tpr"]]).all()
    assert np.isnan([negatives["auroc_low"], negatives["tpr_high"]]).all()
    assert not np.isnan(negatives["fpr"])
    assert not np.isnan(negatives["fpr_low"])
    single = report.by_group.loc["single"]
    assert single["n"] == 1
    assert np.isnan(single["auroc"])
    # It vanishes from about a third of resamples; the others still give an interval.
    assert single["selection_rate_low"] <= single["selection_rate"] <= single["selection_rate_high"]


def test_empty_group_from_an_unused_category() -> None:
    sex = pd.Categorical(["F"] * 30 + ["M"] * 30, categories=["F", "M", "X"])
    y = np.tile([0, 1], 30)
    risk = np.linspace(0.05, 0.95, 60)
    report = audit(y, risk, pd.DataFrame({"sex": sex}), threshold=0.5, min_cell=0)
    empty = report.by_group.loc["X"]
    assert empty["n"] == 0
    assert np.isnan(empty[list(METRICS)].to_numpy(dtype=float)).all()
    suppressed = audit(y, risk, pd.DataFrame({"sex": sex}), threshold=0.5)
    # X (n=0) alone is below 11, so the next-smallest group goes too.
    assert suppressed.by_group["suppressed"].sum() == 2


@pytest.mark.parametrize(
    ("sizes", "min_cell", "hidden"),
    [
        ((50, 30, 12, 5), 11, {"d", "c"}),  # one small cell -> complementary suppression
        ((50, 30, 5, 4), 11, {"c", "d"}),  # two small cells already protect each other
        ((50, 30, 12, 5), 5, set()),  # threshold is configurable
        ((50, 30, 12, 5), 13, {"c", "d"}),
        ((50, 30, 20, 15), 11, set()),
    ],
)
def test_small_cell_suppression(sizes, min_cell: int, hidden: set[str]) -> None:
    labels = np.repeat(list("abcd"), sizes)
    y = np.tile([0, 1], len(labels))[: len(labels)]
    risk = np.linspace(0, 1, len(labels))
    report = audit(
        y, risk, pd.DataFrame({"g": labels}), threshold=0.5, n_resamples=20, min_cell=min_cell
    )
    assert set(report.by_group.index[report.by_group["suppressed"]]) == hidden
    table = report.table()
    marker = f"suppressed (n < {min_cell})"
    for label in hidden:
        row = table.loc[table["group"] == label].iloc[0]
        assert row["n"] == marker
        assert row["auroc"] == marker
        assert row["diff_tpr"] == marker
        assert np.isnan(report.difference.loc[label, "tpr"])
    # The shown sizes never pin down a single hidden size.
    shown = report.by_group.loc[~report.by_group["suppressed"], "n"].sum()
    assert len(hidden) != 1
    assert len(labels) - shown == sum(sizes[i] for i in range(4) if "abcd"[i] in hidden)


def test_bad_inputs_are_explained(cohort) -> None:
    y, risk, features = cohort
    with pytest.raises(ValueError, match="Unknown reference group 'nowhere'"):
        audit(y, risk, features[["site"]], threshold=0.5, reference="nowhere")
    with pytest.raises(TypeError, match="must be a DataFrame"):
        audit(y, risk, features["site"], threshold=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass 1 to 3"):
        audit(y, risk, features.assign(a=1, b=2), threshold=0.5)
    with pytest.raises(ValueError, match="missing values"):
        audit(y, risk, features.assign(sex=None)[["sex"]], threshold=0.5)
    with pytest.raises(ValueError, match="0/1 labels"):
        audit(y * 2, risk, features[["sex"]], threshold=0.5)
    with pytest.raises(ValueError, match="threshold"):
        audit(y, risk, features[["sex"]], threshold=1.5)
    small = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 300 + ["c"] * 300})
    labels, flat = np.tile([0, 1], 305)[:605], np.full(605, 0.5)
    with pytest.raises(ValueError, match="'a' is suppressed"):
        audit(labels, flat, small, threshold=0.5, reference="a")
    # Two groups, one small: the other is suppressed too, or its n gives the small one away.
    with pytest.raises(ValueError, match="Every group has fewer than 11"):
        audit(labels[:305], flat[:305], small[:305], threshold=0.5)


def test_report_records_its_settings(cohort) -> None:
    y, risk, features = cohort
    report = audit(
        y, risk, features[["sex", "site"]], threshold=0.3, n_resamples=10, random_state=5
    )
    assert isinstance(report, FairnessReport)
    assert report.attributes == ("sex", "site")
    assert (report.threshold, report.n_resamples, report.random_state) == (0.3, 10, 5)
    assert report.min_cell == 11
    assert report.n_total == len(y)
    assert report.marker == "suppressed (n < 11)"
    assert list(report.by_group.index[:2]) == ["F & east", "F & north"]


def test_bench_times_the_audit_per_size() -> None:
    from fusion.bench import time_audit

    seconds = time_audit((2_000, 5_000), n_resamples=5)
    assert list(seconds) == ["2000", "5000"]
    assert all(value > 0 for value in seconds.values())
