"""Person-period design and the S-learner's logistic treatment terms.

Owns the float32 design matrix of person-period rows (patient inputs, treatment one-hot,
interval start), its per-booster views, and the S-learner's elastic-net logistic hazard over
the interval indicators, the standardised inputs, their missing indicators, and per treated arm
an unpenalised indicator plus arm x input effect modifiers. Pure numpy and scipy: arrays in,
arrays out. Must not import LightGBM, the store, streamlit or the dashboard.

The lasso weight of modifier column ``j`` is ``effect_lasso * sqrt(2 log(p) * q(1 - q) *
sum_i x_ij**2)``, with ``p`` the number of modifier columns and ``q`` the mean event rate per
interval: the universal threshold of the column's score under no modification (the largest of
``p`` noise scores stays below it), so noise terms vanish while a real, strong modifier
survives, shrunk by about ``threshold / (q(1 - q) sum_i x_ij**2)``; the more inputs, the more
shrinkage (measured in ``docs/forecast.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from data.vocabulary import TREATMENTS
from fusion.forecast.survival import REFERENCE_TREATMENT, FloatArray, person_period

__all__ = [
    "PERIOD_FEATURE",
    "TREATMENT_FEATURES",
    "fit_treatment_terms",
    "modifier_mask",
    "option_design",
    "period_design",
    "person_period_rows",
    "slot_columns",
    "slot_view",
    "standardisation",
    "treatment_terms",
]

PERIOD_FEATURE: Final[str] = "period_start"
"""Design column of the interval start in years."""
TREATMENT_FEATURES: Final[tuple[str, ...]] = tuple(
    f"treatment_{t}" for t in TREATMENTS if t != REFERENCE_TREATMENT
)
"""Design columns of the treated arms' one-hot indicators."""

Design = npt.NDArray[np.float32]


def period_design(
    values: FloatArray,
    patient: npt.NDArray[np.int64],
    period: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int64],
    interval: float,
) -> Design:
    """Person-period design: patient inputs, treatment one-hot, interval start (float32).

    Columns in the order of ``slot_columns(names, "treatment")``; other slots use a prefix of
    it plus the last column (:func:`slot_view`).

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Patient inputs.
    patient, period, codes : ndarray of int of shape (n_rows,)
        Patient row, interval index and treatment index of each person-period row.
    interval : float
        Interval width in years.

    Returns
    -------
    ndarray of float32 of shape (n_rows, n_features + n_treated_arms + 1)
    """
    onehot = np.stack(
        [codes == TREATMENTS.index(n.removeprefix("treatment_")) for n in TREATMENT_FEATURES],
        axis=1,
    )
    return np.column_stack([values[patient], onehot, period.astype(np.float64) * interval]).astype(
        np.float32
    )


