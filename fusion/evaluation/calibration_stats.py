"""Calibration a statistician accepts: intercept, slope, O/E and ICI with CIs, and smooth curves.

Owns the calibration statistics of the performance page and of the bias audit, per group:

* **calibration intercept** (calibration-in-the-large on the log-odds scale): ``a`` in
  ``logit P(y=1) = a + logit(risk)`` (the risk's log-odds as an offset); 0 is ideal;
* **calibration slope**: ``b`` in ``logit P(y=1) = a + b * logit(risk)``; 1 is ideal, under 1
  means risks too extreme (overfitting);
* **O/E**: observed events over the sum of the risks; 1 is ideal;
* **ICI** (integrated calibration index, Austin & Steyerberg 2019): the mean absolute difference
  between the smoothed observed risk and the predicted risk, over the patients;
* a **smoothed calibration curve** with a bootstrap band.

The smoother is a logistic regression on a natural (restricted) cubic spline of the risk's
log-odds with knots at fixed quantiles (Harrell's default placement; one of the two smoothers
Austin & Steyerberg evaluate, the other being loess). Unlike loess it is one small fit per
resample, so every statistic and the curve come from the same vectorised Newton-Raphson fit of
all bootstrap resamples at once (:func:`fit_logistic`), and it stays a smooth, readable curve for
a group of 30 patients. Fewer knots are used when a group has few events. The statistics are
checked against statsmodels' GLM in the tests.

Arrays in, frames out: must not import SQL or streamlit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, logit

from fusion.evaluation.bootstrap import check_outcomes, percentile_bounds, resample_weights

__all__ = [
    "CALIBRATION_STATISTICS",
    "calibration_by_group_statistics",
    "calibration_statistics",
    "fit_logistic",
    "spline_basis",
]


CALIBRATION_STATISTICS: tuple[str, ...] = ("intercept", "slope", "observed_expected", "ici")
"""Statistics per group, in table order; each has ``_low`` and ``_high`` bounds."""

_EPS = 1e-6
_MAX_ITER = 50
_KNOT_QUANTILES = {3: (0.10, 0.50, 0.90), 4: (0.05, 0.35, 0.65, 0.95)}


def fit_logistic(
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    *,
    offset: npt.NDArray[np.float64] | None = None,
    ridge: float = 1e-8,
) -> npt.NDArray[np.float64]:
    """Maximum-likelihood logistic coefficients for every row of ``weights`` at once.

    Newton-Raphson on the weighted log-likelihood, one ``(k, k)`` system per resample solved in a
    batch; a tiny ridge keeps a separable resample finite.

    Parameters
    ----------
    X : ndarray of shape (n_samples, k)
        Design matrix (include a column of ones for an intercept).
    y : ndarray of shape (n_samples,)
        0/1 outcomes.
    weights : ndarray of shape (n_fits, n_samples)
        Case weights per fit (bootstrap draw counts, or ones).
    offset : ndarray of shape (n_samples,), optional
        Known part of the linear predictor.
    ridge : float, default=1e-8
        Added to the Hessian's diagonal, relative to the total weight.

    Returns
    -------
    ndarray of shape (n_fits, k)
    """
    n_fits, k = len(weights), X.shape[1]
    base = np.zeros(len(y)) if offset is None else offset
    coef = np.zeros((n_fits, k))
    penalty = ridge * weights.sum(axis=1)[:, None, None] * np.eye(k)
    for _ in range(_MAX_ITER):
        mu = expit(base + coef @ X.T)
        gradient = (weights * (y - mu)) @ X
        curvature = weights * mu * (1.0 - mu)
        hessian = np.einsum("fn,nk,nl->fkl", curvature, X, X) + penalty
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        coef += step
        if np.abs(step).max() < 1e-9:
            break
    return coef


def spline_basis(x: npt.NDArray[np.float64], knots: npt.NDArray[np.float64]) -> np.ndarray:
    """Natural cubic spline basis of ``x`` (Harrell's restricted cubic spline), with intercept.

    Linear beyond the outer knots; ``len(knots) - 2`` non-linear terms, scaled by the knot span
    so the Newton steps stay well conditioned.
    """
    k = len(knots)
    span = (knots[-1] - knots[0]) ** 2

    def cube(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cubed: npt.NDArray[np.float64] = np.clip(values, 0.0, None) ** 3
        return cubed

    columns = [np.ones_like(x), x]
    last, before = knots[-1], knots[-2]
    for j in range(k - 2):
        term = (
            cube(x - knots[j])
            - cube(x - before) * (last - knots[j]) / (last - before)
            + cube(x - last) * (before - knots[j]) / (last - before)
        )
        columns.append(term / span)
    return np.column_stack(columns)


def _knots(z: npt.NDArray[np.float64], events: float, non_events: float) -> np.ndarray | None:
    """Knots of the smoother: 4, or 3 with under 40 of the rarer outcome, None under 10 or ties."""
    rarer = min(events, non_events)
    if rarer < 10:
        return None
    count = 4 if rarer >= 40 else 3
    knots = np.quantile(z, _KNOT_QUANTILES[count])
    if np.unique(knots).size < count:
        return None
    return np.asarray(knots, dtype=np.float64)


def _statistics(
    weights: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    z: npt.NDArray[np.float64],
    basis: npt.NDArray[np.float64] | None,
    grid_basis: npt.NDArray[np.float64] | None,
) -> tuple[dict[str, npt.NDArray[np.float64]], npt.NDArray[np.float64] | None]:
    """Every statistic per row of ``weights``, and the smoothed curve on the grid."""
    ones = np.ones((len(y), 1))
    intercept = fit_logistic(ones, y, weights, offset=z)[:, 0]
    slope = fit_logistic(np.column_stack([ones[:, 0], z]), y, weights)[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed_expected = (weights @ y) / (weights @ r)
    stats = {"intercept": intercept, "slope": slope, "observed_expected": observed_expected}
    if basis is None or grid_basis is None:
        stats["ici"] = np.full(len(weights), np.nan)
        return stats, None
    coef = fit_logistic(basis, y, weights)
    smoothed = expit(coef @ basis.T)
    stats["ici"] = (weights * np.abs(smoothed - r)).sum(axis=1) / weights.sum(axis=1)
    return stats, expit(coef @ grid_basis.T)


def calibration_statistics(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    *,
    n_resamples: int = 200,
    random_state: int = 0,
    grid_size: int = 50,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Calibration intercept, slope, O/E and ICI with 95% bootstrap CIs, and the smooth curve.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes (both classes needed).
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1] (clipped to [1e-6, 1 - 1e-6] for the log-odds).
    n_resamples : int, default=200
        Bootstrap resamples (0: no CIs and no band).
    random_state : int, default=0
        Seed of the resampling.
    grid_size : int, default=50
        Points of the smooth curve, evenly spaced between the 1st and 99th risk percentiles
        (the curve is not drawn where there are few patients).

    Returns
    -------
    statistics : dict of str to float
        Each of :data:`CALIBRATION_STATISTICS` and its ``_low``/``_high``; ``ici`` and the curve
        are NaN/empty when the rarer outcome has fewer than 10 patients (too few to smooth).
    curve : DataFrame
        ``predicted, observed, low, high`` on the grid.

    Raises
    ------
    ValueError
        If only one outcome class is present, or the inputs are invalid.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> risk = rng.uniform(0.05, 0.95, 2000)
    >>> stats, _ = calibration_statistics(rng.random(2000) < risk, risk, n_resamples=0)
    >>> abs(stats["slope"] - 1) < 0.2, abs(stats["intercept"]) < 0.2
    (True, True)
    """
    y, r = check_outcomes(np.asarray(y_true, dtype=np.float64), risk)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("Calibration statistics need patients with and without the outcome.")
    r = np.clip(r, _EPS, 1.0 - _EPS)
    z = logit(r)
    knots = _knots(z, float(y.sum()), float(len(y) - y.sum()))
    low, high = np.quantile(r, [0.01, 0.99])
    grid_r = np.linspace(float(low), float(high), grid_size)
    basis = grid_basis = None
    if knots is not None:
        basis, grid_basis = spline_basis(z, knots), spline_basis(logit(grid_r), knots)
    point, curve = _statistics(np.ones((1, len(y))), y, r, z, basis, grid_basis)
    statistics = {name: float(point[name][0]) for name in CALIBRATION_STATISTICS}
    band_low = band_high = np.full(grid_size, np.nan)
    draws = [
        _statistics(weights, y, r, z, basis, grid_basis)
        for weights in resample_weights(len(y), n_resamples, random_state)
    ]
    for name in CALIBRATION_STATISTICS:
        if draws:
            low, high = percentile_bounds(np.concatenate([d[0][name] for d in draws])[:, None])
            statistics[f"{name}_low"], statistics[f"{name}_high"] = float(low[0]), float(high[0])
        else:
            statistics[f"{name}_low"] = statistics[f"{name}_high"] = float("nan")
    if curve is None:
        empty = pd.DataFrame(columns=["predicted", "observed", "low", "high"], dtype=float)
        return statistics, empty
    if draws:
        band_low, band_high = percentile_bounds(
            np.concatenate([d[1] for d in draws if d[1] is not None])
        )
    frame = pd.DataFrame(
        {"predicted": grid_r, "observed": curve[0], "low": band_low, "high": band_high}
    )
    return statistics, frame


def calibration_by_group_statistics(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    shown: dict[str, bool] | None = None,
    n_resamples: int = 200,
    random_state: int = 0,
    grid_size: int = 30,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`calibration_statistics` per group (resampled within the group).

    Parameters
    ----------
    y_true, risk : array-like of shape (n_samples,)
        Outcomes and risks.
    labels : array-like of str of shape (n_samples,)
        Group label per patient.
    shown : dict of str to bool, optional
        Groups the view may show: pass the audit's rule (a group whose size, events or
        non-events are suppressed is False), since O/E and the intercept with the group's mean
        risk give back its events. None shows every group.
    n_resamples, random_state, grid_size
        As for :func:`calibration_statistics`.

    Returns
    -------
    table : DataFrame
        Index ``group``; ``n`` and every statistic with its bounds. A group with one outcome
        class only is listed with NaN statistics.
    curves : DataFrame
        ``group, predicted, observed, low, high``.
    """
    y, r = check_outcomes(y_true, risk)
    group = np.asarray(labels).astype(str)
    if group.shape != y.shape:
        raise ValueError(f"labels {group.shape} must match y_true {y.shape}.")
    rows, curves = [], []
    for index, name in enumerate(np.unique(group)):
        if shown is not None and not shown.get(str(name), False):
            continue
        member = group == name
        row: dict[str, object] = {"group": str(name), "n": int(member.sum())}
        if y[member].min() == y[member].max():
            rows.append(row)
            continue
        stats, curve = calibration_statistics(
            y[member],
            r[member],
            n_resamples=n_resamples,
            random_state=random_state + index,
            grid_size=grid_size,
        )
        rows.append({**row, **stats})
        curves.append(curve.assign(group=str(name)))
    columns = ["n"] + [
        f"{name}{suffix}" for name in CALIBRATION_STATISTICS for suffix in ("", "_low", "_high")
    ]
    table = pd.DataFrame(rows, columns=["group", *columns]).set_index("group")
    curve_columns = ["group", "predicted", "observed", "low", "high"]
    joined = (
        pd.concat(curves, ignore_index=True)[curve_columns]
        if curves
        else pd.DataFrame(columns=curve_columns)
    )
    return table, joined
