"""A researcher's thresholds: no small count follows from comparing two of them.

Every number a view shows at a threshold (confusion cells and totals, sensitivity and false
positive rate of every model, curve points; per group: n, prevalence, selection rate, TPR, FPR,
PPV, NPV, curve points) gives cumulative counts ``(events, non-events) flagged at a cut``. The
difference of two such counts of one model (and group) is the number of patients between the
two cuts: it must be 0 or at least the floor, for every pair of thresholds a researcher may
choose.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from fusion.evaluation.curves import curve_through
from fusion.evaluation.disclosure import allowed_thresholds, choose_threshold
from fusion.evaluation.fairness import audit
from fusion.evaluation.groups import audit_threshold, group_curves
from fusion.evaluation.performance import (
    ABLATION_LABELS,
    PerformanceReport,
    evaluate_performance,
    performance_threshold,
)

FLOOR = 11
DEFAULT = 0.37
Known = dict[tuple[str, float], set[tuple[float, float]]]


def _frame(n: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    true_risk = rng.beta(2, 5, n)
    label = (rng.random(n) < true_risk).astype(np.int64)

    def noisy(scale: float) -> np.ndarray:
        return np.clip(true_risk + rng.normal(0, scale, n), 0, 1).round(3)

    return pd.DataFrame(
        {
            "patient_id": np.arange(n),
            "label": label,
            "risk": noisy(0.05),
            "risk_imaging": noisy(0.2),
            "risk_ehr": noisy(0.1),
            "true_risk": true_risk.round(3),
            "sex": rng.choice(["F", "M"], n),
            "site": rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def _add(known: Known, key: tuple[str, float], tp: float, fp: float) -> None:
    if not (np.isnan(tp) or np.isnan(fp)):
        known[key].add((round(float(tp), 6), round(float(fp), 6)))


def _performance_counts(report: PerformanceReport, frame: pd.DataFrame, known: Known) -> None:
    """Cumulative (events, non-events) flagged per model and cut, from what the report shows."""
    y = frame["label"].to_numpy()
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    for model, row in report.ablation.iterrows():
        _add(known, (str(model), report.threshold), row["tpr"] * pos, row["fpr"] * neg)
    cells = report.confusion
    flagged_events, flagged_non = cells.iloc[1, 1], cells.iloc[0, 1]
    flagged = cells.loc["total"].iloc[1]
    if np.isnan(flagged_events) and not np.isnan(flagged_non):
        flagged_events = flagged - flagged_non
    if np.isnan(flagged_non) and not np.isnan(flagged_events):
        flagged_non = flagged - flagged_events
    fusion = ABLATION_LABELS["risk"]
    _add(known, (fusion, report.threshold), flagged_events, flagged_non)
    if not np.isnan(flagged):  # the flagged total alone: a band of patients
        _add(known, ("flagged", report.threshold), flagged, 0.0)
    for _, point in report.roc.iterrows():
        _add(known, (fusion, point["threshold"]), point["tpr"] * pos, point["fpr"] * neg)
    for _, point in report.pr.iterrows():
        tp = point["recall"] * pos
        _add(known, (fusion, point["threshold"]), tp, tp / point["precision"] - tp)
    for model, curve in report.curves.groupby("model"):
        for _, point in curve.iterrows():  # no threshold column: every point against every cut
            _add(known, (str(model), -1.0), point["tpr"] * pos, point["fpr"] * neg)


def _small_differences(known: Known, floor: int = FLOOR) -> list[tuple[str, float]]:
    """Every difference of two known counts of one model (or group) in (0, floor)."""
    by_model: dict[str, set[tuple[float, float]]] = defaultdict(set)
    for (model, _), counts in known.items():
        by_model[model] |= counts
    small = []
    for model, counts in by_model.items():
        for (tp1, fp1), (tp2, fp2) in itertools.combinations(sorted(counts), 2):
            for difference in (abs(tp1 - tp2), abs(fp1 - fp2)):
                if 0 < difference < floor - 1e-6:
                    small.append((model, difference))
    return small


def _performance_views(frame: pd.DataFrame, thresholds, *, through) -> Known:
    known: Known = defaultdict(set)
    for threshold in thresholds:
        report = evaluate_performance(
            frame, model_version="v", threshold=threshold, n_resamples=20, min_cell=FLOOR
        )
        if through is not None:
            report = report.through(frame, through)
        _performance_counts(report, frame, known)
    return known


def test_nearby_thresholds_give_away_small_counts_without_the_restriction() -> None:
    frame = _frame()
    known = _performance_views(frame, [0.30, 0.31, 0.32], through=None)
    assert _small_differences(known)


def test_a_researchers_allowed_thresholds_give_away_no_small_count() -> None:
    frame = _frame()
    choice = performance_threshold(frame, 0.5, role="researcher", default=DEFAULT, min_cell=FLOOR)
    assert choice.allowed is not None
    assert len(choice.allowed) >= 3
    assert DEFAULT in choice.allowed
    assert choice.threshold in choice.allowed
    known = _performance_views(frame, choice.allowed, through=choice.curve_cuts)
    assert known
    assert _small_differences(known) == []


def test_other_roles_keep_the_requested_threshold() -> None:
    frame = _frame()
    for role in ("admin", "clinician"):
        choice = performance_threshold(frame, 0.31, role=role, default=DEFAULT, min_cell=FLOOR)
        assert choice.threshold == 0.31
        assert choice.allowed is None
        assert choice.note() == ""


def test_a_requested_threshold_snaps_to_the_nearest_and_says_so() -> None:
    choice = choose_threshold(0.33, [0.2, 0.5], default=DEFAULT, min_cell=FLOOR)
    assert choice.threshold == DEFAULT
    assert choice.snapped
    assert "snapped to 0.37" in choice.note()
    assert not choose_threshold(0.5, [0.2, 0.5], default=DEFAULT, min_cell=FLOOR).snapped


@pytest.mark.parametrize("by", [["sex"], ["sex", "site"]])
def test_the_audits_allowed_thresholds_give_away_no_small_group_count(by) -> None:
    frame = _frame()
    choice = audit_threshold(frame, by, 0.5, role="researcher", default=DEFAULT, min_cell=FLOOR)
    assert choice.allowed is not None
    overall = performance_threshold(frame, 0.5, role="researcher", default=DEFAULT, min_cell=11)
    assert set(choice.allowed) <= set(overall.allowed or ())
    known: Known = defaultdict(set)
    for threshold in choice.allowed:
        report = audit(
            frame["label"],
            frame["risk"],
            frame[by],
            threshold=threshold,
            n_resamples=20,
            min_cell=FLOOR,
        )
        for group, row in report.by_group.iterrows():
            n = row["n"]
            events, flagged = row["prevalence"] * n, row["selection_rate"] * n
            tp = row["tpr"] * events
            fp = row["fpr"] * (n - events)
            if np.isnan(tp) and not np.isnan(row["ppv"]):
                tp = row["ppv"] * flagged
            if np.isnan(fp) and not np.isnan(tp):
                fp = flagged - tp
            if np.isnan(tp) and not np.isnan(fp):
                tp = flagged - fp
            _add(known, (str(group), threshold), tp, fp)
            _add(known, (f"{group} flagged", threshold), flagged, 0.0)
        roc, _ = group_curves(frame, by, min_cell=FLOOR, cut_points=choice.curve_cuts)
        for group, curve in roc.groupby("group"):
            rows = frame.loc[frame[by].astype(str).agg(" & ".join, axis=1) == group, "label"]
            for _, point in curve.iterrows():
                _add(
                    known,
                    (str(group), -1.0),
                    point["tpr"] * rows.sum(),
                    point["fpr"] * (len(rows) - rows.sum()),
                )
    assert _small_differences(known) == []


def test_curve_through_matches_the_confusion_counts() -> None:
    frame = _frame()
    cuts = [0.2, 0.4]
    curve = curve_through(frame["label"], frame["risk"], cuts)
    y, risk = frame["label"].to_numpy(), frame["risk"].to_numpy()
    for cut in cuts:
        point = curve.loc[curve["threshold"] == cut].iloc[0]
        assert point["tpr"] * y.sum() == pytest.approx(((risk >= cut) & (y == 1)).sum())
    assert curve[["fpr", "tpr"]].iloc[[0, -1]].to_numpy().tolist() == [[0, 0], [1, 1]]


def test_allowed_thresholds_without_a_floor_are_every_candidate() -> None:
    cuts = allowed_thresholds([0, 1], [[0.1, 0.9]], min_cell=0, threshold=0.5)
    assert len(cuts) == 98


def test_the_slider_value_of_the_model_threshold_is_not_called_snapped() -> None:
    choice = choose_threshold(0.37, [0.2], default=0.3721, min_cell=FLOOR)
    assert choice.threshold == 0.3721
    assert not choice.snapped
    assert "snapped" not in choice.note()


def test_audit_cut_points_are_nested_over_attributes() -> None:
    frame = _frame(n=3000, seed=4)

    def allowed(by: list[str]) -> set[float]:
        choice = audit_threshold(frame, by, 0.5, role="researcher", default=DEFAULT, min_cell=5)
        return set(choice.allowed or ())

    both = allowed(["sex", "site"])
    assert both <= allowed(["sex"]) & allowed(["site"])
    assert len(allowed(["sex"])) > 2
