"""Each modality's out-of-fold value and the rule that drops a modality that adds nothing.

Small frames built here (200 patients) check the rule both ways: a pure-noise image score is
dropped and the served risk then ignores it; an informative one is kept; two modalities that
carry the same signal do not both go. The demo fixture keeps imaging and records the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fusion.evaluation.bootstrap import paired_draws
from fusion.explain import shap_values
from fusion.features import FeatureSet
from fusion.model import FusionClassifier
from fusion.training.modality_value import (
    TABLE_COLUMNS,
    describe_modality,
    keep_valuable_modalities,
    value_table,
    value_view,
)

N = 200


def _cohort(seed: int, *, image_signal: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """200 patients: age and two EHR inputs carry the risk; the image score is ``image_signal``
    times the true log-odds plus unit noise (0: pure noise)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, N)
    bp = rng.normal(130, 15, N)
    hba1c = rng.normal(6, 1, N)
    logit = 0.06 * (age - 60) + 0.05 * (bp - 130) + 0.6 * (hba1c - 6) - 0.7
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = pd.DataFrame(
        {
            "age": age,
            "systolic_bp": bp,
            "hba1c": hba1c,
            "image_score": image_signal * logit + rng.normal(size=N),
        },
        index=pd.Index([f"P{i:03d}" for i in range(N)], name="patient_id"),
    )
    split = rng.choice(np.array(["train", "val", "test"]), N, p=[0.6, 0.2, 0.2])
    return X, y, split


FEATURES = FeatureSet(
    ("age", "systolic_bp", "hba1c", "image_score"),
    ("demographics", "ehr", "ehr", "imaging"),
    ("Age", "Systolic BP", "HbA1c", "Scan score"),
    ("years", "mmHg", "%", "logit"),
)


def _decide(X: pd.DataFrame, y: np.ndarray, split: np.ndarray, features: FeatureSet = FEATURES):
    train, val = split == "train", split == "val"
    model = FusionClassifier(min_child_samples=5).fit(
        X[train], y[train], X_val=X[val], y_val=y[val]
    )
    return keep_valuable_modalities(model, X, y, train, val, features, n_resamples=400)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pure_noise_image_score_is_dropped_and_the_risk_ignores_it(seed: int) -> None:
    X, y, split = _cohort(seed, image_signal=0.0)
    value = _decide(X, y, split)
    assert value.dropped == ("imaging",)
    assert value.table.loc["imaging", "decision"] == "dropped"
    assert value.table.loc["ehr", "decision"] == "kept"
    assert "image_score" not in value.kept.names
    # The served model: any image score, the same risk, and a SHAP value of exactly 0.
    shuffled = X.assign(image_score=np.random.default_rng(9).normal(0, 5, N))
    risk = value.model.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(risk, value.model.predict_proba(shuffled)[:, 1])
    attributions = shap_values(value.model, X)
    assert np.all(attributions.values[:, list(X.columns).index("image_score")] == 0.0)
    assert describe_modality("imaging", value.table.loc["imaging"]).startswith(
        "Imaging: adds nothing measurable (AUROC gain "
    )


def test_the_gains_are_measured_without_the_test_split() -> None:
    X, y, split = _cohort(0, image_signal=0.0)
    first = _decide(X, y, split)
    # Test rows changed beyond recognition: the table and the decision stay the same.
    test = split == "test"
    X_changed = X.copy()
    X_changed.loc[test, "image_score"] = 100.0 * y[test]
    second = _decide(X_changed, y, split)
    pd.testing.assert_frame_equal(first.table, second.table)
    assert first.n_patients == int((~test).sum())


def test_an_informative_image_score_is_kept_and_used() -> None:
    X, y, split = _cohort(0, image_signal=1.0)
    value = _decide(X, y, split)
    assert value.dropped == ()
    assert value.table.loc["imaging", "decision"] == "kept"
    assert value.table.loc["imaging", "alone_low"] > 0.5
    shifted = X.assign(image_score=X["image_score"] + 3.0)
    assert not np.allclose(
        value.model.predict_proba(X)[:, 1], value.model.predict_proba(shifted)[:, 1]
    )
    assert describe_modality("imaging", value.table.loc["imaging"]).endswith(": used")


def test_two_modalities_with_the_same_signal_do_not_both_go() -> None:
    X, y, split = _cohort(1, image_signal=0.0)
    X = X.assign(snp_001=X["hba1c"], image_score=X["hba1c"] + 0.01 * X["image_score"])
    features = FeatureSet(
        (*FEATURES.names, "snp_001"),
        (*FEATURES.modalities, "genomics"),
        (*FEATURES.labels, "SNP 001"),
        (*FEATURES.units, ""),
    )
    value = _decide(X.loc[:, list(features.names)], y, split, features)
    assert set(value.table.index) == {"imaging", "genomics", "ehr"}
    assert len(value.dropped) < 3
    assert (value.table["decision"] == "kept").any()


def test_the_registry_form_round_trips_to_the_table_and_the_page_view() -> None:
    X, y, split = _cohort(2, image_signal=0.0)
    value = _decide(X, y, split)
    metrics = value.to_metrics()
    assert metrics["dropped"] == ["imaging"]
    table = value_table(metrics)
    assert list(table.columns) == list(TABLE_COLUMNS)
    np.testing.assert_allclose(table["auroc_gain"], value.table["auroc_gain"])
    view = value_view(metrics).set_index("Modality")
    assert view.loc["Imaging", "Decision"] == "not used by the risk"
    assert view.loc["EHR", "Decision"] == "used"
    assert value_table(None).empty


def test_paired_draws_give_a_zero_gain_for_identical_risks_and_sklearn_aurocs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    a = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    b = rng.random(300)
    point, draws = paired_draws(y, np.column_stack([a, a, b]), n_resamples=200)
    assert point["auroc"][0] == pytest.approx(roc_auc_score(y, a))
    assert point["auroc"][2] == pytest.approx(roc_auc_score(y, b))
    assert draws["auroc"].shape == (200, 3)
    np.testing.assert_array_equal(draws["auroc"][:, 0], draws["auroc"][:, 1])  # paired
    np.testing.assert_allclose(draws["log_loss"][:, 0], draws["log_loss"][:, 1])
    assert np.percentile(draws["auroc"][:, 0] - draws["auroc"][:, 2], 2.5) > 0
    with pytest.raises(ValueError, match="n_samples, n_models"):
        paired_draws(y, a)


def test_the_demo_fixture_records_the_table_and_serves_its_decision(tiny_service) -> None:
    metrics = tiny_service.models.fusion_record.metrics["modality_value"]
    table = value_table(metrics)
    assert set(table.index) == {"imaging", "genomics", "ehr"}
    # The 120-patient fixture (32 px scans) is too small for a stable decision on imaging; the
    # served model must follow whatever the rule decided.
    assert set(table.index[table["decision"] == "dropped"]) == set(metrics["dropped"])
    assert tiny_service.models.unused_modalities == tuple(metrics["dropped"])
    assert tiny_service.models.fusion_record.params["unused_modalities"] == metrics["dropped"]
    assert metrics["n_patients"] == int(
        (tiny_service.store.load_patient_frame()["split"] != "test").sum()
    )
