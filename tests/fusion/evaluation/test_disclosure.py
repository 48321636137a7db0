"""Suppression a researcher cannot switch off, and counts that cannot be derived from what is shown.

The derivation tests play the attacker: they take every number an export or view shows (the
audit CSV, the performance report, the calibration bins, the curves), write each as a linear
equation over the hidden counts (a rate with its denominator is a count), and solve for every
count they can. No count under the floor, 0 included, may follow, unless its group is
suppressed as a whole.
"""

from __future__ import annotations

import io
from html import escape
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from fusion.admin.access import AccessDeniedError, Identity
from fusion.evaluation.curves import coarse_curve
from fusion.evaluation.disclosure import resolve_min_cell
from fusion.evaluation.fairness import audit
from fusion.evaluation.groups import calibration_by_group
from fusion.evaluation.importance import summarise_shap
from fusion.evaluation.metrics import roc_points
from fusion.evaluation.performance import evaluate_performance
from fusion.reports.audit_report import audit_csv, audit_html
from fusion.settings import Settings

ADMIN = Identity(user="ana@h.org", role="admin", source="oidc")
RESEARCHER = Identity(user="rex@h.org", role="researcher", source="oidc")
FLOOR = 11
CELLS = ("TN", "FP", "FN", "TP")  # [outcome, flagged] in reading order
# Confusion cells per group at threshold 0.5: F is the issue's 12/5/1/21, X has no false
# positive, Z (n = 4) is suppressed and needs a partner.
GROUPS = {
    "F": {"TP": 12, "FN": 5, "FP": 1, "TN": 21},
    "M": {"TP": 40, "FN": 15, "FP": 14, "TN": 80},
    "X": {"TP": 20, "FN": 12, "FP": 0, "TN": 40},
    "Y": {"TP": 30, "FN": 25, "FP": 20, "TN": 60},
    "Z": {"TP": 1, "FN": 1, "FP": 1, "TN": 1},
}


