"""Honest flags of a bias audit: tests, multiplicity adjustment and detectable differences.

Owns the rule that turns the audit's paired-bootstrap differences into flags
(:func:`wald_differences`, :func:`adjust_pvalues`, :func:`minimum_detectable`,
:func:`comparison_states`) and its settings (:data:`FLAG_METHODS`, :data:`DEFAULT_ALPHA`,
:data:`POWER`, :data:`DEFAULT_MARGIN`). Each shown difference ``metric(group) -
metric(reference)`` gets a two-sided Wald test on its bootstrap standard error (``z = d / se``),
its normal 95% CI ``d +/- z_(1-alpha/2) se`` (so the raw p-value is below alpha exactly when the
CI excludes 0), and a p-value adjusted across every comparison the audit shows (Holm or
Benjamini-Hochberg). A comparison is flagged when its adjusted p-value is below alpha; an
unflagged one whose minimum detectable difference (80% power at the strictest per-comparison
level, ``alpha / m``) exceeds the margin that matters is "insufficient evidence", otherwise
"no difference found". Arrays in, arrays out: no SQL, no streamlit, no audit record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats

from fusion.evaluation.bootstrap import METRICS

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_FLAG_METHOD",
    "DEFAULT_MARGIN",
    "FLAG_METHODS",
    "POWER",
    "STATES",
    "TESTED_METRICS",
    "AuditOptions",
    "FlagMethod",
    "adjust_pvalues",
    "check_flag_settings",
    "comparison_states",
    "delong_variance",
    "minimum_detectable",
    "wald_differences",
]

FlagMethod = Literal["holm", "bh"]
FLAG_METHODS: Final[tuple[str, ...]] = get_args(FlagMethod)
"""``holm`` (family-wise error, Holm 1979) or ``bh`` (false discovery rate, Benjamini-Hochberg
1995)."""

DEFAULT_FLAG_METHOD: Final[FlagMethod] = "holm"
"""The default: Holm keeps the chance of any false flag in an audit at or below alpha."""

DEFAULT_ALPHA: Final[float] = 0.05
"""Level of the flags (after adjustment) and of the CIs (``1 - alpha``)."""

POWER: Final[float] = 0.8
"""Power of the minimum detectable difference."""

DEFAULT_MARGIN: Final[float] = 0.05
"""Smallest difference that matters, on each metric's own scale (AUROC, rates, Brier, CITL)."""

TESTED_METRICS: Final[tuple[str, ...]] = tuple(m for m in METRICS if m != "prevalence")
"""Metrics whose differences are tested and flagged. Prevalence is the case mix, not the
model: its difference is shown with its CI but never flagged."""

STATES: Final[dict[str, str]] = {
    "flagged": "flagged",
    "no_difference": "no difference found",
    "insufficient": "insufficient evidence",
    "not_compared": "not compared",
}
"""The state of a comparison (key -> words shown)."""


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """How a bias audit flags and bands, as the page and ``riskfusion audit`` ask for it.

    Attributes
    ----------
    method : {"holm", "bh"}, default="holm"
        Multiplicity adjustment of the flags.
    alpha : float, default=0.05
        Level of the flags and CIs.
    margin : float, default=0.05
        Smallest difference that matters (for "insufficient evidence").
    age_cuts : tuple of float, optional
        Ages where the age bands start for this audit (``--bins age=40,60,75``); None keeps
        the cohort's (its ``schema.toml``, else the default).
    """

    method: FlagMethod = DEFAULT_FLAG_METHOD
    alpha: float = DEFAULT_ALPHA
    margin: float = DEFAULT_MARGIN
    age_cuts: tuple[float, ...] | None = None


def check_flag_settings(method: str, alpha: float, margin: float) -> FlagMethod:
    """Validate the flag settings; return the method.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`FLAG_METHODS`, ``alpha`` not in (0, 0.5] or
        ``margin`` not positive.
    """
    if method not in FLAG_METHODS:
        raise ValueError(
            f"Unknown flag adjustment {method!r}; choose one of {list(FLAG_METHODS)} "
            f"(default {DEFAULT_FLAG_METHOD!r})."
        )
    if not 0.0 < alpha <= 0.5:
        raise ValueError(f"alpha={alpha}; pass a level in (0, 0.5], e.g. 0.05.")
    if not margin > 0.0:
        raise ValueError(f"margin={margin}; pass the smallest difference that matters, e.g. 0.05.")
    return method  # type: ignore[return-value]