def person_period_rows(
    values: FloatArray,
    time: FloatArray,
    event: npt.NDArray[np.bool_],
    codes: npt.NDArray[np.int64],
    interval: float,
    n_intervals: int,
) -> tuple[Design, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Design, label and treatment index of every person-period row of some patients.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        Patient inputs.
    time, event, codes : ndarray of shape (n_samples,)
        Follow-up, event flag and treatment index of each patient.
    interval, n_intervals
        The discrete time grid (:func:`fusion.forecast.survival.person_period`).

    Returns
    -------
    design : ndarray of float32 of shape (n_rows, n_columns)
    y : ndarray of int of shape (n_rows,)
    codes : ndarray of int of shape (n_rows,)
    """
    patient, period, y = person_period(time, event, interval=interval, n_intervals=n_intervals)
    design = period_design(values, patient, period, codes[patient], interval)
    return design, y, codes[patient]


def option_design(
    values: FloatArray, n_intervals: int, interval: float
) -> tuple[Design, npt.NDArray[np.int64]]:
    """Design of every patient under every option in every interval.

    Returns
    -------
    design : ndarray of float32 of shape (n_samples * n_treatments * n_intervals, n_columns)
        Rows ordered (patient, treatment, interval).
    codes : ndarray of int of shape (n_rows,)
        Treatment index of each row.
    """
    n, arms, k = len(values), len(TREATMENTS), n_intervals
    patient = np.repeat(np.arange(n, dtype=np.int64), arms * k)
    codes = np.tile(np.repeat(np.arange(arms, dtype=np.int64), k), n)
    period = np.tile(np.arange(k, dtype=np.int64), n * arms)
    return period_design(values, patient, period, codes, interval), codes


def slot_columns(feature_names: Sequence[str], slot: str) -> list[str]:
    """Column names of a booster slot's design view (treatment columns only in ``"treatment"``)."""
    names = [str(n) for n in feature_names]
    if slot == "treatment":
        return [*names, *TREATMENT_FEATURES, PERIOD_FEATURE]
    return [*names, PERIOD_FEATURE]


def slot_view(design: Design, slot: str, n_features: int) -> Design:
    """The design columns a booster slot sees: inputs, interval start (all in ``"treatment"``)."""
    if slot == "treatment":
        return design
    keep = [*range(n_features), design.shape[1] - 1]
    return np.ascontiguousarray(design[:, keep])


def standardisation(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and scale of each input for the logistic terms, ignoring missing values.

    A column without values gets mean 0, a constant or empty one scale 1.

    Examples
    --------
    >>> mean, scale = standardisation(np.array([[1.0, 5.0], [3.0, np.nan]]))
    >>> mean.tolist(), scale.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    """
    mean = np.nan_to_num(np.nanmean(values, axis=0), nan=0.0)
    scale = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0)
    return mean, np.where(scale > 0, scale, 1.0)


def treatment_terms(
    design: Design,
    codes: npt.NDArray[np.int64],
    *,
    z_mean: FloatArray,
    z_scale: FloatArray,
    interval: float,
    n_intervals: int,
) -> FloatArray:
    """Columns of the S-learner's logistic hazard, shape (n_rows, n_terms).

    Interval indicators, standardised inputs (missing counted as the mean) and missing
    indicators, then per treated arm its indicator and the indicator times each
    standardised input (the effect modifiers).
    """
    n_features = z_mean.size
    raw = design[:, :n_features].astype(np.float64)
    z = np.nan_to_num((raw - z_mean) / z_scale, nan=0.0)
    period = np.rint(design[:, -1] / interval).astype(np.int64)
    blocks = [
        (period[:, None] == np.arange(n_intervals)[None, :]).astype(np.float64),
        z,
        np.isnan(raw).astype(np.float64),
    ]
    for name in TREATMENT_FEATURES:
        arm = (codes == TREATMENTS.index(name.removeprefix("treatment_")))[:, None]
        blocks += [arm.astype(np.float64), arm * z]
    return np.asarray(np.hstack(blocks), dtype=np.float64)


def _penalties(n_features: int, n_intervals: int, effect_penalty: float) -> FloatArray:
    """Ridge penalty per term: none on interval and treatment indicators."""
    ones = np.ones(n_features)
    arm = np.r_[0.0, ones * effect_penalty]
    return np.concatenate(
        [np.zeros(n_intervals), ones, ones, np.tile(arm, len(TREATMENT_FEATURES))]
    )


def modifier_mask(n_features: int, n_intervals: int) -> npt.NDArray[np.bool_]:
    """Mask of the effect-modifier terms (arm x input) among :func:`treatment_terms`.

    Examples
    --------
    >>> modifier_mask(1, 2).astype(int).tolist()
    [0, 0, 0, 0, 0, 1, 0, 1]
    """
    arm = np.r_[False, np.ones(n_features, dtype=bool)]
    head = np.zeros(n_intervals + 2 * n_features, dtype=bool)
    return np.concatenate([head, np.tile(arm, len(TREATMENT_FEATURES))])


def _lasso_weights(
    terms: FloatArray, target: FloatArray, mask: npt.NDArray[np.bool_], effect_lasso: float
) -> FloatArray:
    """L1 weight per modifier column: ``effect_lasso`` x its score's universal threshold."""
    columns = terms[:, mask]
    rate = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
    spread = np.sqrt(rate * (1.0 - rate) * np.sum(columns**2, axis=0))
    p = max(columns.shape[1], 2)
    return np.asarray(effect_lasso * np.sqrt(2.0 * np.log(p)) * spread, np.float64)


def fit_treatment_terms(
    terms: FloatArray,
    y: npt.NDArray[np.int64],
    *,
    n_features: int,
    n_intervals: int,
    effect_penalty: float,
    effect_lasso: float,
) -> FloatArray:
    """Elastic-net logistic hazard over :func:`treatment_terms` (L-BFGS-B).

    A ridge penalty on every input term (``effect_penalty`` on the modifiers, none on the
    interval and treatment indicators) plus the lasso on the effect modifiers, made smooth by
    the standard split of each modifier coefficient into a positive and a negative part, both
    bounded below by 0.

    Parameters
    ----------
    terms : ndarray of shape (n_rows, n_terms)
        :func:`treatment_terms` of the person-period rows.
    y : ndarray of int of shape (n_rows,)
        1 where the event happened in the row's interval.
    n_features, n_intervals : int
        Number of patient inputs and of intervals.
    effect_penalty, effect_lasso : float
        Ridge penalty and lasso multiple of the effect modifiers.

    Returns
    -------
    ndarray of shape (n_terms,)
        The coefficients.
    """
    penalty = _penalties(n_features, n_intervals, effect_penalty)
    target = y.astype(np.float64)
    mask = modifier_mask(n_features, n_intervals)
    free = ~mask
    n_free, n_mod = int(free.sum()), int(mask.sum())
    l1 = np.tile(_lasso_weights(terms, target, mask, effect_lasso), 2)

    def unpack(params: FloatArray) -> FloatArray:
        theta = np.empty(terms.shape[1])
        theta[free] = params[:n_free]
        theta[mask] = params[n_free : n_free + n_mod] - params[n_free + n_mod :]
        return theta

    def loss(params: FloatArray) -> tuple[float, FloatArray]:
        theta = unpack(params)
        margin = terms @ theta
        value = np.sum(np.logaddexp(0.0, margin) - target * margin)
        value += 0.5 * np.sum(penalty * theta**2) + np.dot(l1, params[n_free:])
        grad = terms.T @ (special.expit(margin) - target) + penalty * theta
        gradient = np.r_[grad[free], grad[mask], -grad[mask]] + np.r_[np.zeros(n_free), l1]
        return float(value), np.asarray(gradient, dtype=np.float64)

    start = np.zeros(n_free + 2 * n_mod)
    start[:n_intervals] = special.logit(np.clip(target.mean(), 1e-4, 1 - 1e-4))
    bounds = [(None, None)] * n_free + [(0.0, None)] * (2 * n_mod)
    result = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return unpack(np.asarray(result.x, dtype=np.float64))
