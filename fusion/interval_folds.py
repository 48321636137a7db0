"""Out-of-fold risks and the finite-sample rules behind the risk interval.

Owns the pieces of :mod:`fusion.uncertainty` that do not depend on what the interval covers:

- :func:`out_of_fold_risks`: the fusion model refitted ``K`` times inside the calibration
  patients (train + validation), each patient scored by the refit that never saw it, for every
  combination of missing modalities (cross-conformal calibration, Vovk 2015, "Cross-conformal
  predictors", Ann. Math. Artif. Intell. 74).
- :func:`conformal_quantile`: the split-conformal quantile with the finite-sample rank
  ``ceil((n + 1) * level)``, and :func:`minimum_calibration`, the smallest ``n`` for which it
  exists (below it no interval at that level is valid and none is served).
- :func:`binomial_band`: Clopper-Pearson limits of the event rate among the calibration
  patients with the nearest out-of-fold risk, tabulated over a grid of risks.

Imports no other fusion module but the feature masking; must not import streamlit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from data.vocabulary import MASKABLE_MODALITIES
from fusion.features import mask_modalities

__all__ = [
    "FOLDS",
    "binomial_band",
    "combinations",
    "conformal_quantile",
    "minimum_calibration",
    "missing_key",
    "neighbour_count",
    "out_of_fold_risks",
    "too_few_reason",
]

FOLDS = 5
"""Refits of the fusion model inside the calibration patients (fewer if a class is rarer)."""
MIN_NEIGHBOURS = 20
"""Smallest neighbourhood of the event-rate band (all patients when there are fewer)."""
_RANK_TOLERANCE = 1e-9  # (n + 1) * 0.9 is 9.000000000000002 in floating point


def missing_key(missing: Sequence[str]) -> str:
    """Key of a combination of missing modalities, in :data:`MASKABLE_MODALITIES` order.

    Examples
    --------
    >>> missing_key(["ehr", "imaging"]), missing_key([])
    ('imaging+ehr', 'none')
    """
    unknown = sorted(set(missing) - set(MASKABLE_MODALITIES))
    if unknown:
        raise ValueError(
            f"Unknown modalities {unknown}; an interval is calibrated without "
            f"{list(MASKABLE_MODALITIES)}."
        )
    chosen = [m for m in MASKABLE_MODALITIES if m in missing]
    return "+".join(chosen) if chosen else "none"


def combinations() -> list[tuple[str, ...]]:
    """Every combination of missing maskable modalities, the empty one first."""
    return [
        combo
        for size in range(len(MASKABLE_MODALITIES) + 1)
        for combo in itertools.combinations(MASKABLE_MODALITIES, size)
    ]


def minimum_calibration(level: float) -> int:
    """Fewest calibration patients for which a conformal ``level`` interval exists.

    The conformal rank ``ceil((n + 1) * level)`` must not exceed ``n``.

    Examples
    --------
    >>> minimum_calibration(0.9), minimum_calibration(0.95), minimum_calibration(0.8)
    (9, 19, 4)
    """
    n = 1
    while math.ceil((n + 1) * level - _RANK_TOLERANCE) > n:
        n += 1
    return n


def too_few_reason(n: int, level: float, *, why: str = "") -> str:
    """The sentence a page shows instead of an interval.

    Examples
    --------
    >>> too_few_reason(6, 0.9)
    'no interval: only 6 patients to calibrate a 90% interval; needs at least 9'
    """
    needed = minimum_calibration(level)
    reason = f"no interval: only {n} patients to calibrate a {level:.0%} interval"
    return f"{reason}; {why}" if why else f"{reason}; needs at least {needed}"


def conformal_quantile(scores: npt.ArrayLike, level: float) -> float:
    """Split-conformal quantile: the ``ceil((n + 1) * level)``-th smallest score.

    For a new exchangeable row, its score is at most this value with probability
    >= ``level``.

    Raises
    ------
    ValueError
        If there are fewer than :func:`minimum_calibration` scores.

    Examples
    --------
    >>> conformal_quantile(np.arange(1.0, 20.0), 0.9)
    18.0
    """
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    n = len(ordered)
    rank = math.ceil((n + 1) * level - _RANK_TOLERANCE)
    if rank > n:
        raise ValueError(too_few_reason(n, level))
    return float(ordered[rank - 1])


def neighbour_count(n: int) -> int:
    """Patients in the event-rate neighbourhood: ``2 sqrt(n)``, at least 20, at most ``n``.

    Examples
    --------
    >>> neighbour_count(10), neighbour_count(160), neighbour_count(1600)
    (10, 25, 80)
    """
    return int(min(n, max(MIN_NEIGHBOURS, round(2 * math.sqrt(n)))))


def binomial_band(
    risk: npt.ArrayLike,
    y: npt.ArrayLike,
    grid: npt.ArrayLike,
    *,
    level: float,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Clopper-Pearson limits of the event rate of the nearest patients, over ``grid``.

    At each grid risk the :func:`neighbour_count` patients whose ``risk`` is nearest (a window
    in risk order) give ``events`` of ``k``; the exact two-sided ``level`` binomial interval of
    their event rate is tabulated. Exact at any ``k``, never a 0-0 or 100-100 band.

    Examples
    --------
    >>> low, high = binomial_band([0.1] * 20, [0] * 20, [0.1], level=0.9)
    >>> low[0], round(high[0], 3)
    (0.0, 0.139)
    """
    values = np.asarray(risk, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    points = np.asarray(grid, dtype=np.float64)
    n = len(values)
    k = neighbour_count(n)
    order = np.argsort(values, kind="stable")
    sorted_risk = values[order]
    cumulative = np.concatenate([[0.0], np.cumsum(labels[order])])
    centre = np.searchsorted(sorted_risk, points)
    start = np.clip(centre - k // 2, 0, n - k)
    events = cumulative[start + k] - cumulative[start]
    tail = (1 - level) / 2
    low, high = np.zeros(len(points)), np.ones(len(points))
    some, not_all = events > 0, events < k
    low[some] = stats.beta.ppf(tail, events[some], k - events[some] + 1)
    high[not_all] = stats.beta.ppf(1 - tail, events[not_all] + 1, k - events[not_all])
    return tuple(float(v) for v in low), tuple(float(v) for v in high)


def _refit(model: Any) -> Any:
    """An unfitted copy of ``model`` that keeps its fitted number of boosting rounds."""
    copy = clone(model)
    rounds = getattr(model, "best_iteration_", None)
    if rounds is not None and "n_estimators" in copy.get_params():
        copy.set_params(n_estimators=int(rounds))
    return copy


def out_of_fold_risks(
    model: Any,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    modality_columns: Mapping[str, Sequence[str]],
    folds: int = FOLDS,
    random_state: int = 0,
) -> tuple[dict[str, npt.NDArray[np.float64]], int]:
    """Each row's risk from a refit of ``model`` that never saw it, per missing modalities.

    Parameters
    ----------
    model : estimator
        The fitted fusion model; cloned with its parameters (a LightGBM model keeps its
        fitted number of rounds, as there is no separate early-stopping split inside a fold).
    X : DataFrame of shape (n_samples, n_features)
        Calibration inputs (train + validation).
    y : array-like of shape (n_samples,)
        Their outcomes (0/1), for the stratified folds and the refits.
    modality_columns : mapping of str to sequence of str
        Model inputs of each maskable modality.
    folds : int, default=5
        Refits; fewer when the rarer class has fewer patients (at least 2).
    random_state : int, default=0

    Returns
    -------
    risks : dict of str to ndarray of shape (n_samples,)
        Out-of-fold risks by :func:`missing_key`.
    n_folds : int
        Refits made.

    Raises
    ------
    ValueError
        If a class has fewer than 2 patients (no two folds can each hold both classes).
    """
    labels = np.asarray(y).astype(np.int64)
    rarer = int(min(np.sum(labels == 0), np.sum(labels == 1)))
    if rarer < 2:
        raise ValueError(
            f"the rarer outcome has {rarer} patients; the refits need at least 2 of each"
        )
    n_folds = min(folds, rarer)
    risks = {missing_key(m): np.empty(len(X), dtype=np.float64) for m in combinations()}
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    for fit_rows, held_rows in splitter.split(np.zeros(len(labels)), labels):
        refit = _refit(model).fit(X.iloc[fit_rows], labels[fit_rows])
        held = X.iloc[held_rows]
        for missing in combinations():
            masked = mask_modalities(held, modality_columns, missing)
            risks[missing_key(missing)][held_rows] = refit.predict_proba(masked)[:, 1]
    return risks, n_folds