def _cohort(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for group, cells in GROUPS.items():
        for name, count in cells.items():
            flagged = name in ("TP", "FP")
            risk = rng.uniform(0.5, 1.0, count) if flagged else rng.uniform(0.0, 0.5, count)
            rows.append(
                pd.DataFrame({"sex": group, "label": int(name in ("TP", "FN")), "risk": risk})
            )
    return pd.concat(rows, ignore_index=True)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # the suppression marker
    return None if np.isnan(number) else number


class Attack:
    """Linear equations over unknown counts; what they determine."""

    def __init__(self) -> None:
        self.rows: list[dict[object, float]] = []
        self.rhs: list[float] = []

    def add(self, coefficients: dict[object, float], value: float) -> None:
        self.rows.append(coefficients)
        self.rhs.append(value)

    def solve(self, targets: dict[str, dict[object, float]]) -> dict[str, float]:
        """The targets the equations determine, with their values."""
        keys = sorted(
            {k for row in self.rows for k in row} | {k for t in targets.values() for k in t},
            key=str,
        )
        column = {key: j for j, key in enumerate(keys)}

        def vector(coefficients: dict[object, float]) -> np.ndarray:
            out = np.zeros(len(keys))
            for key, value in coefficients.items():
                out[column[key]] += value
            return out

        A = np.array([vector(row) for row in self.rows]) if self.rows else np.zeros((0, len(keys)))
        b = np.array(self.rhs)
        rank = np.linalg.matrix_rank(A, tol=1e-7) if len(A) else 0
        solution = np.linalg.lstsq(A, b, rcond=None)[0] if len(A) else np.zeros(len(keys))
        found = {}
        for name, target in targets.items():
            t = vector(target)
            if np.linalg.matrix_rank(np.vstack([A, t]), tol=1e-7) == rank:
                found[name] = float(t @ solution)
        return found


def _cell(group: str, name: str) -> tuple[str, str]:
    return (group, name)


def _audit_equations(attack: Attack, csv_text: str) -> list[str]:
    """Equations of every number in the audit CSV; returns the groups whose n is shown."""
    table = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    rates = ("prevalence", "selection_rate", "tpr", "fpr", "ppv", "npv")
    known: dict[str, dict[str, float]] = {}
    shown_groups = []
    for _, row in table.iterrows():
        group = row["group"]
        known[group] = {m: v for m in rates if (v := _number(row[m])) is not None}
        n = _number(row["n"])
        if n is not None:
            shown_groups.append(group)
            attack.add({_cell(group, c): 1.0 for c in CELLS}, n)
            known[group]["n"] = n
    # A difference against the reference gives the metric back from the reference's value.
    reference = table.loc[table["reference"] == "True", "group"].item()
    for _ in range(2):
        for _, row in table.iterrows():
            group = row["group"]
            for m in rates:
                diff = _number(row[f"diff_{m}"])
                if diff is None:
                    continue
                if m in known[reference] and m not in known[group]:
                    known[group][m] = known[reference][m] + diff
                if m in known[group] and m not in known[reference]:
                    known[reference][m] = known[group][m] - diff
    for group, values in known.items():
        tp, fn, fp, tn = (_cell(group, c) for c in ("TP", "FN", "FP", "TN"))
        n = values.get("n")
        if n is not None and "prevalence" in values:
            attack.add({tp: 1.0, fn: 1.0}, values["prevalence"] * n)
        if n is not None and "selection_rate" in values:
            attack.add({tp: 1.0, fp: 1.0}, values["selection_rate"] * n)
        for metric, (num, other) in {
            "tpr": (tp, fn),
            "fpr": (fp, tn),
            "ppv": (tp, fp),
            "npv": (tn, fn),
        }.items():
            if metric in values:  # num / (num + other) = v
                v = values[metric]
                attack.add({num: 1.0 - v, other: -v}, 0.0)
    return shown_groups


def _performance_equations(attack: Attack, report, groups: list[str]) -> None:
    """The performance page: confusion cells and totals, and the fusion row's TPR / FPR."""
    confusion = report.confusion
    index = {("no event", "below threshold"): "TN", ("no event", "at/above threshold"): "FP"}
    index |= {("event", "below threshold"): "FN", ("event", "at/above threshold"): "TP"}
    for (row, column), name in index.items():
        value = _number(confusion.loc[row, column])
        if value is not None:
            attack.add({_cell(g, name): 1.0 for g in groups}, value)
    for row, names in (("no event", ("TN", "FP")), ("event", ("FN", "TP"))):
        value = _number(confusion.loc[row, "total"])
        if value is not None:
            attack.add({_cell(g, c): 1.0 for g in groups for c in names}, value)
    for column, names in (("below threshold", ("TN", "FN")), ("at/above threshold", ("FP", "TP"))):
        value = _number(confusion.loc["total", column])
        if value is not None:
            attack.add({_cell(g, c): 1.0 for g in groups for c in names}, value)
    fusion = report.ablation.loc["Fusion (all modalities)"]
    for metric, num, other in (("tpr", "TP", "FN"), ("fpr", "FP", "TN")):
        v = _number(fusion[metric])
        if v is not None:
            coefficients = {_cell(g, num): 1.0 - v for g in groups}
            coefficients |= {_cell(g, other): -v for g in groups}
            attack.add(coefficients, 0.0)


def _small_derived(attack: Attack, groups: list[str], floor: int) -> dict[str, float]:
    """Every group count (cells and margins) the attack determines below ``floor``."""
    targets = {}
    margins = {
        "events": ("TP", "FN"),
        "non-events": ("TN", "FP"),
        "flagged": ("TP", "FP"),
        "not flagged": ("TN", "FN"),
    }
    for group in groups:
        for name in CELLS:
            targets[f"{group} {name}"] = {_cell(group, name): 1.0}
        for name, parts in margins.items():
            targets[f"{group} {name}"] = {_cell(group, c): 1.0 for c in parts}
    found = attack.solve(targets)
    return {name: value for name, value in found.items() if round(value) < floor}


def test_the_issue_leak_is_real_without_suppression() -> None:
    """The attack works: at min_cell 0 it derives F's 12 / 5 / 1 / 21 and X's 0."""
    frame = _cohort()
    report = audit(
        frame["label"], frame["risk"], frame[["sex"]], threshold=0.5, n_resamples=0, min_cell=0
    )
    attack = Attack()
    shown = _audit_equations(attack, audit_csv(report))
    derived = attack.solve(
        {f"F {c}": {_cell("F", c): 1.0} for c in CELLS} | {"X FP": {_cell("X", "FP"): 1.0}}
    )
    assert {k: round(v) for k, v in derived.items()} == {
        "F TP": 12,
        "F FN": 5,
        "F FP": 1,
        "F TN": 21,
        "X FP": 0,
    }
    assert shown == list(GROUPS)


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.7])
def test_no_count_under_the_floor_follows_from_the_audit_and_performance_exports(threshold) -> None:
    frame = _cohort()
    report = audit(
        frame["label"],
        frame["risk"],
        frame[["sex"]],
        threshold=threshold,
        n_resamples=50,
        min_cell=FLOOR,
    )
    performance = evaluate_performance(
        frame.assign(risk_ehr=frame["risk"]), model_version="v", threshold=threshold, n_resamples=0
    )
    attack = Attack()
    shown = _audit_equations(attack, audit_csv(report))
    assert "Z" not in shown  # n = 4: suppressed, with a partner
    _performance_equations(attack, performance, list(GROUPS))
    assert _small_derived(attack, shown, FLOOR) == {}
    # Something is still shown: suppression is not all-or-nothing.
    assert report.by_group.loc[shown, "prevalence"].notna().any()
    # The HTML export shows the same cells as the CSV (same table, as text).
    html = audit_html(report, model_version="v", created=pd.Timestamp("2026-01-01"))
    assert html.count(escape(report.marker)) >= int(report.hidden.to_numpy().sum())


