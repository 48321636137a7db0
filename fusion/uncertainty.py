"""Uncertainty interval of a patient's fused risk, calibrated out of fold on train + validation.

Owns fitting, querying and measuring the interval (the fitted record and its file:
:mod:`fusion.interval_calibration`; out-of-fold risks and finite-sample rules:
:mod:`fusion.interval_folds`). Every served interval has ``low < risk < high``, and states what
it covers (``target``):

- ``"true_risk"`` (cohorts with ground truth, i.e. the synthetic demo): cross-conformal on the
  logit scale. The fusion model is refitted ``K`` times inside train + validation; on each
  patient's out-of-fold risk the error ``|logit(true risk) - logit(risk)|`` is computed, and its
  conformal quantile (rank ``ceil((n + 1) * level)``) is the half-width around the patient's
  fused logit. Under exchangeability it contains the patient's **true risk** with probability
  about ``level`` (cross-conformal: at least ``2 * level - 1`` in the worst case, Vovk 2015).
- ``"event_rate"`` (every cohort; the only choice without ground truth): the exact
  (Clopper-Pearson) ``level`` interval of the event rate among the calibration patients whose
  out-of-fold risk is nearest the patient's risk, widened where needed to contain the fused risk
  itself (so a miscalibrated model shows how far the event rate may lie from its risk). It
  covers the **event rate among patients with this predicted risk**, E[y | fused risk], not the
  patient's own risk: from binary outcomes the spread of the true risk among patients with the
  same prediction cannot be identified.

With fewer calibration patients than :func:`fusion.interval_folds.minimum_calibration` (9 for
90%), or without two patients of each outcome, no interval is served: the calibration carries
the reason a page shows. Both targets are fitted for every combination of missing modalities
(what-if rows, or a patient without a scan). Streamlit is not imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from data.vocabulary import MASKABLE_MODALITIES
from fusion.features import mask_modalities
from fusion.interval_calibration import (
    INTERVAL_TARGETS,
    IntervalCalibration,
    IntervalTarget,
    check_target,
)
from fusion.interval_folds import (
    FOLDS,
    binomial_band,
    combinations,
    conformal_quantile,
    minimum_calibration,
    missing_key,
    out_of_fold_risks,
    too_few_reason,
)
from fusion.model import FusionClassifier

__all__ = [
    "METHODS",
    "RiskInterval",
    "calibrated_intervals",
    "fit_interval_calibration",
    "interval_coverage",
    "measure_interval",
    "missing_key",
    "risk_interval",
]

logger = logging.getLogger(__name__)

GRID_SIZE = 201
EPSILON = 1e-6
MARGIN = 0.05
"""Smallest logit distance of a bound from the fused risk, so an interval never collapses."""
NEIGHBOURS = 40
TARGET_WORDS: Mapping[IntervalTarget, str] = {
    "true_risk": "this patient's true risk",
    "event_rate": "the event rate among patients with this predicted risk",
}
METHODS: Mapping[IntervalTarget, str] = {
    "true_risk": "cross_conformal_logit",
    "event_rate": "neighbour_binomial",
}
METHOD_WORDS: Mapping[IntervalTarget, str] = {
    "true_risk": "cross-conformal on the logit scale against the synthetic true risk",
    "event_rate": "exact binomial interval of the outcomes of patients with the nearest risk",
}


@dataclass(frozen=True, slots=True)
class RiskInterval:
    """Interval of one patient's fused risk and what it claims to cover.

    Attributes
    ----------
    low, high : float
        Interval bounds (probabilities), ``low < risk < high``.
    level : float
        Nominal coverage of ``target``, e.g. 0.9.
    method : str
        ``"cross_conformal_logit"`` (target ``"true_risk"``) or ``"neighbour_binomial"``
        (target ``"event_rate"``).
    target : {"true_risk", "event_rate"}
        What the interval covers: the patient's true risk, or the event rate among patients
        with the same predicted risk.
    n_calibration : int, default=0
        Patients it was calibrated on (train + validation, out of fold).
    missing : tuple of str, default=()
        Modalities missing in the row (the calibration used for it).
    """

    low: float
    high: float
    level: float
    method: str
    target: IntervalTarget
    n_calibration: int = 0
    missing: tuple[str, ...] = ()

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    def describe(self) -> str:
        """One sentence stating what the interval covers and how it was made.

        Examples
        --------
        >>> RiskInterval(0.1, 0.4, 0.9, "neighbour_binomial", target="event_rate",
        ...              n_calibration=400).describe()[:66]
        'approximate 90% interval for the event rate among patients with th'
        """
        # "Patients with this predicted risk" are approximated by the nearest ones.
        approximate = "approximate " if self.target == "event_rate" else ""
        return (
            f"{approximate}{self.level:.0%} interval for {TARGET_WORDS[self.target]} "
            f"({METHOD_WORDS[self.target]}, {self.n_calibration} patients scored out of fold)"
        )


def _logit(p: npt.ArrayLike, eps: float = 1e-15) -> npt.NDArray[np.float64]:
    """Logit of ``p`` clipped to ``[eps, 1 - eps]`` (finite for 0 and 1)."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.asarray(special.logit(q), dtype=np.float64)


