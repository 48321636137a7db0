"""SHAP explanations of the fusion model.

Owns the one adapter that turns SHAP output into ``values (n_samples, n_features)`` plus a float
``base_value`` for the positive class, in log-odds (SHAP changed these shapes between versions),
and per-modality sums. A fusion version served by its logistic baseline
(:class:`fusion.logistic.LogisticBaseline`) is explained by ``shap.LinearExplainer`` on the
standardised inputs: exact, ``coef_j * (z_j - mean z_j)`` in the same log-odds.
Streamlit is never imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import shap

from fusion.logistic import LogisticBaseline
from fusion.model import FusionClassifier

__all__ = ["RiskModel", "ShapResult", "make_explainer", "modality_sums", "shap_values"]

RiskModel = FusionClassifier | LogisticBaseline
"""A model that can serve risk: the fused LightGBM or the logistic baseline."""


@dataclass(frozen=True, slots=True)
class ShapResult:
    """Exact TreeSHAP attributions in log-odds.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_features)
        Contribution of each input to the margin.
    base_value : float
        Expected margin over the background (the model's average log-odds).
    feature_names : tuple of str
        Inputs, in model order.
    """

    values: npt.NDArray[np.float64]
    base_value: float
    feature_names: tuple[str, ...]

    def margin(self) -> npt.NDArray[np.float64]:
        """``base_value + values.sum(1)``: equals the model's margin (additivity)."""
        return np.asarray(self.base_value + self.values.sum(axis=1), dtype=np.float64)


def make_explainer(model: RiskModel) -> shap.TreeExplainer | shap.LinearExplainer:
    """A reusable explainer: TreeSHAP over a booster, LinearSHAP over a logistic baseline.

    The linear explainer's background is the training mean of the standardised inputs (0 for
    each), so its base value is the intercept and each value is ``coef_j * z_j``.
    """
    if isinstance(model, LogisticBaseline):
        background = np.zeros((1, model.n_features_in_))
        return shap.LinearExplainer(
            (model.coef_, model.intercept_), shap.maskers.Independent(background)
        )
    return shap.TreeExplainer(model.booster_)


def shap_values(
    model: RiskModel,
    X: pd.DataFrame,
    *,
    explainer: shap.TreeExplainer | shap.LinearExplainer | None = None,
) -> ShapResult:
    """Exact TreeSHAP values of the fused prediction via ``shap.TreeExplainer``.

    Uses the tree-path-dependent algorithm on the LightGBM booster (no background sample), which
    computes the same numbers as LightGBM's ``pred_contrib``.

    Parameters
    ----------
    model : FusionClassifier or LogisticBaseline
        A fitted model.
    X : DataFrame of shape (n_samples, n_features)
        Inputs in the model's feature order.
    explainer : shap.TreeExplainer or shap.LinearExplainer, optional
        From :func:`make_explainer`, to reuse across calls; built on the fly if omitted.

    Returns
    -------
    ShapResult
        Values in log-odds; ``result.margin()`` equals ``model.decision_function(X)``.
    """
    X = model._checked(X)
    explainer = explainer if explainer is not None else make_explainer(model)
    inputs = model.standardize(X) if isinstance(model, LogisticBaseline) else X
    explanation = explainer(inputs)
    values = np.asarray(explanation.values, dtype=np.float64)
    base = np.asarray(explanation.base_values, dtype=np.float64)
    if values.ndim == 3:  # (n, f, classes): older SHAP for binary LightGBM
        values = values[:, :, -1]
        base = base[..., -1] if base.ndim > 1 else base
    if values.ndim == 1:
        values = values[np.newaxis, :]
    base_value = float(np.ravel(base)[0]) if base.size else float(explainer.expected_value)
    return ShapResult(values=values, base_value=base_value, feature_names=tuple(X.columns))


def modality_sums(
    values: npt.NDArray[np.float64], modalities: Sequence[str], order: Sequence[str]
) -> pd.DataFrame:
    """Sum SHAP values per modality.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        SHAP values.
    modalities : sequence of str, length n_features
        Modality of each feature.
    order : sequence of str
        Modalities to report, as columns, in this order (absent ones sum to 0).

    Returns
    -------
    DataFrame of shape (n_samples, len(order))

    Examples
    --------
    >>> modality_sums(np.array([[0.5, -0.2, 0.1]]), ["ehr", "ehr", "imaging"], ["ehr", "imaging"])
       ehr  imaging
    0  0.3      0.1
    """
    if values.shape[1] != len(modalities):
        raise ValueError(
            f"values has {values.shape[1]} features but {len(modalities)} modalities were given."
        )
    labels = np.asarray(modalities)
    return pd.DataFrame(
        {name: values[:, labels == name].sum(axis=1) for name in order},
    )