def test_a_hidden_rate_does_not_follow_from_another_group_and_the_total() -> None:
    """Two groups and the overall confusion matrix: hiding F's TPR alone would not do."""
    frame = _cohort()
    frame = frame.loc[frame["sex"].isin(["F", "M"])]
    report = audit(
        frame["label"], frame["risk"], frame[["sex"]], threshold=0.5, n_resamples=0, min_cell=FLOOR
    )
    assert report.hidden.loc["F", "tpr"]
    assert report.hidden.loc["M", "tpr"]  # the complement: else F's follows from the total
    assert not report.hidden.loc["M", "prevalence"]


def test_calibration_bins_give_away_no_small_count() -> None:
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n, p=[0.3, 0.7]),
            "risk": rng.beta(2, 3, n),
        }
    )
    frame["label"] = (rng.uniform(size=n) < frame["risk"]).astype(int)
    groups = ["F", "M"]
    by_group = calibration_by_group(
        frame["label"], frame["risk"], frame[["sex"]], min_cell=FLOOR, n_bins=5
    )
    overall = evaluate_performance(
        frame, model_version="v", threshold=0.5, n_resamples=0
    ).calibration
    report = audit(
        frame["label"], frame["risk"], frame[["sex"]], threshold=0.5, n_resamples=0, min_cell=FLOOR
    )
    # Unknowns: events and non-events per group and fine bin (the overall page has 10 bins,
    # the groups 5: two fine bins make one coarse bin).
    attack = Attack()
    for _, row in by_group.iterrows():
        if row["suppressed"]:
            continue
        coarse = round(row["low"] * 5)
        keys = [(row["group"], 2 * coarse + k, y) for k in (0, 1) for y in (0, 1)]
        attack.add(dict.fromkeys(keys, 1.0), row["n"])
        attack.add({key: 1.0 for key in keys if key[2] == 1}, row["observed"] * row["n"])
    for _, row in overall.iterrows():
        if row["suppressed"]:
            continue
        fine = round(row["low"] * 10)
        keys = [(g, fine, y) for g in groups for y in (0, 1)]
        attack.add(dict.fromkeys(keys, 1.0), row["n"])
        attack.add({key: 1.0 for key in keys if key[2] == 1}, row["observed"] * row["n"])
    for group in groups:
        n_group = report.by_group.loc[group, "n"]
        prevalence = report.by_group.loc[group, "prevalence"]
        keys = [(group, b, y) for b in range(10) for y in (0, 1)]
        attack.add(dict.fromkeys(keys, 1.0), n_group)
        if not np.isnan(prevalence):
            attack.add({key: 1.0 for key in keys if key[2] == 1}, prevalence * n_group)
    targets = {}
    for group in groups:
        for coarse in range(5):
            for y in (0, 1):
                keys = [(group, 2 * coarse + k, y) for k in (0, 1)]
                targets[f"{group} bin {coarse} outcome {y}"] = dict.fromkeys(keys, 1.0)
    for fine in range(10):
        for y in (0, 1):
            targets[f"all bin {fine} outcome {y}"] = {(g, fine, y): 1.0 for g in groups}
    found = attack.solve(targets)
    small = {name: value for name, value in found.items() if round(value) < FLOOR}
    assert small == {}
    assert not by_group["suppressed"].all()


