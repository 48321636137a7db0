"""Decision-curve analysis: the net benefit of acting on the model's risk, with bootstrap bands.

Owns the clinical-usefulness view of the performance page, the bias audit and their exports
(Vickers & Elkin 2006). At a threshold probability ``t`` a clinician who treats everyone with
``risk >= t`` gains, per patient, ``TP/n - FP/n * t / (1 - t)``: the true positives, less the
false positives weighted by the odds at which the clinician is indifferent between treating and
not. The curve is compared with treating everyone (``prevalence - (1 - prevalence) * t/(1-t)``)
and no one (0). Bands are percentile intervals over the bootstrap resamples of
:func:`fusion.evaluation.bootstrap.resample_weights`, one set of resamples for the model and
treat-all, so the two can be compared.

**Disclosure.** Two net benefits at thresholds between which nobody's risk lies give that
threshold's true and false positives exactly. For a researcher the counts are therefore taken at
the allowed cut points of :func:`fusion.evaluation.disclosure.allowed_thresholds` only: at a
threshold ``t`` the model treats the patients at or above the lowest allowed cut that is ``>= t``
(the ``applied_cut`` column), so every count a curve gives away is one the role may see anyway.
Groups under the floor are left out by the caller (:func:`decision_curves_by_group` takes the
audit's suppression).

Arrays in, frames out: must not import SQL or streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.bootstrap import check_outcomes, percentile_bounds, resample_weights

__all__ = [
    "DCA_THRESHOLDS",
    "decision_curve",
    "decision_curves_by_group",
    "snap_up",
]


DCA_THRESHOLDS: npt.NDArray[np.float64] = np.round(np.arange(1, 61) / 100, 2)
"""Default threshold probabilities of a decision curve: 1% to 60% in steps of 1 point.

Above 60% a clinician would need three false positives or fewer to be worth one true positive
at most, a range in which screening decisions are rarely made; pass ``thresholds`` to widen it.
"""


def snap_up(thresholds: npt.ArrayLike, cuts: npt.ArrayLike | None) -> npt.NDArray[np.float64]:
    """The cut each threshold acts at: the lowest of ``cuts`` at or above it, else ``inf``.

    With ``cuts`` None every threshold acts at itself. ``inf`` treats no one (the top boundary of
    :func:`fusion.evaluation.disclosure.allowed_thresholds`).

    Examples
    --------
    >>> snap_up([0.05, 0.2, 0.5], [0.1, 0.3]).tolist()
    [0.1, 0.3, inf]
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if cuts is None:
        return t.copy()
    allowed = np.sort(np.asarray(cuts, dtype=np.float64))
    index = np.searchsorted(allowed, t - 1e-12, side="left")
    padded = np.append(allowed, np.inf)
    snapped: npt.NDArray[np.float64] = padded[index]
    return snapped