def adjust_pvalues(p_values: npt.ArrayLike, method: FlagMethod) -> npt.NDArray[np.float64]:
    """P-values adjusted for multiplicity across every finite entry (NaN stays NaN).

    Parameters
    ----------
    p_values : array-like
        Raw p-values of any shape; NaN marks a comparison that is not made.
    method : {"holm", "bh"}
        Holm's step-down family-wise adjustment or Benjamini-Hochberg's step-up false discovery
        rate adjustment.

    Returns
    -------
    ndarray of float, same shape

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, np.nan, 0.03], "holm").round(3).tolist()
    [0.03, 0.06, nan, 0.06]
    >>> adjust_pvalues([0.01, 0.04, np.nan, 0.03], "bh").round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    values = p[finite]
    m = len(values)
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adjusted = np.minimum.accumulate((m / np.arange(m, 0, -1)) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"Unknown method {method!r}; choose one of {list(FLAG_METHODS)}.")
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[finite] = result
    return out


def wald_differences(
    point: npt.NDArray[np.float64],
    draws: npt.NDArray[np.float64],
    *,
    alpha: float,
    min_se: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], ...]:
    """Bootstrap standard error, normal CI and two-sided p-value of each difference.

    Parameters
    ----------
    point : ndarray of shape (n_groups,)
        Observed differences (NaN: not compared).
    draws : ndarray of shape (n_resamples, n_groups)
        Paired-bootstrap differences (NaN where a resample lacks the group or a class).
    alpha : float
        The CI is ``1 - alpha``.
    min_se : ndarray of shape (n_groups,), optional
        An analytic standard error to use where it is larger than the bootstrap's (the AUROC's
        DeLong error, :func:`delong_variance`: the bootstrap's is too small for small groups).

    Returns
    -------
    se, low, high, p : ndarray of shape (n_groups,)
        NaN where the difference is NaN, fewer than 2 resamples are finite, or ``se`` is 0.

    Examples
    --------
    >>> draws = np.array([[0.1], [0.3], [0.2], [0.2]])
    >>> se, low, high, p = wald_differences(np.array([0.2]), draws, alpha=0.05)
    >>> round(float(se[0]), 4), bool(low[0] > 0), float(p[0]) < 0.05
    (0.0816, True, True)
    """
    finite = np.isfinite(draws)
    count = finite.sum(axis=0)
    safe = np.where(finite, draws, 0.0)
    mean = np.divide(safe.sum(axis=0), count, out=np.zeros(count.shape), where=count > 0)
    squares = np.where(finite, (draws - mean) ** 2, 0.0).sum(axis=0)
    variance = np.divide(squares, count - 1, out=np.full(count.shape, np.nan), where=count > 1)
    se = np.sqrt(variance)
    if min_se is not None:
        se = np.where(np.isfinite(min_se), np.fmax(se, min_se), se)
    valid = np.isfinite(point) & np.isfinite(se) & (se > 0)
    se = np.where(valid, se, np.nan)
    z_ci = stats.norm.ppf(1.0 - alpha / 2.0)
    low = np.where(valid, point - z_ci * se, np.nan)
    high = np.where(valid, point + z_ci * se, np.nan)
    z = np.divide(np.abs(point), se, out=np.full(point.shape, np.nan), where=valid)
    p = np.where(valid, 2.0 * stats.norm.sf(z), np.nan)
    return se, low, high, p


def delong_variance(
    y_true: npt.NDArray[np.float64],
    risk: npt.NDArray[np.float64],
    codes: npt.NDArray[np.intp],
    n_groups: int,
) -> npt.NDArray[np.float64]:
    """DeLong's variance of each group's AUROC (NaN where a group lacks a class or a pair).

    DeLong, DeLong and Clarke-Pearson (1988): with the placement values ``V10_i`` (share of the
    group's negatives below positive ``i``, ties half) and ``V01_j`` (share of positives above
    negative ``j``), ``var = var(V10) / n_pos + var(V01) / n_neg``.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1, 0, 1.0])
    >>> delong_variance(y, np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9]), np.zeros(6, int), 1).round(4)
    array([0.0247])
    """
    out = np.full(n_groups, np.nan)
    for code in range(n_groups):
        member = codes == code
        positives = np.sort(risk[member & (y_true == 1)])
        negatives = np.sort(risk[member & (y_true == 0)])
        if len(positives) < 2 or len(negatives) < 2:
            continue
        below = np.searchsorted(negatives, positives, side="left")
        tied = np.searchsorted(negatives, positives, side="right") - below
        v10 = (below + 0.5 * tied) / len(negatives)
        above = len(positives) - np.searchsorted(positives, negatives, side="right")
        tied = np.searchsorted(positives, negatives, side="right") - np.searchsorted(
            positives, negatives, side="left"
        )
        v01 = (above + 0.5 * tied) / len(positives)
        out[code] = np.var(v10, ddof=1) / len(positives) + np.var(v01, ddof=1) / len(negatives)
    return out


def minimum_detectable(
    se: npt.ArrayLike, *, alpha: float, n_comparisons: int, power: float = POWER
) -> npt.NDArray[np.float64]:
    """Smallest true difference flagged with probability ``power`` at the strictest level.

    ``(z_(1 - alpha / (2 m)) + z_power) * se``: the difference a two-sided test at ``alpha / m``
    (Bonferroni, Holm's first step and the strictest Benjamini-Hochberg step) detects with the
    stated power, given the comparison's standard error at its group's size.

    Examples
    --------
    >>> minimum_detectable([0.05], alpha=0.05, n_comparisons=1).round(3).tolist()
    [0.14]
    """
    scale = stats.norm.ppf(1.0 - alpha / (2.0 * max(n_comparisons, 1))) + stats.norm.ppf(power)
    return np.asarray(se, dtype=np.float64) * float(scale)


def comparison_states(
    flagged: npt.ArrayLike, mdd: npt.ArrayLike, p_adjusted: npt.ArrayLike, *, margin: float
) -> npt.NDArray[np.str_]:
    """The state of each comparison: a key of :data:`STATES`.

    ``flagged`` where flagged; ``not_compared`` where there is no adjusted p-value;
    ``insufficient`` where the minimum detectable difference exceeds ``margin``;
    ``no_difference`` otherwise.
    """
    flags = np.asarray(flagged, dtype=bool)
    detectable = np.asarray(mdd, dtype=np.float64)
    compared = np.isfinite(np.asarray(p_adjusted, dtype=np.float64))
    states = np.where(detectable > margin, "insufficient", "no_difference")
    states = np.where(flags, "flagged", states)
    return np.where(compared, states, "not_compared")