def test_coarse_curve_has_no_small_step() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    risk = np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1)
    threshold = 0.5
    curve = coarse_curve(y, risk, min_cell=FLOOR, threshold=threshold)
    pos, neg = y.sum(), len(y) - y.sum()
    tp, fp = np.round(curve["tpr"] * pos), np.round(curve["fpr"] * neg)
    # Every point, the threshold's column totals included, splits events and non-events into
    # parts of at least the floor.
    flagged = risk >= threshold
    tp_t, fp_t = (y[flagged] == 1).sum(), (y[flagged] == 0).sum()
    points = sorted([*zip(tp, fp, strict=True), (tp_t, fp_t)])
    for (tp_a, fp_a), (tp_b, fp_b) in pairwise(points):
        if (tp_a, fp_a) == (tp_t, fp_t) or (tp_b, fp_b) == (tp_t, fp_t):
            steps = (abs(tp_b - tp_a), abs(fp_b - fp_a))
        else:
            steps = (tp_b - tp_a, fp_b - fp_a)
        assert min(steps) >= FLOOR, (tp_a, fp_a, tp_b, fp_b)
    # Each point is the exact curve at its cut: coarse, not smoothed.
    for _, point in curve.iloc[1:].iterrows():
        at = risk >= point["threshold"]
        assert point["tpr"] == pytest.approx(y[at].sum() / pos)
        assert point["fpr"] == pytest.approx((1 - y[at]).sum() / neg)
    assert len(curve) > 3
    exact = roc_points(y, risk)
    full = coarse_curve(y, risk, min_cell=0)
    assert len(full) == len(np.unique(risk)) + 1  # every cut: the exact curve
    assert full[["fpr", "tpr"]].merge(exact[["fpr", "tpr"]]).shape[0] >= len(exact) - 1


def test_performance_report_hides_rates_and_small_curve_steps() -> None:
    frame = _cohort()
    report = evaluate_performance(frame, model_version="v", threshold=0.5, n_resamples=20)
    # Overall cells: TP 103, FN 58, FP 36, TN 202: all shown, so are TPR and FPR.
    assert report.ablation.loc["Fusion (all modalities)", ["tpr", "fpr"]].notna().all()
    small = frame.loc[frame["sex"] == "F"]
    report = evaluate_performance(small, model_version="v", threshold=0.5, n_resamples=20)
    fusion = report.ablation.loc["Fusion (all modalities)"]
    assert fusion[["tpr", "tpr_low", "tpr_high", "fpr", "fpr_low", "fpr_high"]].isna().all()
    assert fusion[["auroc", "brier"]].notna().all()  # 17 events and 22 non-events: shown
    assert report.confusion.drop(index="total", columns="total").isna().all().all()
    assert report.roc.empty  # no safe cut in 17 events
    assert report.curves.empty


def test_floor_comes_from_the_environment() -> None:
    assert Settings.from_env({}).min_cell == 11
    assert Settings.from_env({"RISKFUSION_MIN_CELL": "20"}).min_cell == 20
    with pytest.raises(ValueError, match="RISKFUSION_MIN_CELL=0 is below 1"):
        Settings.from_env({"RISKFUSION_MIN_CELL": "0"})


