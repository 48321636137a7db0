"""Contract of :class:`fusion.model.FusionClassifier`: sklearn rules, early stopping, artifacts."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from data.artifacts import file_digest
from data.errors import ArtifactIntegrityError, CohortError
from fusion.model import FusionClassifier

FAST = {"n_estimators": 60, "learning_rate": 0.1, "n_jobs": 1}


def make_data(n: int, *, seed: int, signal: float = 2.0) -> tuple[pd.DataFrame, np.ndarray]:
    """``y`` depends on ``a`` (and a little on ``b``); ``c`` is noise; ``b`` has gaps."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
        }
    )
    logit = signal * X["a"] + 0.5 * X["b"]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64).to_numpy()
    X.loc[rng.uniform(size=n) < 0.1, "b"] = np.nan
    return X, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_data(600, seed=0)


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, np.ndarray]) -> FusionClassifier:
    X, y = data
    return FusionClassifier(**FAST).fit(X, y)


def test_unfitted_model_raises_not_fitted(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    model = FusionClassifier()
    for method in (model.predict_proba, model.decision_function, model.predict):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(NotFittedError):
        model.save("unused.txt")


def test_fit_returns_self_and_sets_learned_attributes(
    data: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = data
    model = FusionClassifier(**FAST)
    assert model.fit(X, y) is model
    assert model.classes_.tolist() == [0, 1]
    assert model.feature_names_in_.tolist() == ["a", "b", "c"]
    assert model.n_features_in_ == 3
    assert model.feature_names == ["a", "b", "c"]
    # Without validation every round is kept.
    assert model.best_iteration_ == FAST["n_estimators"]
    assert model.booster_.num_trees() == model.best_iteration_


def test_predict_proba_rows_are_probabilities(
    fitted: FusionClassifier, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, _ = data
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()
    risk = proba[:, list(fitted.classes_).index(1)]
    np.testing.assert_allclose(risk, 1 / (1 + np.exp(-fitted.decision_function(X))), atol=1e-12)
    np.testing.assert_array_equal(fitted.predict(X), (risk >= 0.5).astype(np.int64))


def test_learns_a_simple_signal(fitted: FusionClassifier) -> None:
    X_test, y_test = make_data(400, seed=1)
    assert roc_auc_score(y_test, fitted.predict_proba(X_test)[:, 1]) > 0.8


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["b", "a", "c"], r"columns in a different order; reorder them"),
        (["a", "b"], r"missing \['c'\]"),
        (["a", "b", "c", "d"], r"unexpected \['d'\]"),
    ],
)
def test_predict_proba_checks_the_column_order(
    fitted: FusionClassifier,
    data: tuple[pd.DataFrame, np.ndarray],
    columns: list[str],
    message: str,
) -> None:
    X = data[0].assign(d=0.0).loc[:, columns]
    with pytest.raises(ValueError, match=message):
        fitted.predict_proba(X)


def test_predict_proba_rejects_arrays(
    fitted: FusionClassifier, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        fitted.predict_proba(data[0].to_numpy())  # type: ignore[arg-type]


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_y_is_rejected(data: tuple[pd.DataFrame, np.ndarray], label: int) -> None:
    X, _ = data
    with pytest.raises(ValueError, match=rf"both classes 0 and 1; got \[{label}\]"):
        FusionClassifier(**FAST).fit(X, np.full(len(X), label))


def test_fit_validates_inputs(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    with pytest.raises(TypeError, match="pandas DataFrame"):
        FusionClassifier(**FAST).fit(X.to_numpy(), y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"y has shape \(599,\)"):
        FusionClassifier(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="n_estimators=0"):
        FusionClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ValueError, match="X_val must have the same columns"):
        FusionClassifier(**FAST).fit(X, y, X_val=X[["c", "b", "a"]], y_val=y)


def test_early_stopping_uses_the_validation_set() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    y = rng.integers(0, 2, 400)  # pure noise: validation loss stops improving early
    X_val = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y_val = rng.integers(0, 2, 200)
    model = FusionClassifier(
        n_estimators=300, learning_rate=0.1, early_stopping_rounds=10, n_jobs=1
    ).fit(X, y, X_val=X_val, y_val=y_val)

    assert 1 <= model.best_iteration_ < 300
    # Only the kept rounds are in the booster (predictions, SHAP and the file agree).
    assert model.booster_.num_trees() == model.best_iteration_


def test_sklearn_clone_and_get_params() -> None:
    model = FusionClassifier(n_estimators=7, random_state=3)
    params = model.get_params()
    assert params["n_estimators"] == 7
    assert params["random_state"] == 3
    assert set(params) == {
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "min_child_samples",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
        "early_stopping_rounds",
        "random_state",
        "n_jobs",
    }
    copy = clone(model)
    assert copy is not model
    assert copy.get_params() == params
    assert not hasattr(copy, "booster_")
    assert is_classifier(model)
    assert model.set_params(num_leaves=4) is model
    assert model.num_leaves == 4


def test_fit_is_deterministic(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    first = FusionClassifier(**FAST).fit(X, y).predict_proba(X)
    second = FusionClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)


# ---------------------------------------------------------------------- artifacts
@pytest.fixture
def saved(fitted: FusionClassifier, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "models" / "fusion.txt"
    return path, fitted.save(path)


def test_save_load_round_trip_predicts_identically(
    fitted: FusionClassifier, saved: tuple[Path, str], data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    path, sha = saved
    assert sha == file_digest(path)
    assert path.read_text().startswith("tree")  # LightGBM text format, not a pickle
    assert path.with_suffix(".json").is_file()

    loaded = FusionClassifier.load(path, expected_sha256=sha)
    X, _ = data
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.feature_names == fitted.feature_names
    assert loaded.best_iteration_ == fitted.best_iteration_
    assert loaded.classes_.tolist() == [0, 1]


@pytest.mark.parametrize("damage", ["truncate", "modify"])
def test_damaged_file_is_refused_before_lightgbm_reads_it(
    saved: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    path, sha = saved
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    else:
        path.write_bytes(content.replace(b"tree", b"tref", 1))

    def no_lightgbm(*args: object, **kwargs: object) -> None:
        raise AssertionError("LightGBM must not see a file whose hash does not match")

    monkeypatch.setattr(lgb, "Booster", no_lightgbm)
    with pytest.raises(
        ArtifactIntegrityError,
        match=rf"{re.escape(str(path))} does not match its registered SHA-256",
    ) as info:
        FusionClassifier.load(path, expected_sha256=sha)
    assert "riskfusion demo --no-serve --rebuild" in str(info.value)
    assert isinstance(info.value, CohortError)


@pytest.mark.parametrize("missing", ["model", "sidecar"])
def test_missing_file_is_an_integrity_error(saved: tuple[Path, str], missing: str) -> None:
    path, sha = saved
    (path if missing == "model" else path.with_suffix(".json")).unlink()
    with pytest.raises(ArtifactIntegrityError, match=rf"{re.escape(str(path))} .*is missing"):
        FusionClassifier.load(path, expected_sha256=sha)
