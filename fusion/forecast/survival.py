"""Survival utilities of the treatment forecast: discrete time, Kaplan-Meier, anchoring.

Owns the person-period expansion of right-censored follow-up, the Kaplan-Meier estimate, the
synthetic world's true curve, cumulative risk from interval hazards, the bootstrap band of
member curves and the anchoring of hazards to a given horizon risk. Everything is pure numpy:
arrays in, arrays out. Must not import LightGBM, the store, streamlit or the dashboard.

Follow-up up to :data:`data.synthetic.HORIZON_YEARS` is cut into :data:`N_INTERVALS` intervals
of :data:`INTERVAL_YEARS`. A patient contributes one row per interval entered; the row's label is
1 if the event falls in it. A patient censored inside an interval contributes that interval only
when followed up past its midpoint (the actuarial rule: censored patients count as at risk for
half the interval). Censoring is thus handled by the likelihood, never by dropping or
mislabelling censored patients. The cumulative risk is ``F(t_k) = 1 - prod_{j<=k} (1 - h_j)``,
non-decreasing in ``t`` by construction.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import special

from data.vocabulary import HORIZON_YEARS, TREATMENTS

__all__ = [
    "ANCHOR_CLIP",
    "INTERVAL_YEARS",
    "N_INTERVALS",
    "REFERENCE_TREATMENT",
    "anchor_hazards",
    "anchored_band",
    "check_survival",
    "cumulative_risk",
    "kaplan_meier",
    "person_period",
    "summarise_members",
    "treatment_codes",
    "true_curve",
]

INTERVAL_YEARS: Final[float] = 0.5
"""Width of one person-period interval in years."""
N_INTERVALS: Final[int] = 10
"""Number of intervals; ``INTERVAL_YEARS * N_INTERVALS == HORIZON_YEARS``."""
REFERENCE_TREATMENT: Final[str] = "none"
"""Treatment the absolute risk reductions are measured against."""
ANCHOR_CLIP: Final[float] = 1e-9
"""Anchor risks are clipped to ``[ANCHOR_CLIP, 1 - ANCHOR_CLIP]`` (0 and 1 have no logit)."""
_HAZARD_CLIP: Final[float] = 1e-12
_ANCHOR_STEPS: Final[int] = 100

FloatArray = npt.NDArray[np.float64]


def check_survival(
    time: npt.ArrayLike, event: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Validate follow-up: 1-D positive finite times and 0/1 events of the same length.

    Returns
    -------
    time : ndarray of float64 of shape (n_samples,)
    event : ndarray of bool of shape (n_samples,)

    Raises
    ------
    ValueError
        If the shapes differ, a time is not finite and positive, or an event is not 0/1.
    """
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event)
    if t.ndim != 1 or e.shape != t.shape:
        raise ValueError(
            f"time and event must be 1-D of equal length; got shapes {t.shape} and {e.shape}."
        )
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(
            "time must be finite and positive (years of follow-up); drop patients without "
            "follow-up before fitting."
        )
    if not np.isin(e, (0, 1)).all():
        raise ValueError(f"event must be 0/1; got values {np.unique(e)[:5].tolist()}.")
    return t, e.astype(bool)