def test_only_an_admin_may_lower_the_floor() -> None:
    assert resolve_min_cell(RESEARCHER, None, 11) == 11
    assert resolve_min_cell(RESEARCHER, 30, 11) == 30
    assert resolve_min_cell(ADMIN, 2, 11) == 2
    for who in (RESEARCHER, None, Identity("c@h.org", "clinician", "oidc")):
        with pytest.raises(
            AccessDeniedError, match="may not lower the suppression floor: 1 is below"
        ):
            resolve_min_cell(who, 1, 11)
    with pytest.raises(ValueError, match="min_cell=-1"):
        resolve_min_cell(ADMIN, -1, 11)


def test_service_refuses_a_researcher_and_audits_an_admin(tiny_service) -> None:
    def lowered() -> pd.DataFrame:
        trail = tiny_service.audit_trail(limit=10_000, action="lower_suppression")
        return trail

    before = len(lowered())
    for call in (
        lambda who: tiny_service.audit(["sex"], min_cell=1, n_resamples=0, identity=who),
        lambda who: tiny_service.group_curves(["sex"], min_cell=1, identity=who),
        lambda who: tiny_service.modality_reliance(["sex"], min_cell=1, identity=who),
        lambda who: tiny_service.performance(min_cell=1, n_resamples=0, identity=who),
    ):
        for who in (RESEARCHER, None):
            with pytest.raises(AccessDeniedError, match="configured 11"):
                call(who)
    assert len(lowered()) == before
    assert tiny_service.min_cell_for(RESEARCHER) == 11
    assert tiny_service.min_cell_for(RESEARCHER, 15) == 15
    # 24 test patients: at the floor every group of sex is suppressed, and says so.
    with pytest.raises(ValueError, match="fewer than 11 patients"):
        tiny_service.audit(["sex"], n_resamples=0, identity=RESEARCHER)
    assert len(lowered()) == before
    report = tiny_service.audit(["sex"], min_cell=2, n_resamples=0, identity=ADMIN)
    assert report.min_cell == 2
    trail = lowered()
    assert len(trail) == before + 1
    assert trail.iloc[0]["actor"] == ADMIN.user


def test_researcher_shap_summary_has_no_patient_row() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {"age": rng.uniform(40, 90, 200), "smoker": rng.integers(0, 2, 200).astype(float)},
        index=pd.Index([f"P{i}" for i in range(200)], name="patient_id"),
    )
    X.loc[X.index[:5], "smoker"] = 2.0  # a rare value: its bin has 5 patients
    values = rng.normal(size=(200, 2))
    summary = summarise_shap(
        values,
        X,
        labels=["Age", "Smoker"],
        modalities=["demographics", "ehr"],
        order=["demographics", "ehr"],
    )
    aggregate = summary.aggregates_only()
    assert aggregate.beeswarm.empty
    assert aggregate.per_patient.empty
    bins = aggregate.bins
    shown = bins.loc[~bins["suppressed"]]
    assert (shown["n"] >= 11).all()
    assert set(bins["label"]) == {"Age", "Smoker"}
    assert bins.loc[bins["label"] == "Smoker", "suppressed"].sum() >= 2  # 5 patients + a partner
    age = bins.loc[bins["label"] == "Age"]
    assert age["n"].sum() == 200
    assert len(age) == 5


def test_the_service_snaps_a_researchers_threshold_whoever_calls_it(tiny_service) -> None:
    # The page snaps and says so; the service snaps again so the CLI or a script cannot ask
    # for counts at a threshold the page would refuse (on the tiny split: only the model's).
    default = tiny_service.model_info().threshold
    asked = 0.9 if default < 0.5 else 0.1
    researcher = tiny_service.performance(threshold=asked, n_resamples=0, identity=RESEARCHER)
    assert researcher.threshold == pytest.approx(default)
    admin = tiny_service.performance(threshold=asked, min_cell=11, n_resamples=0, identity=ADMIN)
    assert admin.threshold == asked
