"""The fusion stage of ``riskfusion train``: capacity, the fused model, its baselines, the verdict.

Owns :func:`fit_fusion_stage`: the LightGBM capacity chosen inside train+validation
(:mod:`fusion.training.capacity`), the fused model and each single-modality baseline fitted
with it on the training split (early stopping on validation), the logistic regression on the
fused model's inputs (:mod:`fusion.training.logistic_baseline`) and the paired test comparison
of the two. Nothing is written here; :mod:`fusion.training.train` registers what it returns.
Must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.metrics import auroc_with_ci
from fusion.features import FeatureSet, build_feature_matrix
from fusion.model import FusionClassifier
from fusion.training.capacity import CapacityChoice, choose_capacity
from fusion.training.logistic_baseline import (
    LOGISTIC_PART,
    BaselineComparison,
    FittedLogistic,
    compare_with_baseline,
    fit_logistic_baseline,
)
from fusion.training.modality_value import (
    ModalityValue,
    describe_modality,
    keep_valuable_modalities,
)

__all__ = ["FusionStage", "fit_fusion_stage"]


@dataclass(frozen=True, slots=True)
class FusionStage:
    """What the fusion stage fitted.

    Attributes
    ----------
    fitted : dict of str to (FusionClassifier, FeatureSet)
        ``fusion`` and each single-modality baseline.
    test_auroc : dict of str to dict
        Test AUROC with its CI per model (``logistic`` included).
    capacity_params : dict
        The LightGBM settings every model was fitted with.
    choice : CapacityChoice or None
        How they were chosen (None with ``capacity="fixed"``).
    logistic : FittedLogistic
        The logistic baseline.
    comparison : BaselineComparison
        Fused minus logistic, paired bootstrap on the test split.
    value : ModalityValue
        Each modality's out-of-fold value inside train+validation, and the ones dropped from
        the fused model because they add nothing measurable.
    """

    fitted: dict[str, tuple[FusionClassifier, FeatureSet]]
    test_auroc: dict[str, dict[str, float]]
    capacity_params: dict[str, Any]
    choice: CapacityChoice | None
    logistic: FittedLogistic
    comparison: BaselineComparison
    value: ModalityValue


def fit_fusion_stage(
    frame: pd.DataFrame,
    full: FeatureSet,
    baselines: Mapping[str, Sequence[str]],
    masks: Mapping[str, npt.NDArray[np.bool_]],
    *,
    capacity: Literal["cv", "fixed"],
    min_child_samples: int | None,
    seed: int,
    say: Callable[[str], None],
) -> FusionStage:
    """Fit the fused model, its baselines and the logistic regression; compare on test.

    ``masks`` holds boolean rows of ``train``, ``val`` and ``test``; the capacity and the
    logistic penalty are chosen on train+validation only.
    """
    y = frame["label"].to_numpy()
    fit_rows = masks["train"] | masks["val"]
    X_full = build_feature_matrix(frame, full)
    choice: CapacityChoice | None = None
    if capacity == "cv":
        choice = choose_capacity(X_full[fit_rows], y[fit_rows], random_state=seed)
        say(f"      {choice.describe()}")
        capacity_params: dict[str, Any] = choice.model_params()
    else:
        n_train = int(masks["train"].sum())
        leaf = min_child_samples or int(np.clip(n_train // 20, 5, 20))
        capacity_params = {"min_child_samples": leaf}
    test_auroc: dict[str, dict[str, float]] = {}
    fitted: dict[str, tuple[FusionClassifier, FeatureSet]] = {}
    for name, modalities in {"fusion": (), **baselines}.items():
        features = full if name == "fusion" else full.subset(modalities)
        X = build_feature_matrix(frame, features)
        model = FusionClassifier(random_state=seed, **capacity_params).fit(
            X[masks["train"]],
            y[masks["train"]],
            X_val=X[masks["val"]],
            y_val=y[masks["val"]],
        )
        if name == "fusion":  # Modality value: refit without what adds nothing measurable.
            value = keep_valuable_modalities(
                model, X, y, masks["train"], masks["val"], features, random_state=seed
            )
            model = value.model
            for modality, row in value.table.iterrows():
                say(f"      {describe_modality(str(modality), row)}")
        risk = model.predict_proba(X[masks["test"]])[:, 1]
        test_auroc[name] = auroc_with_ci(y[masks["test"]], risk, random_state=seed).as_dict()
        fitted[name] = (model, features)
        say(f"      {name:<12} test AUROC {test_auroc[name]['auroc']:.3f}")
    # The regularised logistic regression on the fused model's inputs, and the paired test
    # comparison: nobody serves the worse model unknowingly.
    logistic = fit_logistic_baseline(X_full, y, masks, random_state=seed)
    test_auroc[LOGISTIC_PART] = auroc_with_ci(
        y[masks["test"]], logistic.test_risk, random_state=seed
    ).as_dict()
    say(f"      {LOGISTIC_PART:<12} test AUROC {test_auroc[LOGISTIC_PART]['auroc']:.3f}")
    comparison = compare_with_baseline(
        y[masks["test"]],
        fitted["fusion"][0].predict_proba(X_full[masks["test"]])[:, 1],
        logistic.test_risk,
        random_state=seed,
    )
    say(f"      {comparison.describe()}")
    return FusionStage(fitted, test_auroc, capacity_params, choice, logistic, comparison, value)
