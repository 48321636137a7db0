"""The regularised logistic regression every fusion model is compared with.

Owns :class:`LogisticBaseline`: median imputation, standardisation and an L2-penalised
logistic regression (scikit-learn) over the same inputs as the fused model, its penalty ``C``
chosen by stratified K-fold cross-validation (log-loss) inside the patients it is fitted on.
Every model input is numeric (:func:`fusion.features.build_feature_matrix` gives float
columns; binary inputs are already 0/1 indicators), so no one-hot step is needed. Saved as
JSON (coefficients, intercept, imputation values, means, scales, feature names; never a
pickle) and loaded back only through :func:`data.artifacts.verified_file`. Its SHAP values are
exact: ``coef_j * (z_j - mean z_j)`` in log-odds, computed by ``shap.LinearExplainer``
(:mod:`fusion.explain`). Must not import streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from data.artifacts import file_digest, verified_file
from data.errors import ArtifactIntegrityError

__all__ = ["DEFAULT_CS", "LOGISTIC_FORMAT", "LogisticBaseline"]

DEFAULT_CS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
"""Inverse L2 penalties searched (scikit-learn's ``C``)."""
LOGISTIC_FORMAT = "riskfusion-logistic-1"


class LogisticBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Imputation + standardisation + L2 logistic regression, ``C`` chosen by stratified CV.

    Parameters
    ----------
    Cs : sequence of float, default=DEFAULT_CS
        Inverse penalties searched.
    n_folds : int, default=5
        Stratified folds (lowered to the smaller class's count, at least 2).
    random_state : int, default=0
        Seed of the folds.

    Attributes
    ----------
    C_ : float
        The chosen inverse penalty.
    cv_logloss_ : float
        Its mean held-out log-loss.
    coef_ : ndarray of shape (n_features,)
        Coefficients on the standardised inputs (log-odds per standard deviation).
    intercept_ : float
        Intercept (log-odds).
    impute_values_, means_, scales_ : ndarray of shape (n_features,)
        Median of each input (filled in for a missing value), then the mean and standard
        deviation the input is standardised with.
    classes_ : ndarray of shape (2,)
        ``[0, 1]``.
    feature_names_in_ : ndarray of shape (n_features,)
        Input columns in model order; :meth:`predict_proba` checks them.
    n_features_in_ : int
        Number of inputs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    >>> y = (X["a"] + 0.5 * rng.normal(size=200) > 0).astype(int)
    >>> model = LogisticBaseline().fit(X, y)
    >>> model.predict_proba(X).shape, bool(abs(model.coef_[0]) > abs(model.coef_[1]))
    ((200, 2), True)
    """

    def __init__(
        self, *, Cs: Sequence[float] = DEFAULT_CS, n_folds: int = 5, random_state: int = 0
    ) -> None:
        self.Cs = Cs
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> LogisticBaseline:
        """Choose ``C`` by stratified K-fold CV (log-loss), then fit on all of ``X, y``.

        Raises
        ------
        TypeError
            If ``X`` is not a DataFrame.
        ValueError
            If ``y`` does not hold both classes with 2 patients each, or ``Cs`` is empty.
        """
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame with named columns; got {type(X)}.")
        labels = np.asarray(y).astype(np.int64)
        if labels.shape != (len(X),):
            raise ValueError(f"y has shape {labels.shape}; expected ({len(X)},) to match X.")
        counts = np.bincount(labels, minlength=2)
        if len(counts) != 2 or counts.min() < 2:
            raise ValueError(
                f"y must hold at least 2 events and 2 non-events; got counts {counts.tolist()}."
            )
        if not len(self.Cs):
            raise ValueError("Cs is empty; pass at least one inverse penalty, e.g. (1.0,).")
        values = X.to_numpy(np.float64)
        # A column missing for everyone has no median: it is filled with 0 and has no weight.
        all_missing = np.isnan(values).all(axis=0)
        values = np.where(all_missing, 0.0, values)
        folds = StratifiedKFold(
            int(min(self.n_folds, counts.min())), shuffle=True, random_state=self.random_state
        )
        scores = {
            float(C): float(
                -cross_val_score(
                    self._pipeline(float(C)), values, labels, cv=folds, scoring="neg_log_loss"
                ).mean()
            )
            for C in self.Cs
        }
        self.C_ = min(scores, key=lambda C: (scores[C], C))  # ties: the stronger penalty
        self.cv_logloss_ = scores[self.C_]
        pipeline = self._pipeline(self.C_).fit(values, labels)
        imputer, scaler, logistic = (step for _, step in pipeline.steps)
        self.impute_values_ = np.asarray(imputer.statistics_, dtype=np.float64)
        self.means_ = np.asarray(scaler.mean_, dtype=np.float64)
        self.scales_ = np.asarray(scaler.scale_, dtype=np.float64)
        self.coef_ = np.asarray(logistic.coef_[0], dtype=np.float64)
        self.intercept_ = float(logistic.intercept_[0])
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    @staticmethod
    def _pipeline(C: float) -> Any:
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=C, max_iter=2000),
        )

    def _checked(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame; got {type(X)}.")
        expected = list(self.feature_names_in_)
        if list(X.columns) != expected:
            missing = sorted(set(expected) - set(X.columns))
            extra = sorted(set(X.columns) - set(expected))
            raise ValueError(
                f"X columns differ from the logistic model's inputs (missing {missing[:10]}, "
                f"unexpected {extra[:10]}, or another order); build X with "
                "fusion.features.build_feature_matrix."
            )
        return X

    def standardize(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Imputed, standardised inputs ``z`` of shape (n_samples, n_features)."""
        values = self._checked(X).to_numpy(np.float64)
        values = np.where(np.isnan(values), self.impute_values_, values)
        return np.asarray((values - self.means_) / self.scales_, dtype=np.float64)

    def decision_function(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Log-odds of the positive class per sample, shape (n_samples,)."""
        return np.asarray(self.standardize(X) @ self.coef_ + self.intercept_, dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (n_samples, 2); column 1 is the risk."""
        risk = special.expit(self.decision_function(X))
        return np.column_stack([1.0 - risk, risk])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        """Class at threshold 0.5 (pages use a tuned threshold instead)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    @property
    def feature_names(self) -> Sequence[str]:
        """Model inputs in order."""
        check_is_fitted(self)
        return [str(n) for n in self.feature_names_in_]

    def save(self, path: str | Path) -> str:
        """Write the fitted model as JSON (no pickle); return the file's SHA-256."""
        check_is_fitted(self)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": LOGISTIC_FORMAT,
            "feature_names": self.feature_names,
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
            "impute_values": self.impute_values_.tolist(),
            "means": self.means_.tolist(),
            "scales": self.scales_.tolist(),
            "C": self.C_,
            "cv_logloss": self.cv_logloss_,
            "params": {
                "Cs": [float(c) for c in self.Cs],
                "n_folds": self.n_folds,
                "random_state": self.random_state,
            },
        }
        target.write_text(json.dumps(document, indent=2))
        return file_digest(target)

    @classmethod
    def load(cls, path: str | Path, *, expected_sha256: str | None = None) -> LogisticBaseline:
        """Load a model saved by :meth:`save`, verifying its SHA-256 first.

        Raises
        ------
        ArtifactIntegrityError
            If the file is missing, differs from ``expected_sha256`` or is not a saved
            logistic model.
        """
        source = verified_file(path, expected_sha256, what="Logistic baseline file")
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArtifactIntegrityError(
                f"Logistic baseline file {source} is not JSON ({err}); retrain with "
                "`riskfusion train`."
            ) from err
        if not isinstance(document, dict) or document.get("format") != LOGISTIC_FORMAT:
            raise ArtifactIntegrityError(
                f"Logistic baseline file {source} is not a {LOGISTIC_FORMAT} model; retrain "
                "with `riskfusion train`."
            )
        model = cls(**document["params"])
        names = [str(n) for n in document["feature_names"]]
        arrays = {
            key: np.asarray(document[key], dtype=np.float64)
            for key in ("coef", "impute_values", "means", "scales")
        }
        if any(values.shape != (len(names),) for values in arrays.values()):
            raise ArtifactIntegrityError(
                f"Logistic baseline file {source} has arrays that do not match its "
                f"{len(names)} feature names; retrain with `riskfusion train`."
            )
        model.coef_ = arrays["coef"]
        model.impute_values_ = arrays["impute_values"]
        model.means_ = arrays["means"]
        model.scales_ = arrays["scales"]
        model.intercept_ = float(document["intercept"])
        model.C_ = float(document["C"])
        model.cv_logloss_ = float(document["cv_logloss"])
        model.classes_ = np.array([0, 1])
        model.feature_names_in_ = np.asarray(names, dtype=object)
        model.n_features_in_ = len(names)
        return model

    def oof_risk(self, X: pd.DataFrame, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Out-of-fold risk of ``X`` at the chosen ``C`` (the same folds as :meth:`fit`)."""
        check_is_fitted(self)
        labels = np.asarray(y).astype(np.int64)
        values = self._checked(X).to_numpy(np.float64)
        values = np.where(np.isnan(values).all(axis=0), 0.0, values)
        folds = StratifiedKFold(
            int(min(self.n_folds, np.bincount(labels, minlength=2).min())),
            shuffle=True,
            random_state=self.random_state,
        )
        proba = cross_val_predict(
            self._pipeline(self.C_), values, labels, cv=folds, method="predict_proba"
        )
        return np.asarray(proba[:, 1], dtype=np.float64)
