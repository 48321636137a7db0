"""SHAP adapter: pinned shapes, additivity in log-odds, agreement with LightGBM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion.explain import ShapResult, modality_sums, shap_values
from fusion.model import FusionClassifier


@pytest.fixture(scope="module")
def X() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "ldl", "snp", "image_score"])
    frame.loc[rng.uniform(size=300) < 0.1, "ldl"] = np.nan
    return frame


@pytest.fixture(scope="module")
def model(X: pd.DataFrame) -> FusionClassifier:
    rng = np.random.default_rng(1)
    logit = 1.5 * X["age"] - X["image_score"] + 0.5 * X["ldl"].fillna(0)
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    return FusionClassifier(n_estimators=40, learning_rate=0.1, n_jobs=1).fit(X, y)


def test_shapes_are_pinned(model: FusionClassifier, X: pd.DataFrame) -> None:
    result = shap_values(model, X)
    assert isinstance(result, ShapResult)
    assert result.values.shape == (len(X), X.shape[1])
    assert result.values.dtype == np.float64
    assert type(result.base_value) is float
    assert result.feature_names == ("age", "ldl", "snp", "image_score")


def test_additivity_in_log_odds(model: FusionClassifier, X: pd.DataFrame) -> None:
    result = shap_values(model, X)
    margin = result.base_value + result.values.sum(axis=1)
    np.testing.assert_allclose(margin, model.decision_function(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.margin(), margin, rtol=0, atol=1e-12)
    risk = model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), risk, rtol=0, atol=1e-6)


@pytest.mark.parametrize("row", [0, 7])
def test_single_row(model: FusionClassifier, X: pd.DataFrame, row: int) -> None:
    one = X.iloc[[row]]
    result = shap_values(model, one)
    assert result.values.shape == (1, X.shape[1])
    assert isinstance(result.base_value, float)
    np.testing.assert_allclose(result.margin(), model.decision_function(one), atol=1e-6)
    np.testing.assert_allclose(result.values[0], shap_values(model, X).values[row], atol=1e-9)


def test_equals_lightgbm_pred_contrib(model: FusionClassifier, X: pd.DataFrame) -> None:
    result = shap_values(model, X)
    contrib = np.asarray(model.booster_.predict(X, pred_contrib=True))
    assert contrib.shape == (len(X), X.shape[1] + 1)
    np.testing.assert_allclose(result.values, contrib[:, :-1], rtol=0, atol=1e-6)
    assert result.base_value == pytest.approx(contrib[0, -1], abs=1e-6)


def test_checks_the_feature_order(model: FusionClassifier, X: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="different order"):
        shap_values(model, X[["ldl", "age", "snp", "image_score"]])


def test_modality_sums() -> None:
    values = np.array([[0.5, -0.2, 0.1, 1.0], [1.0, 2.0, 3.0, -4.0]])
    sums = modality_sums(
        values,
        ["ehr", "ehr", "imaging", "demographics"],
        ["demographics", "ehr", "genomics", "imaging"],
    )
    assert list(sums.columns) == ["demographics", "ehr", "genomics", "imaging"]
    expected = np.array([[1.0, 0.3, 0.0, 0.1], [-4.0, 3.0, 0.0, 3.0]])
    np.testing.assert_allclose(sums.to_numpy(), expected, atol=1e-12)
    # Every modality reported: the sums add back up to the total attribution.
    np.testing.assert_allclose(sums.sum(axis=1), values.sum(axis=1), atol=1e-12)


def test_modality_sums_rejects_a_length_mismatch() -> None:
    with pytest.raises(ValueError, match="values has 3 features but 2 modalities"):
        modality_sums(np.zeros((2, 3)), ["ehr", "imaging"], ["ehr", "imaging"])
