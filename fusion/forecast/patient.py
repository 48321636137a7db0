"""One patient's forecast: curves per treatment option, the comparison of options, JSON.

Owns the :class:`PatientForecast` record, its assembly from one patient's curves
(:func:`make_patient_forecast`: absolute risk reduction and number needed to treat against
:data:`fusion.forecast.survival.REFERENCE_TREATMENT`), the decision whether the lowest-risk
option is distinguishable from the others (:func:`compare_options`) and the JSON document of
``riskfusion forecast``. Pure: arrays in, records and dicts out. Must not import LightGBM, the
store, streamlit or the dashboard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.vocabulary import HORIZON_YEARS, TREATMENTS
from fusion.forecast.survival import REFERENCE_TREATMENT, FloatArray, true_curve

__all__ = [
    "FORECAST_FORMAT_VERSION",
    "FORECAST_NOTE",
    "MIN_DISTINGUISHABLE_GAIN",
    "OptionComparison",
    "PatientForecast",
    "compare_options",
    "forecast_to_dict",
    "make_patient_forecast",
    "write_forecast_json",
]

FORECAST_NOTE: Final[str] = (
    "Model estimate for research and demonstration only, not medical advice: it assumes no "
    "unmeasured confounding of the treatment choice."
)
"""The caveat shown with every forecast."""
MIN_DISTINGUISHABLE_GAIN: Final[float] = 0.01
"""Smallest horizon-risk difference (1 point) for which an option is called distinguishably
lower; smaller estimated gains are reported as not distinguishable whatever the band says."""
FORECAST_FORMAT_VERSION: Final[int] = 1
"""Version of the :func:`forecast_to_dict` document."""


@dataclass(frozen=True, slots=True)
class OptionComparison:
    """Whether the option with the lowest estimated risk is distinguishable from the others.

    Attributes
    ----------
    best : str
        The option with the lowest estimated horizon risk (member mean).
    runner_up : str
        The option closest to it.
    gain : float
        ``risk(runner_up) - risk(best)`` at the horizon (mean over members, >= 0).
    gain_lower, gain_upper : float
        The ``band`` percentile limits of that difference across the bootstrap members.
    band : float
        Coverage of those limits, e.g. 0.9.
    distinguishable : bool
        True when, against every other option, the difference is at least
        :data:`MIN_DISTINGUISHABLE_GAIN` and its lower band limit is above 0.
    """

    best: str
    runner_up: str
    gain: float
    gain_lower: float
    gain_upper: float
    band: float
    distinguishable: bool

    def describe(self, horizon: float) -> str:
        """One plain sentence for the page, e.g. "No option is distinguishably lower ...".

        Examples
        --------
        >>> OptionComparison("targeted", "standard", 0.004, -0.01, 0.02, 0.9,
        ...                  False).describe(5.0)[:56]
        'No option has a distinguishably lower risk at 5 years: t'
        """
        level = f"{round(100 * self.band)}%"
        band = f"{level} band {100 * self.gain_lower:+.1f} to {100 * self.gain_upper:+.1f} points"
        if self.distinguishable:
            return (
                f"Lowest estimated risk at {horizon:g} years: {self.best}, "
                f"{100 * self.gain:.1f} points below {self.runner_up}, the next option "
                f"({band}: lower in the model's bootstrap refits)."
            )
        return (
            f"No option has a distinguishably lower risk at {horizon:g} years: {self.best} is "
            f"estimated lowest, but only {100 * self.gain:.1f} points below {self.runner_up} "
            f"({band}), within the model's uncertainty."
        )


@dataclass(frozen=True, slots=True)
class PatientForecast:
    """One patient's cumulative risk over time under each treatment option.

    Attributes
    ----------
    patient_id : str
        The patient.
    model_version : str
        Version of the forecast model (``<fusion version>-forecast``).
    method : str
        Readable method, e.g. ``"S-learner discrete-time hazard (LightGBM), 12-model
        bootstrap band"``.
    horizon : float
        Years at which ``effects`` (ARR, NNT) are given.
    curves : DataFrame
        Long form, one row per treatment and time (0 to ``horizon``): ``treatment, time, risk,
        lower, upper, true_risk`` (``true_risk`` NaN without ground truth).
    effects : DataFrame
        One row per treatment at ``horizon``: ``treatment, risk, lower, upper, arr`` (absolute
        risk reduction vs ``"none"``), ``nnt`` (``1 / arr``, NaN when ``arr <= 0``),
        ``true_risk`` (NaN if unknown).
    best_treatment : str
        The treatment with the lowest estimated risk at ``horizon``.
    received_treatment : str or None
        The treatment the patient actually received, if known.
    comparison : OptionComparison or None, default=None
        Whether ``best_treatment`` is distinguishably lower than the other options (None when
        the member risks were not given).
    anchor_risk : float or None, default=None
        The fused model's horizon risk the curves are anchored to: the curve under
        ``received_treatment`` reaches it at ``horizon`` (None for unanchored curves).
    """

    patient_id: str
    model_version: str
    method: str
    horizon: float
    curves: pd.DataFrame
    effects: pd.DataFrame
    best_treatment: str
    received_treatment: str | None
    comparison: OptionComparison | None = None
    anchor_risk: float | None = None


def compare_options(
    horizon_members: npt.ArrayLike,
    *,
    band: float = 0.9,
    min_gain: float = MIN_DISTINGUISHABLE_GAIN,
) -> OptionComparison:
    """Decide whether one patient's lowest-risk option stands out from the others.

    The differences are taken member by member (the bootstrap refits share the patient's
    baseline risk), so a real effect stands out even when the options' bands overlap.

    Parameters
    ----------
    horizon_members : array-like of shape (n_members, n_treatments)
        Each bootstrap member's horizon risk under each option in :data:`TREATMENTS` order.
    band : float, default=0.9
        Coverage of the difference's percentile band.
    min_gain : float, default=MIN_DISTINGUISHABLE_GAIN
        Smallest mean difference called distinguishable.

    Returns
    -------
    OptionComparison

    Raises
    ------
    ValueError
        If the shape is not (n_members, n_treatments) or ``band`` is not in (0, 1).

    Examples
    --------
    >>> members = np.array([[0.30, 0.20, 0.25], [0.32, 0.21, 0.26], [0.31, 0.22, 0.27]])
    >>> comparison = compare_options(members)
    >>> comparison.best, comparison.runner_up, comparison.distinguishable
    ('standard', 'targeted', True)
    >>> compare_options(np.array([[0.30, 0.20, 0.21], [0.30, 0.21, 0.20]])).distinguishable
    False
    """
    risks = np.asarray(horizon_members, dtype=np.float64)
    if risks.ndim != 2 or risks.shape[1] != len(TREATMENTS) or risks.shape[0] < 1:
        raise ValueError(
            f"horizon_members has shape {risks.shape}; pass (n_members, {len(TREATMENTS)}) "
            f"risks in {list(TREATMENTS)} order."
        )
    if not 0.0 < band < 1.0:
        raise ValueError(f"band={band!r}; pass a coverage in (0, 1), e.g. 0.9.")
    mean = risks.mean(axis=0)
    best = int(np.argmin(mean))
    tail = 100.0 * (1.0 - band) / 2.0
    others = [a for a in range(len(TREATMENTS)) if a != best]
    differences = risks[:, others] - risks[:, [best]]
    gains = differences.mean(axis=0)
    lows = np.percentile(differences, tail, axis=0)
    highs = np.percentile(differences, 100.0 - tail, axis=0)
    closest = int(np.argmin(gains))
    return OptionComparison(
        best=TREATMENTS[best],
        runner_up=TREATMENTS[others[closest]],
        gain=float(gains[closest]),
        gain_lower=float(lows[closest]),
        gain_upper=float(highs[closest]),
        band=band,
        distinguishable=bool(np.all((gains >= min_gain) & (lows > 0.0))),
    )


def make_patient_forecast(
    *,
    patient_id: str,
    model_version: str,
    method: str,
    times: npt.ArrayLike,
    risk: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    true_risks: Mapping[str, float] | None = None,
    received_treatment: str | None = None,
    comparison: OptionComparison | None = None,
    anchor_risk: float | None = None,
) -> PatientForecast:
    """Assemble a :class:`PatientForecast` from one patient's curves.

    Parameters
    ----------
    patient_id, model_version, method : str
        Identification of the forecast.
    times : array-like of shape (n_times,)
        Curve times in years; the last one is the horizon.
    risk, lower, upper : ndarray of shape (n_treatments, n_times)
        Cumulative risk and band per treatment in :data:`TREATMENTS` order.
    true_risks : mapping of treatment to float, optional
        True risk at the horizon under each treatment (synthetic cohorts).
    received_treatment : str, optional
        The treatment actually received.
    comparison : OptionComparison, optional
        :func:`compare_options` of the patient's member risks at the horizon.
    anchor_risk : float, optional
        The fused risk the curves were anchored to (:meth:`HazardForecaster.predict_anchored`).

    Returns
    -------
    PatientForecast
    """
    grid = np.asarray(times, dtype=np.float64)
    horizon = float(grid[-1])
    truth = dict(true_risks or {})
    frames = []
    for a, name in enumerate(TREATMENTS):
        true = (
            true_curve(truth[name], grid, HORIZON_YEARS)
            if name in truth
            else np.full(grid.size, np.nan)
        )
        frames.append(
            pd.DataFrame(
                {
                    "treatment": name,
                    "time": grid,
                    "risk": risk[a],
                    "lower": lower[a],
                    "upper": upper[a],
                    "true_risk": true,
                }
            )
        )
    curves = pd.concat(frames, ignore_index=True)
    at_horizon = risk[:, -1]
    reference = at_horizon[TREATMENTS.index(REFERENCE_TREATMENT)]
    arr = reference - at_horizon
    effects = pd.DataFrame(
        {
            "treatment": list(TREATMENTS),
            "risk": at_horizon,
            "lower": lower[:, -1],
            "upper": upper[:, -1],
            "arr": arr,
            "nnt": np.where(arr > 0, 1.0 / np.where(arr > 0, arr, 1.0), np.nan),
            "true_risk": [truth.get(name, np.nan) for name in TREATMENTS],
        }
    )
    return PatientForecast(
        patient_id=patient_id,
        model_version=model_version,
        method=method,
        horizon=horizon,
        curves=curves,
        effects=effects,
        best_treatment=TREATMENTS[int(np.argmin(at_horizon))],
        received_treatment=received_treatment,
        comparison=comparison,
        anchor_risk=anchor_risk,
    )


def _numbers(values: npt.ArrayLike) -> list[float | None]:
    return [None if math.isnan(v) else round(float(v), 6) for v in np.asarray(values, float)]


def forecast_to_dict(forecast: PatientForecast) -> dict[str, Any]:
    """The JSON document of ``riskfusion forecast`` (format in ``docs/forecast.md``).

    Returns
    -------
    dict
        ``format_version, patient_id, model_version, method, horizon_years, note,
        received_treatment, best_treatment, best_treatment_distinguishable, anchor_risk,
        ground_truth, treatments``; each entry of
        ``treatments`` holds ``treatment, times, risk, lower, upper, true_risk`` (lists over
        ``times``; ``true_risk`` null without ground truth) and the horizon summary
        ``risk_at_horizon, lower_at_horizon, upper_at_horizon, arr, nnt,
        true_risk_at_horizon`` (null when undefined). Missing numbers are ``null``, never NaN.
    """
    effects = forecast.effects.set_index("treatment")
    has_truth = bool(forecast.curves["true_risk"].notna().any())
    treatments = []
    for name, curve in forecast.curves.groupby("treatment", sort=False):
        row = effects.loc[name]
        treatments.append(
            {
                "treatment": str(name),
                "times": _numbers(curve["time"]),
                "risk": _numbers(curve["risk"]),
                "lower": _numbers(curve["lower"]),
                "upper": _numbers(curve["upper"]),
                "true_risk": _numbers(curve["true_risk"]) if has_truth else None,
                "risk_at_horizon": _numbers([row["risk"]])[0],
                "lower_at_horizon": _numbers([row["lower"]])[0],
                "upper_at_horizon": _numbers([row["upper"]])[0],
                "arr": _numbers([row["arr"]])[0],
                "nnt": _numbers([row["nnt"]])[0],
                "true_risk_at_horizon": _numbers([row["true_risk"]])[0],
            }
        )
    return {
        "format_version": FORECAST_FORMAT_VERSION,
        "patient_id": forecast.patient_id,
        "model_version": forecast.model_version,
        "method": forecast.method,
        "horizon_years": forecast.horizon,
        "reference_treatment": REFERENCE_TREATMENT,
        "received_treatment": forecast.received_treatment,
        "best_treatment": forecast.best_treatment,
        "best_treatment_distinguishable": (
            None if forecast.comparison is None else forecast.comparison.distinguishable
        ),
        "anchor_risk": forecast.anchor_risk,
        "ground_truth": has_truth,
        "note": FORECAST_NOTE,
        "treatments": treatments,
    }


def write_forecast_json(forecast: PatientForecast, out: str | Path) -> Path:
    """Write :func:`forecast_to_dict` as indented JSON (atomically: complete or absent).

    Returns
    -------
    Path
        The file written.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    partial.write_text(json.dumps(forecast_to_dict(forecast), indent=2, allow_nan=False))
    partial.replace(target)
    return target
