"""The fusion model's capacity, chosen by cross-validation inside train+validation.

Owns :func:`choose_capacity`: a small grid of LightGBM settings (leaves per tree, smallest leaf,
L2 penalty), each scored by stratified K-fold cross-validation over the training and validation
patients together, with early stopping on the held-out fold (``lightgbm.cv``). The test split is
never read. The grid holds the settings measured on the 2,000-patient demo (15 leaves, at least
20 patients a leaf), so a large cohort keeps them when they fit it best, and a cohort of a few
hundred patients gets shallower trees with larger leaves when those fit it better (the cohort in
issue 15 scored 0.952 with the demo's settings against 0.984 for a three-variable logistic
regression). The choice and every grid point's score go to the registry params of the fusion
version. Must not import streamlit.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.model import FusionClassifier
from fusion.training.training_data import stratified_folds

__all__ = [
    "DEFAULT_GRID",
    "CapacityChoice",
    "choose_capacity",
]

logger = logging.getLogger(__name__)

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "num_leaves": (3, 7, 15),
    "min_child_samples": (10, 20, 40),
    "reg_lambda": (1.0, 10.0),
}
"""Grid searched: the demo's settings (15 leaves, 20 a leaf, lambda 1) are one point of it."""
MAX_FOLDS = 5
LARGE_COHORT = 1000
SEARCH_LEARNING_RATE = 0.1
"""Shrinkage of the search (the final fit uses the model's 0.03 with early stopping on the
validation split): a faster rate ranks the tree shapes alike at about a third of the rounds."""
MAX_ROUNDS = 300
EARLY_STOPPING_ROUNDS = 20


@dataclass(frozen=True, slots=True)
class CapacityChoice:
    """The chosen LightGBM settings and how they were chosen.

    Attributes
    ----------
    num_leaves, min_child_samples : int
        Leaves per tree and the smallest leaf (patients).
    reg_lambda : float
        L2 penalty.
    n_rounds : int
        Boosting rounds at the best mean held-out log-loss (early stopping in ``lightgbm.cv``,
        at the search's learning rate :data:`SEARCH_LEARNING_RATE`).
    cv_logloss, cv_auroc : float
        Mean held-out log-loss (the criterion) and AUROC over the folds at ``n_rounds``.
    n_folds : int
        Stratified folds of train+validation.
    n_patients : int
        Patients in train+validation.
    grid : tuple of dict
        Every grid point with its ``cv_logloss``, ``cv_auroc`` and ``n_rounds``.
    """

    num_leaves: int
    min_child_samples: int
    reg_lambda: float
    n_rounds: int
    cv_logloss: float
    cv_auroc: float
    n_folds: int
    n_patients: int
    grid: tuple[dict[str, float], ...]

    def model_params(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~fusion.model.FusionClassifier` for the choice."""
        return {
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "reg_lambda": self.reg_lambda,
        }

    def to_params(self) -> dict[str, Any]:
        """JSON-ready record for the registry params (``capacity``)."""
        record = asdict(self)
        record["grid"] = [dict(point) for point in self.grid]
        return record

    def describe(self) -> str:
        """One line for ``riskfusion train``."""
        return (
            f"capacity by {self.n_folds}-fold CV on {self.n_patients} train+val patients: "
            f"{self.num_leaves} leaves, >= {self.min_child_samples} a leaf, "
            f"L2 {self.reg_lambda:g}, "
            f"{self.n_rounds} rounds (CV log-loss {self.cv_logloss:.3f}, AUROC {self.cv_auroc:.3f})"
        )


def _grid_points(grid: dict[str, Sequence[float]], n_fold_train: int) -> list[dict[str, float]]:
    """Grid points whose smallest leaf fits the smallest fold's training part twice."""
    names = list(grid)
    points = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    kept = [p for p in points if 2 * p["min_child_samples"] <= n_fold_train]
    if kept:
        return kept
    smallest = min(grid["min_child_samples"])
    return [p for p in points if p["min_child_samples"] == smallest]


def choose_capacity(
    X: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    grid: dict[str, Sequence[float]] | None = None,
    n_folds: int | None = None,
    random_state: int = 0,
) -> CapacityChoice:
    """Choose LightGBM's leaves, smallest leaf and L2 penalty by stratified K-fold CV.

    Each grid point is scored by ``lightgbm.cv`` over the same stratified folds, with early
    stopping on the mean held-out log-loss; the point with the lowest mean log-loss wins (ties:
    the simpler model, fewer leaves first).

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
        Inputs of the training and validation patients (never the test split).
    y : array-like of shape (n_samples,)
        Their 0/1 labels.
    grid : dict of str to sequence, optional
        ``num_leaves``, ``min_child_samples`` and ``reg_lambda`` values (default
        :data:`DEFAULT_GRID`).
    n_folds : int, optional
        Folds (default 5 below :data:`LARGE_COHORT` patients, 3 from it: each fold then holds
        enough patients, and the search costs less), lowered to the smaller class's count
        when that is smaller (at least 2).
    random_state : int, default=0
        Seed of the folds and of LightGBM's bagging.

    Returns
    -------
    CapacityChoice

    Raises
    ------
    ValueError
        If a class has fewer than 2 patients, or the grid lacks a setting.
    """
    grid = dict(DEFAULT_GRID if grid is None else grid)
    missing = sorted(set(DEFAULT_GRID) - set(grid))
    if missing:
        raise ValueError(f"grid lacks {missing}; give values for each of {sorted(DEFAULT_GRID)}.")
    labels = np.asarray(y).astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        raise ValueError(
            f"Capacity search needs at least 2 patients of each class in train+validation; "
            f"got {counts.tolist()} (non-events, events)."
        )
    if n_folds is None:
        n_folds = MAX_FOLDS if len(labels) < LARGE_COHORT else 3
    k = int(min(n_folds, counts.min()))
    fold_of = stratified_folds(labels, k, random_state)
    folds = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]
    n_fold_train = min(len(train) for train, _ in folds)
    scored: list[dict[str, float]] = []
    for point in _grid_points(grid, n_fold_train):
        params = FusionClassifier(
            num_leaves=int(point["num_leaves"]),
            min_child_samples=int(point["min_child_samples"]),
            reg_lambda=float(point["reg_lambda"]),
            learning_rate=SEARCH_LEARNING_RATE,
            random_state=random_state,
        )._lgb_params()
        params["metric"] = ["binary_logloss", "auc"]
        result = lgb.cv(
            params,
            lgb.Dataset(X, label=labels, free_raw_data=False),
            num_boost_round=MAX_ROUNDS,
            folds=folds,
            callbacks=[
                lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)
            ],
        )
        losses = np.asarray(result["valid binary_logloss-mean"])
        best = int(np.argmin(losses))
        scored.append(
            {
                **point,
                "cv_logloss": float(losses[best]),
                "cv_auroc": float(np.asarray(result["valid auc-mean"])[best]),
                "n_rounds": best + 1,
            }
        )
    best_point = min(
        scored,
        key=lambda p: (round(p["cv_logloss"], 6), p["num_leaves"], -p["min_child_samples"]),
    )
    choice = CapacityChoice(
        num_leaves=int(best_point["num_leaves"]),
        min_child_samples=int(best_point["min_child_samples"]),
        reg_lambda=float(best_point["reg_lambda"]),
        n_rounds=int(best_point["n_rounds"]),
        cv_logloss=best_point["cv_logloss"],
        cv_auroc=best_point["cv_auroc"],
        n_folds=k,
        n_patients=len(labels),
        grid=tuple(scored),
    )
    logger.debug(choice.describe())
    return choice
