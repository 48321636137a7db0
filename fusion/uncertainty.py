"""Uncertainty interval of a patient's fused risk, calibrated on the validation split.

Owns fitting, querying and measuring the interval (the fitted record and its file:
:mod:`fusion.interval_calibration`). An interval states what it covers (``target``):

- ``"true_risk"`` (cohorts with ground truth, i.e. the synthetic demo): split-conformal on the
  logit scale. On the validation split the signed error ``logit(true risk) - logit(fused
  risk)`` is computed and its lower and upper ``(1 - level) / 2`` quantiles (with the
  conformal finite-sample correction) become the interval's offsets around the patient's fused
  logit. Under exchangeability of validation and test patients it contains the patient's
  **true risk** with probability >= ``level``; it needs the true risk, so only a synthetic
  cohort can have it.
- ``"event_rate"`` (every cohort; the only choice without ground truth): a percentile bootstrap
  band of the isotonic calibration curve fitted on the validation outcomes, read at the
  patient's fused risk. It estimates the **event rate among patients with this predicted
  risk**, E[y | fused risk], not the patient's own risk: from binary outcomes the spread of the
  true risk among patients with the same prediction cannot be identified, so no outcome-based
  interval can promise to contain an individual's true risk.

Both are fitted separately for every combination of missing modalities (what-if rows, or a
patient without a scan), because the fused risk is less accurate without a test. A bootstrap
ensemble of the fusion booster was measured and dropped: its spread was uncorrelated with the
error against the true risk (see ``docs/models.md``). Streamlit is not imported here.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special
from sklearn.isotonic import IsotonicRegression

from data.vocabulary import MASKABLE_MODALITIES
from fusion.features import mask_modalities
from fusion.interval_calibration import (
    INTERVAL_TARGETS,
    IntervalCalibration,
    IntervalTarget,
    check_target,
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
LOGIT_LIMIT = 40.0
NEIGHBOURS = 40
TARGET_WORDS: Mapping[IntervalTarget, str] = {
    "true_risk": "this patient's true risk",
    "event_rate": "the event rate among patients with this predicted risk",
}
METHODS: Mapping[IntervalTarget, str] = {
    "true_risk": "split_conformal_logit",
    "event_rate": "isotonic_bootstrap",
}
METHOD_WORDS: Mapping[IntervalTarget, str] = {
    "true_risk": "split-conformal on the logit scale against the synthetic true risk",
    "event_rate": "bootstrap band of the isotonic calibration curve of the outcomes",
}


@dataclass(frozen=True, slots=True)
class RiskInterval:
    """Interval of one patient's fused risk and what it claims to cover.

    Attributes
    ----------
    low, high : float
        Interval bounds (probabilities).
    level : float
        Nominal coverage of ``target``, e.g. 0.9.
    method : str
        ``"split_conformal_logit"`` (target ``"true_risk"``) or ``"isotonic_bootstrap"``
        (target ``"event_rate"``).
    target : {"true_risk", "event_rate"}
        What the interval covers: the patient's true risk, or the event rate among patients
        with the same predicted risk.
    n_calibration : int, default=0
        Validation patients it was calibrated on.
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
        >>> RiskInterval(0.1, 0.4, 0.9, "isotonic_bootstrap", target="event_rate",
        ...              n_calibration=400).describe()[:66]
        'approximate 90% interval for the event rate among patients with th'
        """
        # The event-rate band under-covered on the demo (docs/models.md), so it says so.
        approximate = "approximate " if self.target == "event_rate" else ""
        return (
            f"{approximate}{self.level:.0%} interval for {TARGET_WORDS[self.target]} "
            f"({METHOD_WORDS[self.target]}, {self.n_calibration} validation patients)"
        )


def _clipped_logit(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Logit of ``p`` clipped to ``[EPSILON, 1 - EPSILON]`` (finite for 0 and 1)."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.asarray(special.logit(q), dtype=np.float64)


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


def _combinations() -> list[tuple[str, ...]]:
    return [
        combo
        for size in range(len(MASKABLE_MODALITIES) + 1)
        for combo in itertools.combinations(MASKABLE_MODALITIES, size)
    ]


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


def _conformal_offsets(errors: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    """Lower and upper quantiles of ``errors`` with the split-conformal correction.

    Each one-sided bound uses rank ``ceil((n + 1) * (1 + level) / 2)``, so each side misses
    with probability <= ``(1 - level) / 2`` for an exchangeable new row. With too few rows
    for that rank the honest interval is the whole range (a warning says so).
    """
    n = len(errors)
    ordered = np.sort(errors)
    rank = math.ceil((n + 1) * (1 + level) / 2)
    if rank > n:
        warnings.warn(
            f"{n} validation rows are too few for a {level:.0%} interval (it needs at least "
            f"{math.ceil(2 / (1 - level)) - 1}), so the interval is the whole range 0-1; use "
            "a larger cohort or a lower level.",
            stacklevel=3,
        )
        return -LOGIT_LIMIT, LOGIT_LIMIT
    return float(ordered[n - rank]), float(ordered[rank - 1])


def _isotonic_band(
    risk: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    grid: npt.NDArray[np.float64],
    *,
    level: float,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    curves = np.empty((n_bootstrap, len(grid)))
    for b in range(n_bootstrap):
        index = rng.integers(0, len(risk), len(risk))
        curves[b] = (
            IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            .fit(risk[index], y[index])
            .predict(grid)
        )
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return tuple(float(v) for v in low), tuple(float(v) for v in high)


def fit_interval_calibration(
    model: FusionClassifier,
    X_val: pd.DataFrame,
    y_val: npt.ArrayLike,
    true_risk_val: npt.ArrayLike | None,
    *,
    modality_columns: Mapping[str, Sequence[str]],
    level: float = 0.9,
    n_bootstrap: int = 200,
    random_state: int = 0,
) -> IntervalCalibration:
    """Calibrate the interval on the validation split, for every set of missing modalities.

    Parameters
    ----------
    model : FusionClassifier
        The fitted fusion model.
    X_val : DataFrame of shape (n_val, n_features)
        Validation inputs (not used to fit the model's trees).
    y_val : array-like of shape (n_val,)
        Validation outcomes (0/1), for the event-rate band.
    true_risk_val : array-like of shape (n_val,) or None
        Synthetic true risk; None or any NaN: only the ``"event_rate"`` target is fitted.
    modality_columns : mapping of str to sequence of str
        Model inputs of each of :data:`MASKABLE_MODALITIES`.
    level : float, default=0.9
        Nominal coverage, in (0, 1).
    n_bootstrap : int, default=200
        Resamples of the event-rate band.
    random_state : int, default=0
        Seed of the resamples.

    Returns
    -------
    IntervalCalibration
        Target ``"true_risk"`` when the true risk is given, else ``"event_rate"``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level}; pass a probability in (0, 1), e.g. 0.9.")
    if n_bootstrap < 10:
        raise ValueError(f"n_bootstrap={n_bootstrap}; use at least 10 resamples (default 200).")
    labels = np.asarray(y_val).astype(np.int64)
    if labels.shape != (len(X_val),):
        raise ValueError(f"y_val has shape {labels.shape}; expected ({len(X_val)},).")
    truth = None if true_risk_val is None else np.asarray(true_risk_val, dtype=np.float64)
    if truth is not None and (truth.shape != (len(X_val),) or not np.all(np.isfinite(truth))):
        truth = None
    unknown = sorted(set(modality_columns) - set(MASKABLE_MODALITIES))
    if unknown:
        raise ValueError(
            f"Unknown modalities {unknown} in modality_columns; allowed: "
            f"{list(MASKABLE_MODALITIES)}."
        )
    rng = np.random.default_rng(random_state)
    grid = np.linspace(0.0, 1.0, GRID_SIZE)
    offsets: dict[str, tuple[float, float]] = {}
    bands: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    for missing in _combinations():
        risk = model.predict_proba(mask_modalities(X_val, modality_columns, missing))[:, 1]
        key = missing_key(missing)
        if truth is not None:
            offsets[key] = _conformal_offsets(_clipped_logit(truth) - _clipped_logit(risk), level)
        bands[key] = _isotonic_band(
            risk, labels, grid, level=level, n_bootstrap=n_bootstrap, rng=rng
        )
    return IntervalCalibration(
        level=level,
        target="true_risk" if truth is not None else "event_rate",
        n_calibration=len(X_val),
        modality_columns={k: tuple(v) for k, v in modality_columns.items()},
        logit_offsets=offsets,
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
        If ``target="true_risk"`` but the calibration had no ground truth.
    """
    chosen = calibration.target if target is None else check_target(target)
    values = np.asarray(risk, dtype=np.float64)
    if values.shape != (len(missing),):
        raise ValueError(f"risk has shape {values.shape}; expected ({len(missing)},).")
    if chosen == "true_risk" and not calibration.logit_offsets:
        raise ValueError(
            "This calibration had no ground truth, so it has no 'true_risk' interval; use "
            "target='event_rate'."
        )
    low = np.empty_like(values)
    high = np.empty_like(values)
    grid = np.asarray(calibration.grid)
    for i, (value, row_missing) in enumerate(zip(values, missing, strict=True)):
        key = missing_key(row_missing)
        if chosen == "true_risk":
            below, above = calibration.logit_offsets[key]
            z = float(_clipped_logit(value))
            low[i], high[i] = special.expit(z + below), special.expit(z + above)
        else:
            band_low, band_high = calibration.event_rate_bands[key]
            low[i] = np.interp(value, grid, band_low)
            high[i] = np.interp(value, grid, band_high)
    return low, high


def risk_interval(
    calibration: IntervalCalibration, model: FusionClassifier, X: pd.DataFrame
) -> RiskInterval:
    """The interval of one feature row, shape (1, n_features), under ``model``.

    Modalities whose inputs are all missing in the row (a what-if, or no scan) select the
    calibration fitted without them. This is the call behind ``RiskService.interval_of``.
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


def measure_interval(
    calibration: IntervalCalibration,
    model: FusionClassifier,
    X_test: pd.DataFrame,
    true_risk_test: npt.ArrayLike | None,
) -> dict[str, Any]:
    """Width and, with ground truth, coverage of the interval on the test split.

    For each set of missing modalities (the test rows masked accordingly): mean width of
    each target; with the true risk, ``coverage_true_risk`` of each target and
    ``coverage_event_rate`` of the event-rate band, where the event rate of patients like
    this is estimated as the mean true risk of the 40 test patients with the nearest fused
    risk (an estimate with its own error of a few points).

    Returns
    -------
    dict
        ``{missing key: {target: {"mean_width": ..., "coverage_true_risk": ..., ...}}}``.
    """
    truth = None if true_risk_test is None else np.asarray(true_risk_test, dtype=np.float64)
    if truth is not None and (truth.shape != (len(X_test),) or not np.all(np.isfinite(truth))):
        truth = None
    targets = [t for t in INTERVAL_TARGETS if t == "event_rate" or calibration.logit_offsets]
    result: dict[str, Any] = {}
    for missing in _combinations():
        X = mask_modalities(X_test, calibration.modality_columns, missing)
        risk = model.predict_proba(X)[:, 1]
        rows = [missing] * len(X)
        measured: dict[str, Any] = {}
        rate = (
            None if truth is None else _event_rate_estimate(risk, truth, min(NEIGHBOURS, len(risk)))
        )
        for target in targets:
            low, high = calibrated_intervals(calibration, risk, rows, target=target)
            entry: dict[str, float] = {"mean_width": float(np.mean(high - low))}
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