def _row_missing(
    X: pd.DataFrame, modality_columns: Mapping[str, Sequence[str]]
) -> list[tuple[str, ...]]:
    """Per row, the maskable modalities whose inputs are all missing."""
    flags = {
        m: X.loc[:, list(cols)].isna().all(axis=1).to_numpy()
        for m, cols in modality_columns.items()
        if cols
    }
    return [
        tuple(m for m in MASKABLE_MODALITIES if m in flags and flags[m][i]) for i in range(len(X))
    ]


def _unavailable(
    level: float,
    n: int,
    modality_columns: Mapping[str, Sequence[str]],
    reason: str,
) -> IntervalCalibration:
    logger.warning("risk interval not calibrated: %s", reason)
    return IntervalCalibration(
        level=level,
        target="event_rate",
        n_calibration=n,
        folds=0,
        modality_columns={k: tuple(v) for k, v in modality_columns.items()},
        logit_halfwidths={},
        grid=(),
        event_rate_bands={},
        reason=reason,
    )


def fit_interval_calibration(
    model: FusionClassifier,
    X_cal: pd.DataFrame,
    y_cal: npt.ArrayLike,
    true_risk_cal: npt.ArrayLike | None,
    *,
    modality_columns: Mapping[str, Sequence[str]],
    level: float = 0.9,
    folds: int = FOLDS,
    random_state: int = 0,
) -> IntervalCalibration:
    """Calibrate the interval out of fold on ``X_cal``, for every set of missing modalities.

    Parameters
    ----------
    model : FusionClassifier
        The fitted fusion model (refitted ``folds`` times with its parameters).
    X_cal : DataFrame of shape (n_cal, n_features)
        Calibration inputs: train + validation.
    y_cal : array-like of shape (n_cal,)
        Their outcomes (0/1).
    true_risk_cal : array-like of shape (n_cal,) or None
        Synthetic true risk; None or any NaN: only the ``"event_rate"`` target is fitted.
    modality_columns : mapping of str to sequence of str
        Model inputs of each of :data:`MASKABLE_MODALITIES`.
    level : float, default=0.9
        Nominal coverage, in (0, 1).
    folds : int, default=5
        Refits inside ``X_cal`` (fewer when an outcome is rarer).
    random_state : int, default=0
        Seed of the folds.

    Returns
    -------
    IntervalCalibration
        Target ``"true_risk"`` when the true risk is given, else ``"event_rate"``; with a
        ``reason`` and no interval when the patients are too few for ``level``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level}; pass a probability in (0, 1), e.g. 0.9.")
    labels = np.asarray(y_cal).astype(np.int64)
    if labels.shape != (len(X_cal),):
        raise ValueError(f"y_cal has shape {labels.shape}; expected ({len(X_cal)},).")
    unknown = sorted(set(modality_columns) - set(MASKABLE_MODALITIES))
    if unknown:
        raise ValueError(
            f"Unknown modalities {unknown} in modality_columns; allowed: "
            f"{list(MASKABLE_MODALITIES)}."
        )
    truth = None if true_risk_cal is None else np.asarray(true_risk_cal, dtype=np.float64)
    if truth is not None and (truth.shape != (len(X_cal),) or not np.all(np.isfinite(truth))):
        truth = None
    n = len(X_cal)
    if n < minimum_calibration(level):
        return _unavailable(level, n, modality_columns, too_few_reason(n, level))
    try:
        oof, n_folds = out_of_fold_risks(
            model,
            X_cal,
            labels,
            modality_columns=modality_columns,
            folds=folds,
            random_state=random_state,
        )
    except ValueError as err:  # an outcome too rare to refit on
        return _unavailable(level, n, modality_columns, too_few_reason(n, level, why=str(err)))
    grid = np.linspace(0.0, 1.0, GRID_SIZE)
    halfwidths: dict[str, float] = {}
    bands: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    for key, risk in oof.items():
        if truth is not None:
            errors = np.abs(_logit(truth, EPSILON) - _logit(risk, EPSILON))
            halfwidths[key] = max(conformal_quantile(errors, level), MARGIN)
        bands[key] = binomial_band(risk, labels, grid, level=level)
    return IntervalCalibration(
        level=level,
        target="true_risk" if truth is not None else "event_rate",
        n_calibration=n,
        folds=n_folds,
        modality_columns={k: tuple(v) for k, v in modality_columns.items()},
        logit_halfwidths=halfwidths,
        grid=tuple(float(v) for v in grid),
        event_rate_bands=bands,
    )


def calibrated_intervals(
    calibration: IntervalCalibration,
    risk: npt.ArrayLike,
    missing: Sequence[tuple[str, ...]],
    *,
    target: IntervalTarget | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Interval bounds for fused risks, each with its set of missing modalities.

    Every row gets ``low < risk < high`` (for risks strictly between 0 and 1).

    Parameters
    ----------
    calibration : IntervalCalibration
    risk : array-like of shape (n_samples,)
        Fused risks.
    missing : sequence of tuple of str, length n_samples
        Missing modalities of each row.
    target : {"true_risk", "event_rate"}, optional
        Default: the calibration's own target.

    Returns
    -------
    low, high : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        If the calibration serves no interval (its reason), or ``target="true_risk"`` but the
        calibration had no ground truth.
    """
    if not calibration.available:
        raise ValueError(calibration.reason)
    chosen = calibration.target if target is None else check_target(target)
    values = np.asarray(risk, dtype=np.float64)
    if values.shape != (len(missing),):
        raise ValueError(f"risk has shape {values.shape}; expected ({len(missing)},).")
    if chosen == "true_risk" and not calibration.logit_halfwidths:
        raise ValueError(
            "This calibration had no ground truth, so it has no 'true_risk' interval; use "
            "target='event_rate'."
        )
    keys = [missing_key(row) for row in missing]
    z = _logit(values)
    if chosen == "true_risk":
        half = np.array([calibration.logit_halfwidths[k] for k in keys])
        return special.expit(z - half), special.expit(z + half)
    grid = np.asarray(calibration.grid)
    low = np.empty_like(values)
    high = np.empty_like(values)
    for i, (value, key) in enumerate(zip(values, keys, strict=True)):
        band_low, band_high = calibration.event_rate_bands[key]
        low[i] = np.interp(value, grid, band_low)
        high[i] = np.interp(value, grid, band_high)
    # The band is about the group; widened to contain the patient's own fused risk.
    return (
        np.minimum(low, special.expit(z - MARGIN)),
        np.maximum(high, special.expit(z + MARGIN)),
    )