def treatment_codes(treatment: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Positions in :data:`data.synthetic.TREATMENTS` of treatment names.

    Raises
    ------
    ValueError
        If a name is not a known treatment.
    """
    values = np.asarray(treatment).astype(str)
    unknown = sorted(set(values.tolist()) - set(TREATMENTS))
    if unknown:
        raise ValueError(
            f"Unknown treatments {unknown[:5]}; the forecast model knows {list(TREATMENTS)}."
        )
    lookup = {name: code for code, name in enumerate(TREATMENTS)}
    return np.asarray([lookup[v] for v in values], dtype=np.int64)


def person_period(
    time: npt.ArrayLike,
    event: npt.ArrayLike,
    *,
    interval: float = INTERVAL_YEARS,
    n_intervals: int = N_INTERVALS,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Expand right-censored follow-up into discrete-time person-period rows.

    Interval ``k`` covers ``(k * interval, (k + 1) * interval]``. A patient contributes every
    interval it entered: label 1 in the interval of an observed event, 0 otherwise. A patient
    censored inside an interval contributes it only when followed past the interval midpoint
    (actuarial rule). Follow-up beyond the last interval is truncated.

    Parameters
    ----------
    time : array-like of shape (n_samples,)
        Follow-up time in years (event or censoring), positive.
    event : array-like of shape (n_samples,)
        1 if the event was observed at ``time``, 0 if censored.
    interval : float, default=INTERVAL_YEARS
        Interval width in years.
    n_intervals : int, default=N_INTERVALS
        Number of intervals.

    Returns
    -------
    patient : ndarray of shape (n_rows,)
        Row index of the patient of each person-period row.
    period : ndarray of shape (n_rows,)
        Interval index ``k`` of each row.
    y : ndarray of shape (n_rows,)
        1 if the event happened in that interval.

    Examples
    --------
    >>> patient, period, y = person_period([0.7, 1.2, 0.2], [1, 0, 0], interval=0.5,
    ...                                    n_intervals=2)
    >>> patient.tolist(), period.tolist(), y.tolist()
    ([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 0, 0])
    """
    t, e = check_survival(time, event)
    if interval <= 0 or n_intervals < 1:
        raise ValueError(
            f"interval={interval}, n_intervals={n_intervals}; use a positive width and >= 1."
        )
    end = interval * n_intervals
    last = np.minimum(np.ceil(t / interval).astype(np.int64) - 1, n_intervals - 1)
    beyond = t > end
    event_in = e & ~beyond
    censored_late = ~e & ~beyond & (t - last * interval >= interval / 2)
    include_last = beyond | event_in | censored_late
    counts = last + include_last.astype(np.int64)
    patient = np.repeat(np.arange(t.size, dtype=np.int64), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    period = np.arange(patient.size, dtype=np.int64) - np.repeat(offsets, counts)
    y = (event_in[patient] & (period == last[patient])).astype(np.int64)
    return patient, period, y


def kaplan_meier(time: npt.ArrayLike, event: npt.ArrayLike, times: npt.ArrayLike) -> FloatArray:
    """Kaplan-Meier cumulative incidence ``1 - S(t)`` at the given times.

    Parameters
    ----------
    time : array-like of shape (n_samples,)
        Follow-up time, positive.
    event : array-like of shape (n_samples,)
        1 for an observed event, 0 for censoring.
    times : array-like of shape (n_times,)
        Where to evaluate the estimate.

    Returns
    -------
    ndarray of shape (n_times,)
        Estimated probability of the event by each time.

    Examples
    --------
    >>> kaplan_meier([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 0], [0.5, 1.0, 3.0]).round(3).tolist()
    [0.0, 0.25, 0.625]
    """
    t, e = check_survival(time, event)
    grid = np.asarray(times, dtype=np.float64)
    ordered = np.sort(t)
    event_sorted = np.sort(t[e])
    unique = np.unique(event_sorted)
    at_risk = t.size - np.searchsorted(ordered, unique, side="left")
    deaths = np.searchsorted(event_sorted, unique, side="right") - np.searchsorted(
        event_sorted, unique, side="left"
    )
    survival = np.concatenate([[1.0], np.cumprod(1.0 - deaths / at_risk)])
    at = survival[np.searchsorted(unique, grid, side="right")]
    return np.asarray(1.0 - at, dtype=np.float64)


def true_curve(
    risk_at_horizon: float, times: npt.ArrayLike, horizon: float = HORIZON_YEARS
) -> FloatArray:
    """The synthetic world's cumulative risk at ``times`` (constant hazard).

    ``F(t) = 1 - (1 - r) ** (t / horizon)`` where ``r`` is the true risk at the horizon.

    Examples
    --------
    >>> true_curve(0.75, [0.0, 2.5, 5.0]).round(3).tolist()
    [0.0, 0.5, 0.75]
    """
    t = np.asarray(times, dtype=np.float64)
    return np.asarray(1.0 - (1.0 - risk_at_horizon) ** (t / horizon), dtype=np.float64)


def summarise_members(
    members: FloatArray, band: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean and pointwise percentile band over the first axis of member curves.

    Pointwise percentiles of non-decreasing curves are non-decreasing, so the band is monotone
    like the curves; it is widened where needed to contain the mean.
    """
    tail = 100.0 * (1.0 - band) / 2.0
    risk = members.mean(axis=0)
    lower = np.minimum(np.percentile(members, tail, axis=0), risk)
    upper = np.maximum(np.percentile(members, 100.0 - tail, axis=0), risk)
    return risk, lower, upper


def cumulative_risk(hazards: FloatArray) -> FloatArray:
    """Cumulative risk ``F(t_k) = 1 - prod_{j<=k} (1 - h_j)`` from interval hazards.

    Parameters
    ----------
    hazards : ndarray of shape (..., n_intervals)
        Interval hazards along the last axis.

    Returns
    -------
    ndarray of shape (..., n_intervals + 1)
        Cumulative risk at the interval ends, starting with 0 at time 0.

    Examples
    --------
    >>> cumulative_risk(np.array([0.5, 0.5])).tolist()
    [0.0, 0.5, 0.75]
    """
    h = np.asarray(hazards, dtype=np.float64)
    curves = np.zeros((*h.shape[:-1], h.shape[-1] + 1), dtype=np.float64)
    curves[..., 1:] = 1.0 - np.cumprod(1.0 - h, axis=-1)
    return curves


def anchor_hazards(hazards: FloatArray, received: npt.ArrayLike, risk: npt.ArrayLike) -> FloatArray:
    """Shift hazards on the logit scale so the received option reaches a given horizon risk.

    For each member ``b`` and patient ``i`` one constant ``delta[b, i]`` is added to the
    logit of every interval hazard under every option, chosen so that the cumulative risk
    under ``received[i]`` at the last interval equals ``risk[i]``. The treatment terms (the
    differences between the options' logit hazards) are left as they are: the treatment
    effect is modelled on top of the anchor. The horizon risk is increasing in ``delta``, so
    the root is unique; it is found by bisection (100 halvings of [-60, 60]).

    Parameters
    ----------
    hazards : ndarray of shape (n_members, n_samples, n_treatments, n_intervals)
        Interval hazards (see :meth:`HazardForecaster.predict_member_hazards`).
    received : array-like of int of shape (n_samples,)
        Index in :data:`TREATMENTS` of the option each patient received.
    risk : array-like of shape (n_samples,)
        Horizon risk to reach under ``received`` (clipped to ``[ANCHOR_CLIP, 1 -
        ANCHOR_CLIP]``).

    Returns
    -------
    ndarray of shape (n_members, n_samples, n_treatments, n_intervals)
        The shifted hazards.

    Raises
    ------
    ValueError
        If shapes disagree, a treatment index is out of range or a risk is not in [0, 1].

    Examples
    --------
    >>> h = np.full((1, 1, 2, 2), 0.1)
    >>> h[0, 0, 1] = 0.05  # the second option halves the hazard
    >>> anchored = anchor_hazards(h, [0], [0.5])
    >>> round(float(cumulative_risk(anchored)[0, 0, 0, -1]), 6)
    0.5
    """
    h = np.asarray(hazards, dtype=np.float64)
    codes = np.asarray(received)
    target = np.asarray(risk, dtype=np.float64)
    if h.ndim != 4 or codes.shape != (h.shape[1],) or target.shape != (h.shape[1],):
        raise ValueError(
            f"hazards {h.shape} must be (n_members, n_samples, n_treatments, n_intervals) and "
            f"received {codes.shape} / risk {target.shape} must be (n_samples,) = "
            f"({h.shape[1] if h.ndim == 4 else '?'},); pass one received option and one risk "
            "per patient."
        )
    if codes.size and (
        not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= h.shape[2]
    ):
        raise ValueError(
            f"received must hold option indices 0..{h.shape[2] - 1} (positions in "
            f"{list(TREATMENTS)}); got {np.unique(codes)[:5].tolist()}."
        )
    if not np.all((target >= 0.0) & (target <= 1.0)):
        raise ValueError(
            f"risk must hold probabilities in [0, 1]; got values from {np.nanmin(target)} to "
            f"{np.nanmax(target)}. Pass the fused model's risk (predict_proba[:, 1])."
        )
    logits = special.logit(np.clip(h, _HAZARD_CLIP, 1.0 - _HAZARD_CLIP))
    members = np.arange(h.shape[1])
    own = logits[:, members, codes, :]  # (n_members, n_samples, n_intervals)
    # log survival to reach: log(1 - risk); survival(delta) = exp(-sum softplus(own + delta)).
    goal = -np.log1p(-np.clip(target, ANCHOR_CLIP, 1.0 - ANCHOR_CLIP))[None, :]
    low = np.full(own.shape[:2], -60.0)
    high = np.full(own.shape[:2], 60.0)
    for _ in range(_ANCHOR_STEPS):
        mid = 0.5 * (low + high)
        too_high = np.logaddexp(0.0, own + mid[..., None]).sum(axis=-1) > goal
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    delta = 0.5 * (low + high)
    return np.asarray(special.expit(logits + delta[:, :, None, None]), dtype=np.float64)


def anchored_band(
    hazards: FloatArray,
    codes: npt.NDArray[np.int64],
    risk: npt.ArrayLike,
    *,
    low: npt.ArrayLike | None,
    high: npt.ArrayLike | None,
    band: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Point estimate and band of member hazards anchored to a risk and its interval.

    The point estimate is the mean of the members anchored to ``risk``; the lower limit is
    the ``band`` tail percentile of the members anchored to ``low``, the upper limit the upper
    percentile of the members anchored to ``high`` (``risk`` where not given), each widened to
    contain the point estimate.

    Parameters
    ----------
    hazards : ndarray of shape (n_members, n_samples, n_treatments, n_intervals)
        Interval hazards of every member.
    codes : ndarray of int of shape (n_samples,)
        Index of the option each patient received.
    risk, low, high : array-like of shape (n_samples,)
        Horizon risk to anchor to and its interval (``low``/``high`` optional).
    band : float
        Coverage of the percentile band.

    Returns
    -------
    risk, lower, upper : ndarray of shape (n_samples, n_treatments, n_intervals + 1)
        Anchored point estimate and band.
    horizon_members : ndarray of shape (n_members, n_samples, n_treatments)
        Each member's anchored risk at the horizon.
    """
    centre = cumulative_risk(anchor_hazards(hazards, codes, risk))
    point = centre.mean(axis=0)
    tail = 100.0 * (1.0 - band) / 2.0
    lower_members = centre if low is None else cumulative_risk(anchor_hazards(hazards, codes, low))
    upper_members = (
        centre if high is None else cumulative_risk(anchor_hazards(hazards, codes, high))
    )
    lower = np.minimum(np.percentile(lower_members, tail, axis=0), point)
    upper = np.maximum(np.percentile(upper_members, 100.0 - tail, axis=0), point)
    return point, lower, upper, np.asarray(centre[..., -1], dtype=np.float64)
