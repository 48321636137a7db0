"""Bias audit: metrics against fairlearn, bootstrap CIs, edge cases and suppression."""

from __future__ import annotations

import io
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
from scipy.optimize import linprog
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

from fusion.evaluation.bootstrap import METRICS
from fusion.evaluation.fairness import FairnessReport, audit
from fusion.evaluation.groups import calibration_by_group, group_table
from fusion.evaluation.metrics import calibration_bins
from fusion.evaluation.suppression import suppression_mask
from fusion.reports.audit_report import audit_csv


def _npv(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    negatives = y_pred == 0
    return float((y_true[negatives] == 0).mean())


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
        # The reference is not compared with itself: no CI, no p-value, no flag.
        assert report.difference.loc["north", [f"{name}_low", f"{name}_p"]].isna().all()
        assert report.difference.loc["north", f"{name}_state"] == "not_compared"
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
    # Group a has no false positive: with a floor its FPR (0 cells) would be hidden.
    report = audit(
        y, risk, pd.DataFrame({"group": group}), threshold=0.5, reference="a", min_cell=0
    )
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
    # X (n=0) is hidden, but an empty cell reveals nobody: F and M need no complement.
    assert suppressed.by_group["suppressed"].tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("sizes", "min_cell", "hidden"),
    [
        ((50, 30, 12, 5), 11, {"d", "c"}),  # one small cell -> complementary suppression
        # Two small cells, but their sum 9 = the total minus the shown: the next hides too.
        ((50, 30, 5, 4), 11, {"b", "c", "d"}),
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
    text = report.table(as_text=True)
    for label in hidden:
        row = table.loc[table["group"] == label].iloc[0]
        # Numeric columns stay numeric: hidden cells are empty, the reason is its own column.
        assert pd.isna(row["n"])
        assert np.isnan(row["auroc"])
        assert np.isnan(row["diff_tpr"])
        assert row["suppressed"]
        assert row["suppressed_reason"].startswith("group suppressed")
        assert np.isnan(report.difference.loc[label, "tpr"])
        shown_row = text.loc[text["group"] == label].iloc[0]
        assert shown_row["n"] == marker
        assert shown_row["diff_tpr"] == marker
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
        audit(y, risk, features.assign(sex=[None, *features["sex"][1:]])[["sex"]], threshold=0.5)
    # An attribute nobody has recorded is an error naming it and the fix, not a one-group audit.
    for absent in (None, "not recorded"):
        with pytest.raises(ValueError, match=r"no ethnicity recorded.*add the column"):
            audit(y, risk, features.assign(ethnicity=absent)[["ethnicity"]], threshold=0.5)
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
    from fusion.training.bench import time_audit

    seconds = time_audit((2_000, 5_000), n_resamples=5)
    assert list(seconds) == ["2000", "5000"]
    assert all(value > 0 for value in seconds.values())


# --- Cross-table (complementary) suppression: an attacker with every export ------------------


def _attack(
    hidden: list[tuple], shown: dict[tuple, float], margins: list[tuple[dict[int, str], float]]
) -> dict[tuple, tuple[float, float]]:
    """Tightest bounds on each hidden cell from the published numbers (linear programming).

    ``shown`` maps cells (tuples of coordinates) to their published counts; each margin is a
    partial coordinate (axis -> value) with its published total. Returns (min, max) per
    hidden cell: min == max means the cell was derived.
    """
    cells = list(hidden)
    rows, totals = [], []
    for fixed, total in margins:
        inside = [all(c[a] == v for a, v in fixed.items()) for c in cells]
        rest = sum(n for c, n in shown.items() if all(c[a] == v for a, v in fixed.items()))
        rows.append(np.asarray(inside, dtype=float))
        totals.append(total - rest)
    bounds = {}
    for k, cell in enumerate(cells):
        objective = np.zeros(len(cells))
        objective[k] = 1.0
        low = linprog(objective, A_eq=np.stack(rows), b_eq=totals, bounds=(0, None))
        high = linprog(-objective, A_eq=np.stack(rows), b_eq=totals, bounds=(0, None))
        assert low.status == 0
        assert high.status == 0
        bounds[cell] = (low.fun, -high.fun)
    return bounds


def _published_audits(features: pd.DataFrame, min_cell: int) -> tuple[dict, dict, list]:
    """What the exports of the audits by sex, by site and by sex & site publish."""
    y = np.tile([0, 1], len(features))[: len(features)]
    risk = np.linspace(0.01, 0.99, len(features))

    def exported(columns: list[str]) -> pd.DataFrame:
        report = audit(y, risk, features[columns], threshold=0.5, n_resamples=0, min_cell=min_cell)
        return pd.read_csv(io.StringIO(audit_csv(report)))

    both = exported(["sex", "site"])
    shown, hidden = {}, []
    for row in both.itertuples():
        cell = (row.sex, row.site)
        if row.suppressed:
            assert np.isnan(row.n)  # an empty cell, not text in a numeric column
            hidden.append(cell)
        else:
            shown[cell] = float(row.n)
    margins: list[tuple[dict[int, str], float]] = [({}, float(len(features)))]
    for axis, column in enumerate(["sex", "site"]):
        for row in exported([column]).itertuples():
            if not row.suppressed:
                margins.append(({axis: getattr(row, column)}, float(row.n)))
    return shown, dict.fromkeys(hidden), margins


@pytest.fixture
def crossed() -> pd.DataFrame:
    """sex x site with one small cell (F & c = 5) in an otherwise large table."""
    sizes = {("F", "a"): 50, ("F", "b"): 30, ("F", "c"): 5, ("M", "a"): 60}
    sizes |= {("M", "b"): 40, ("M", "c"): 25}
    rows = [cell for cell, n in sizes.items() for _ in range(n)]
    return pd.DataFrame(rows, columns=["sex", "site"])


def test_no_suppressed_intersection_follows_from_the_exports(crossed) -> None:
    shown, hidden, margins = _published_audits(crossed, 11)
    assert ("F", "c") in hidden
    true = crossed.value_counts()
    for cell, (low, high) in _attack(list(hidden), shown, margins).items():
        assert low <= true[cell] <= high
        assert high - low >= 1, f"{cell} = {true[cell]} follows from the exports"


def test_the_partition_rule_alone_would_leak(crossed) -> None:
    # The mutation the cross-table rule guards against: complementary suppression within the
    # intersection table only hides the next-smallest cell (M & c), and the margins of the
    # one-attribute audits then give F & c = 85 - 50 - 30 away. The attack must see that.
    sizes = crossed.value_counts().sort_index()
    mask = suppression_mask(sizes, 11)
    hidden = list(sizes.index[mask])
    assert hidden == [("F", "c"), ("M", "c")]
    shown = {cell: float(n) for cell, n in sizes[~mask].items()}
    margins: list[tuple[dict[int, str], float]] = [({}, float(len(crossed)))]
    margins += [({0: v}, float(n)) for v, n in crossed["sex"].value_counts().items()]
    margins += [({1: v}, float(n)) for v, n in crossed["site"].value_counts().items()]
    bounds = _attack(hidden, shown, margins)
    assert bounds[("F", "c")] == pytest.approx((5, 5))


def test_group_table_is_what_every_view_hides(crossed) -> None:
    table = group_table(crossed, min_cell=11)
    report = audit(
        np.tile([0, 1], 105), np.linspace(0, 1, 210), crossed, threshold=0.5, n_resamples=0
    )
    assert table["suppressed"].equals(report.by_group["suppressed"])
    assert table["n"].sum() == len(crossed)


def test_calibration_bins_hide_small_cells_and_their_complements() -> None:
    rng = np.random.default_rng(3)
    sex = np.repeat(["F", "M"], [150, 150])
    risk = np.concatenate([rng.uniform(0, 0.6, 145), [0.9] * 5, rng.uniform(0, 1, 150)])
    y = (rng.uniform(size=300) < risk).astype(int)
    features = pd.DataFrame({"sex": sex})
    bins = calibration_by_group(y, risk, features, min_cell=11, n_bins=5)
    top = bins.loc[(bins["group"] == "F") & (bins["low"] == 0.8)]
    assert top["suppressed"].all()  # F's 5 patients at 0.8-1.0
    assert top["n"].isna().all()
    assert bins["suppressed"].sum() >= 3  # a partner in F's row and in the 0.8-1.0 column
    shown = bins.loc[~bins["suppressed"]]
    assert (shown["n"] >= 11).all()
    f_rows = shown.loc[shown["group"] == "F"]
    hand = calibration_bins(y[sex == "F"], risk[sex == "F"], n_bins=5)
    merged = f_rows.merge(hand, on=["low", "high"], suffixes=("", "_hand"))
    np.testing.assert_allclose(merged["n"], merged["n_hand"])
    np.testing.assert_allclose(merged["observed"], merged["observed_hand"])
    # Attack with every export: the group sizes (audit), the bins over all patients
    # (performance page) and the shown bins of each group.
    overall = calibration_bins(y, risk, n_bins=5)
    overall_hidden = suppression_mask(overall["n"], 11)
    cells = {(g, round(lo, 1)): n for g, lo, n in bins[["group", "low", "n"]].itertuples(False)}
    shown_cells = {c: float(n) for c, n in cells.items() if not np.isnan(n)}
    hidden = [c for c, n in cells.items() if np.isnan(n)]
    margins: list[tuple[dict[int, str], float]] = [({0: g}, 150.0) for g in ("F", "M")]
    margins += [
        ({1: round(lo, 1)}, float(n))
        for lo, n, gone in zip(overall["low"], overall["n"], overall_hidden, strict=True)
        if not gone
    ]
    for cell, (low, high) in _attack(hidden, shown_cells, margins).items():
        assert high - low >= 1, f"bin {cell} follows from the exports"