def risk_interval(
    calibration: IntervalCalibration, model: FusionClassifier, X: pd.DataFrame
) -> RiskInterval:
    """The interval of one feature row, shape (1, n_features), under ``model``.

    Modalities whose inputs are all missing in the row (a what-if, or no scan) select the
    calibration fitted without them. This is the call behind ``RiskService.interval_of``.

    Raises
    ------
    ValueError
        If ``X`` is not one row, or the calibration serves no interval (its reason).
    """
    if len(X) != 1:
        raise ValueError(f"X has {len(X)} rows; pass one patient's row, shape (1, n_features).")
    missing = _row_missing(X, calibration.modality_columns)
    risk = model.predict_proba(X)[:, 1]
    low, high = calibrated_intervals(calibration, risk, missing)
    return RiskInterval(
        low=float(low[0]),
        high=float(high[0]),
        level=calibration.level,
        method=METHODS[calibration.target],
        target=calibration.target,
        n_calibration=calibration.n_calibration,
        missing=missing[0],
    )


def _event_rate_estimate(
    risk: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], k: int
) -> npt.NDArray[np.float64]:
    """E[true risk | fused risk] at each row: mean true risk of ``k`` neighbours in fused risk.

    The neighbours are the ``k`` rows around it in fused-risk order (a window centred on the
    row, shifted inwards at the ends), so memory and time stay O(n log n) for any test split.

    Examples
    --------
    >>> _event_rate_estimate(np.array([0.1, 0.9, 0.2]), np.array([1.0, 5.0, 3.0]), 2).tolist()
    [2.0, 4.0, 2.0]
    """
    n = len(risk)
    k = min(k, n)
    order = np.argsort(risk, kind="stable")
    sums = np.concatenate([[0.0], np.cumsum(truth[order])])
    start = np.clip(np.arange(n) - k // 2, 0, n - k)
    estimate = np.empty(n, dtype=np.float64)
    estimate[order] = (sums[start + k] - sums[start]) / k
    return estimate


def _finite(values: npt.ArrayLike | None, n: int) -> npt.NDArray[np.float64] | None:
    array = None if values is None else np.asarray(values, dtype=np.float64)
    if array is not None and (array.shape != (n,) or not np.all(np.isfinite(array))):
        return None
    return array


def measure_interval(
    calibration: IntervalCalibration,
    model: FusionClassifier,
    X_test: pd.DataFrame,
    true_risk_test: npt.ArrayLike | None,
    y_test: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Width, strictness and coverage of the interval on the test split.

    For each set of missing modalities (the test rows masked accordingly) and each target:
    ``mean_width``; ``strict_share``, the share of rows with ``low < risk < high`` (1.0 by
    construction); with outcomes, ``outcome_rate`` against ``mean_low`` and ``mean_high`` (the
    test event rate is the mean of the covered quantity, so it should lie between the mean
    bounds); with the true risk, ``coverage_true_risk`` of each target and
    ``coverage_event_rate``, where the event rate of patients like this is estimated as the
    mean true risk of the 40 test patients with the nearest fused risk (an estimate with its
    own error of a few points).

    Returns
    -------
    dict
        ``{missing key: {target: {"mean_width": ..., "coverage_true_risk": ..., ...}}}``;
        ``{}`` when the calibration serves no interval.
    """
    if not calibration.available:
        return {}
    truth = _finite(true_risk_test, len(X_test))
    outcomes = _finite(y_test, len(X_test))
    targets = [t for t in INTERVAL_TARGETS if t == "event_rate" or calibration.logit_halfwidths]
    result: dict[str, Any] = {}
    for missing in combinations():
        X = mask_modalities(X_test, calibration.modality_columns, missing)
        risk = model.predict_proba(X)[:, 1]
        rows = [missing] * len(X)
        measured: dict[str, Any] = {}
        rate = None if truth is None else _event_rate_estimate(risk, truth, NEIGHBOURS)
        for target in targets:
            low, high = calibrated_intervals(calibration, risk, rows, target=target)
            entry: dict[str, float] = {
                "mean_width": float(np.mean(high - low)),
                "strict_share": float(np.mean((low < risk) & (risk < high))),
            }
            if outcomes is not None:
                entry["outcome_rate"] = float(np.mean(outcomes))
                entry["mean_low"] = float(np.mean(low))
                entry["mean_high"] = float(np.mean(high))
            if truth is not None and rate is not None:
                entry["coverage_true_risk"] = interval_coverage(low, high, truth)
                entry["coverage_event_rate"] = interval_coverage(low, high, rate)
                entry["mean_abs_error_true_risk"] = float(np.mean(np.abs(risk - truth)))
            measured[target] = entry
        result[missing_key(missing)] = measured
    return result


def interval_coverage(low: npt.ArrayLike, high: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Share of rows whose ``truth`` lies in ``[low, high]``.

    Examples
    --------
    >>> interval_coverage([0.1, 0.2], [0.3, 0.4], [0.2, 0.5])
    0.5
    """
    lo, hi, t = (np.asarray(a, dtype=np.float64) for a in (low, high, truth))
    if not (lo.shape == hi.shape == t.shape):
        raise ValueError(f"Shapes differ: low {lo.shape}, high {hi.shape}, truth {t.shape}.")
    if t.size == 0:
        raise ValueError("No rows to measure coverage on; pass at least one.")
    return float(np.mean((t >= lo) & (t <= hi)))
