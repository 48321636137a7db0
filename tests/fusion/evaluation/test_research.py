"""Research views, tiny demo: curves, ablation, test predictions and the service audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from fusion.admin.access import Identity
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.groups import add_age_band, check_attributes
from fusion.evaluation.metrics import (
    ablation_table,
    calibration_bins,
    confusion_at,
    expected_calibration_error,
    pr_points,
    roc_points,
)
from fusion.evaluation.performance import ABLATION_LABELS
from fusion.service.cohort import global_shap
from fusion.training.train import BASELINES

ADMIN = Identity(user="test-admin", role="admin", source="local")


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    return y, np.clip(0.3 * y + rng.uniform(0, 0.7, 400), 0, 1)


def test_curves_and_calibration_by_hand(scored) -> None:
    y, risk = scored
    roc = roc_points(y, risk)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc_auc_score(y, risk))
    pr = pr_points(y, risk)
    assert pr["recall"].iloc[0] == 1.0
    assert pr["precision"].iloc[0] == pytest.approx(y.mean())
    bins = calibration_bins(y, risk, n_bins=5)
    assert bins["n"].sum() == len(y)
    hand = sum(
        abs(y[m].mean() - risk[m].mean()) * m.sum() / len(y)
        for m in (np.minimum((risk * 5).astype(int), 4) == b for b in range(5))
        if m.any()
    )
    assert expected_calibration_error(y, risk, n_bins=5) == pytest.approx(hand)
    matrix = confusion_at(y, risk, 0.5).to_numpy()
    assert matrix[1, 1] == ((risk >= 0.5) & (y == 1)).sum()
    assert matrix.sum() == len(y)


def test_ablation_rows_compare_models_on_the_same_draws(scored) -> None:
    y, risk = scored
    rng = np.random.default_rng(0)
    table = ablation_table(y, {"good": risk, "noise": rng.uniform(size=len(y))}, n_resamples=100)
    assert list(table.index) == ["good", "noise"]
    assert table.loc["good", "auroc"] == pytest.approx(roc_auc_score(y, risk))
    assert table.loc["good", "brier"] == pytest.approx(brier_score_loss(y, risk))
    assert table.loc["noise", "auroc_high"] < table.loc["good", "auroc_low"]
    for name in ("good", "noise"):
        assert table.loc[name, "auroc_low"] <= table.loc[name, "auroc"]
        assert table.loc[name, "auroc"] <= table.loc[name, "auroc_high"]


def test_age_bands_and_attribute_check() -> None:
    bands = add_age_band(pd.DataFrame({"age": [18, 49.9, 50, 64, 65, 74.5, 75, 99]}))
    expected = ["<50", "<50", "50-64", "50-64", "65-74", "65-74", "75+", "75+"]
    assert bands["age_band"].tolist() == expected
    assert check_attributes(["sex", "site"]) == ("sex", "site")
    with pytest.raises(ValueError, match="Unknown sensitive attributes \\['postcode'\\]"):
        check_attributes(["postcode"])
    with pytest.raises(ValueError, match="1 to 3 distinct"):
        check_attributes(["sex", "sex"])


def test_test_predictions_one_row_per_test_patient(tiny_service) -> None:
    frame = tiny_service.test_predictions()
    assert len(frame) == tiny_service.count_patients("test")
    assert frame["patient_id"].is_unique
    expected = {"risk", *(f"risk_{name}" for name in BASELINES)}
    assert expected <= set(frame.columns)
    assert frame[sorted(expected)].notna().all().all()
    one = frame.iloc[0]
    assert one["risk"] == pytest.approx(tiny_service.predict(one["patient_id"]).risk)
    assert one["true_risk"] == pytest.approx(tiny_service.patient(one["patient_id"]).true_risk)


def test_performance_matches_the_build(tiny_service, tiny_demo) -> None:
    _, summary = tiny_demo
    # 24 test patients: at the floor most of the report is hidden; an admin lowers it to 0.
    report = tiny_service.performance(n_resamples=50, min_cell=0, identity=ADMIN)
    assert report.model_version == summary.fusion_version
    assert report.threshold == pytest.approx(summary.threshold)
    # Every model the build stored; "Fused LightGBM" is a row of a served baseline only.
    trained = [v for k, v in ABLATION_LABELS.items() if k != "risk_lightgbm"]
    assert list(report.ablation.index) == trained
    for column, label in (("risk", "Fusion (all modalities)"), ("risk_ehr", "EHR only")):
        name = "fusion" if column == "risk" else column.removeprefix("risk_")
        assert report.ablation.loc[label, "auroc"] == pytest.approx(
            summary.test_auroc[name]["auroc"]
        ), column
    assert set(report.curves["model"]) == set(trained)
    floored = tiny_service.performance(n_resamples=0)
    assert floored.min_cell == 11
    assert floored.confusion.loc["total", "total"] == report.n
    cells = floored.confusion.drop(index="total", columns="total").to_numpy().ravel()
    assert all(n >= 11 for n in cells if not np.isnan(n))  # small cells are NaN (hidden)


def test_service_audit_and_registry(tiny_service) -> None:
    report = tiny_service.audit(["sex"], min_cell=0, n_resamples=20, threshold=0.4, identity=ADMIN)
    assert isinstance(report, FairnessReport)
    assert report.threshold == 0.4
    assert report.by_group["n"].sum() == tiny_service.count_patients("test")
    with pytest.raises(ValueError, match="choose 1 to 3 of"):
        tiny_service.audit(["zip"])
    models = tiny_service.list_models()
    [row] = models.to_dict("records")  # one row per fusion version, its parts grouped in it
    assert row["active"]
    assert row["version"] == tiny_service.model_info().version
    assert row["imaging_version"] == tiny_service.model_info().imaging_version
    assert set(row["parts"].split(", ")) >= set(BASELINES) | {"interval", "explanations"}
    assert row["trained_on"] == "synthetic"
    assert len(row["data_fingerprint"]) == 12


def _full_shap(service, top_n: int = 10):
    """The global SHAP with its per-patient table (the stored page view drops that table)."""
    return global_shap(service.store, service.models, top_n=top_n, min_cell=service.min_cell_floor)


def test_test_shap_agrees_with_the_per_patient_explanation(tiny_service) -> None:
    summary = _full_shap(tiny_service, top_n=5)
    assert tiny_service.test_shap(top_n=5).per_patient.empty  # never stored nor served
    assert len(summary.per_patient) == tiny_service.count_patients("test")
    assert summary.modalities.sum() == pytest.approx(summary.features["mean_abs_shap"].sum())
    assert summary.features["mean_abs_shap"].is_monotonic_decreasing
    assert summary.beeswarm["label"].nunique() == 5
    assert len(summary.beeswarm) == 5 * len(summary.per_patient)
    # The batch path (split queries) equals the one-patient path (feature_row + explain).
    pid = summary.per_patient.index[0]
    contributions = tiny_service.explain(pid).contributions
    by_hand = contributions["shap"].abs().groupby(contributions["modality"]).sum()
    for modality, value in by_hand.items():
        assert summary.per_patient.loc[pid, modality] == pytest.approx(value, abs=1e-9)


def test_modality_reliance_by_group(tiny_service) -> None:
    table = tiny_service.modality_reliance(["sex"], min_cell=0, identity=ADMIN)
    per_patient = _full_shap(tiny_service).per_patient
    sexes = tiny_service.test_predictions().set_index("patient_id")["sex"]
    expected = per_patient.groupby(sexes).mean()
    assert table["n"].sum() == len(per_patient)
    for group in expected.index:
        assert table.loc[group, "imaging"] == pytest.approx(expected.loc[group, "imaging"])
    hidden = tiny_service.modality_reliance(["sex"], min_cell=10_000)
    assert hidden["suppressed"].all()
    assert hidden["imaging"].isna().all()


def test_group_curves_hide_small_groups_and_bins() -> None:
    from fusion.evaluation.groups import group_curves

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "site": np.repeat(["a", "b", "c", "d"], [300, 200, 30, 5]),
            "label": rng.integers(0, 2, 535),
            "risk": rng.uniform(size=535),
        }
    )
    roc, calibration = group_curves(frame, ["site"], min_cell=11)
    assert set(roc["group"]) == {"a", "b"}  # d is small, c protects it
    assert set(calibration["group"]) == {"a", "b"}
    shown = calibration.loc[~calibration["suppressed"]]
    assert (shown["n"] >= 11).all()
    # c and d are hidden whole, so where only one of them fills a risk bin, a bin of b
    # partners it (else the bin's count over all patients minus a and b would give it away).
    assert set(calibration.loc[calibration["suppressed"], "group"]) <= {"b"}
    mask = frame["site"] == "a"
    assert calibration.loc[calibration["group"] == "a", "n"].sum() == mask.sum()
    # The drawn curve is coarse (no step under 11 events or non-events), on the exact one.
    curve = roc.loc[roc["group"] == "a"]
    assert len(curve) > 2
    events, non_events = (
        frame.loc[mask, "label"].sum(),
        (~frame.loc[mask, "label"].astype(bool)).sum(),
    )
    assert (np.diff(curve["tpr"]) * events >= 11 - 1e-9).all()
    assert (np.diff(curve["fpr"]) * non_events >= 11 - 1e-9).all()


def test_performance_calibration_suppresses_small_bins(scored) -> None:
    from fusion.evaluation.performance import evaluate_performance

    y, risk = scored
    frame = pd.DataFrame({"label": y, "risk": np.where(np.arange(len(y)) < 4, 0.99, risk * 0.8)})
    report = evaluate_performance(frame, model_version="v", threshold=0.5, n_resamples=0)
    calibration = report.calibration
    top = calibration.loc[calibration["low"] >= 0.9]
    assert top["suppressed"].all()  # the 4 patients at 0.99
    assert top["n"].isna().all()
    assert calibration["suppressed"].sum() >= 2  # and a complement: the total is shown
    shown = calibration.loc[~calibration["suppressed"]]
    assert (shown["n"] >= 11).all()
    events = shown["observed"] * shown["n"]
    assert (events.round() >= 11).all()  # no small count of events or non-events either
    assert ((shown["n"] - events).round() >= 11).all()
    assert len(y) - shown["n"].sum() > 4  # the hidden bins' sum is not the small bin