def _positives(
    weights: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    order: npt.NDArray[np.intp],
    rank: npt.NDArray[np.intp],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Weighted true and false positives at each cut (``rank``: rows flagged) and the total n."""
    w = weights[:, order]
    cum_tp = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w * y[order], axis=1)], axis=1)
    cum_all = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w, axis=1)], axis=1)
    tp = cum_tp[:, rank]
    return tp, cum_all[:, rank] - tp, cum_all[:, -1:]


def decision_curve(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    *,
    thresholds: npt.ArrayLike | None = None,
    cuts: npt.ArrayLike | None = None,
    n_resamples: int = 200,
    random_state: int = 0,
) -> pd.DataFrame:
    """Net benefit of the model, of treating all and of treating none, with bootstrap bands.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    thresholds : array-like of float, optional
        Threshold probabilities strictly inside (0, 1); default :data:`DCA_THRESHOLDS`.
    cuts : array-like of float, optional
        The cut points the counts may be taken at (a researcher's allowed thresholds); None
        takes them at every threshold.
    n_resamples : int, default=200
        Bootstrap resamples of the patients (0: no bands).
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    DataFrame
        One row per threshold: ``threshold, applied_cut, net_benefit, low, high, treat_all,
        treat_all_low, treat_all_high, treat_none``; bands are NaN without resamples.

    Raises
    ------
    ValueError
        If a threshold is not strictly inside (0, 1), or the outcomes or risks are invalid.

    Examples
    --------
    >>> curve = decision_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], thresholds=[0.2, 0.5],
    ...                        n_resamples=0)
    >>> curve[["threshold", "net_benefit", "treat_all"]].round(4).to_numpy().tolist()
    [[0.2, 0.4375, 0.375], [0.5, 0.25, 0.0]]
    """
    y, r = check_outcomes(y_true, risk)
    t = DCA_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0 or (t <= 0).any() or (t >= 1).any():
        raise ValueError("thresholds must be probabilities strictly inside (0, 1), e.g. 0.05-0.5.")
    if n_resamples < 0:
        raise ValueError(f"n_resamples={n_resamples}; pass 0 (no bands) or more.")
    applied = snap_up(t, cuts)
    order = np.argsort(-r, kind="stable")
    # Rows flagged at each applied cut: those with risk >= cut (descending order).
    rank = np.searchsorted(-r[order], -applied, side="right").astype(np.intp)
    odds = t / (1.0 - t)

    def curves(
        weights: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        tp, fp, n = _positives(weights, y, order, rank)
        events = (weights * y).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            model = (tp - fp * odds) / n
            treat_all = (events - (n - events) * odds) / n
        return model, treat_all

    model, treat_all = curves(np.ones((1, len(y))))
    out = pd.DataFrame(
        {
            "threshold": t,
            "applied_cut": applied,
            "net_benefit": model[0],
            "low": np.nan,
            "high": np.nan,
            "treat_all": treat_all[0],
            "treat_all_low": np.nan,
            "treat_all_high": np.nan,
            "treat_none": 0.0,
        }
    )
    if n_resamples and len(y):
        drawn = [curves(w) for w in resample_weights(len(y), n_resamples, random_state)]
        out["low"], out["high"] = percentile_bounds(np.concatenate([m for m, _ in drawn]))
        out["treat_all_low"], out["treat_all_high"] = percentile_bounds(
            np.concatenate([a for _, a in drawn])
        )
    return out


def decision_curves_by_group(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    shown: Mapping[str, bool] | None = None,
    thresholds: npt.ArrayLike | None = None,
    cuts: npt.ArrayLike | None = None,
    n_resamples: int = 200,
    random_state: int = 0,
) -> pd.DataFrame:
    """:func:`decision_curve` per group (resampled within the group), stacked with a ``group``.

    Parameters
    ----------
    y_true, risk : array-like of shape (n_samples,)
        Outcomes and risks.
    labels : array-like of str of shape (n_samples,)
        Group label per patient (as :func:`fusion.evaluation.groups.group_labels` writes them).
    shown : mapping of str to bool, optional
        Which groups the view may show (the audit's suppression: False for a suppressed group);
        None shows every group.
    thresholds, cuts, n_resamples, random_state
        As for :func:`decision_curve`; ``cuts`` are the audit's cut points, allowed in every
        group at once.

    Returns
    -------
    DataFrame
        The columns of :func:`decision_curve` after ``group``, groups in sorted order.
    """
    y, r = check_outcomes(y_true, risk)
    group = np.asarray(labels).astype(str)
    if group.shape != y.shape:
        raise ValueError(f"labels {group.shape} must match y_true {y.shape}.")
    frames = []
    for index, name in enumerate(np.unique(group)):
        if shown is not None and not shown.get(str(name), False):
            continue
        member = group == name
        curve = decision_curve(
            y[member],
            r[member],
            thresholds=thresholds,
            cuts=cuts,
            n_resamples=n_resamples,
            random_state=random_state + index,
        )
        curve.insert(0, "group", str(name))
        frames.append(curve)
    if not frames:
        empty = decision_curve([0, 1], [0.5, 0.5], thresholds=thresholds, n_resamples=0)
        return empty.iloc[0:0].assign(group=pd.Series(dtype=str))[["group", *empty.columns]]
    return pd.concat(frames, ignore_index=True)
