"""ROC and precision-recall curves a cohort view may show: coarse, or through given cuts.

Each point of a curve is a confusion matrix, and the difference of two neighbouring points is a
count of events and non-events in a risk interval. :func:`coarse_curve` keeps only cut points
between which (and between which and the decision threshold, whose column totals the page
shows) at least ``min_cell`` events and ``min_cell`` non-events lie, so no count under the floor
follows from a curve; :func:`curve_through` draws a curve through a researcher's allowed cut
points (:func:`fusion.evaluation.disclosure.allowed_thresholds`). :func:`thin_curve` keeps at
most :data:`MAX_CURVE_POINTS` of a curve's points for the screen: a subset of the points the
curve already had, ends included, so thinning reveals nothing the full curve did not.
Streamlit is never imported here (only the dashboard uses it).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.metrics import pr_points, roc_points

__all__ = [
    "MAX_CURVE_POINTS",
    "coarse_curve",
    "coarse_pr",
    "coarse_roc",
    "curve_through",
    "thin_curve",
]


MAX_CURVE_POINTS = 500
"""Most points of a drawn curve: more than a chart's width in pixels shows."""


def thin_curve(
    curve: pd.DataFrame, x: str, y: str, *, max_points: int = MAX_CURVE_POINTS
) -> pd.DataFrame:
    """At most ``max_points`` rows of ``curve``, the ends and the corners where it turns.

    Greedy Douglas-Peucker to a budget: starting from the two ends, the point farthest from
    the chord of its stretch (in the plot's units) is kept next, until ``max_points`` are kept
    or every dropped point lies on a chord. Rows are only dropped, never made up, so a thinned
    coarse curve is still coarse (neighbouring kept points are further apart).

    Parameters
    ----------
    curve : DataFrame
        Points in drawing order.
    x, y : str
        The columns drawn (``fpr, tpr`` or ``recall, precision``); finite values.
    max_points : int, default=MAX_CURVE_POINTS
        Most rows returned (2 or more).

    Returns
    -------
    DataFrame
        The kept rows, in order, index reset; ``curve`` itself when it is short enough.

    Examples
    --------
    >>> line = pd.DataFrame({"fpr": np.linspace(0, 1, 1001), "tpr": np.linspace(0, 1, 1001)})
    >>> thin_curve(line, "fpr", "tpr", max_points=10)["fpr"].tolist()
    [0.0, 1.0]
    """
    if max_points < 2:
        raise ValueError(f"max_points={max_points}; a curve needs 2 or more points.")
    if len(curve) <= max_points:
        return curve
    xs = curve[x].to_numpy(dtype=np.float64)
    ys = curve[y].to_numpy(dtype=np.float64)
    keep = np.zeros(len(curve), dtype=bool)
    keep[[0, -1]] = True
    stretches: list[tuple[float, int, int, int]] = []

    def split(low: int, high: int) -> None:
        if high - low < 2:
            return
        dx, dy = xs[high] - xs[low], ys[high] - ys[low]
        inner_x, inner_y = xs[low + 1 : high] - xs[low], ys[low + 1 : high] - ys[low]
        length = float(np.hypot(dx, dy))
        if length > 0:
            distance = np.abs(dx * inner_y - dy * inner_x) / length
        else:
            distance = np.hypot(inner_x, inner_y)
        far = int(np.argmax(distance))
        if distance[far] > 0:
            heapq.heappush(stretches, (-float(distance[far]), low, high, low + 1 + far))

    split(0, len(curve) - 1)
    kept = 2
    while stretches and kept < max_points:
        _, low, high, middle = heapq.heappop(stretches)
        keep[middle] = True
        kept += 1
        split(low, middle)
        split(middle, high)
    return curve.loc[keep].reset_index(drop=True)


def coarse_curve(
    y_true: npt.ArrayLike, risk: npt.ArrayLike, *, min_cell: int, threshold: float | None = None
) -> pd.DataFrame:
    """ROC and precision-recall points at cuts that leave no count under ``min_cell``.

    Walking the cuts ``risk >= c`` from the highest risk down, a cut is kept when at least
    ``min_cell`` events and ``min_cell`` non-events lie between it and the previous boundary,
    and as many between it and the next boundary. Boundaries are the top (nobody flagged),
    ``threshold`` (whose column totals the page shows, whether or not its confusion matrix is
    shown) and the bottom (everybody flagged). With ``min_cell = 0`` every distinct risk is a
    cut (the exact curve).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities.
    min_cell : int
        Smallest count of events, and of non-events, between two neighbouring points.
    threshold : float, optional
        The decision threshold whose column totals are shown elsewhere.

    Returns
    -------
    DataFrame
        ``threshold, fpr, tpr, recall, precision`` from ``(0, 0)`` (cut above every risk)
        to ``(1, 1)`` (every patient flagged); ``precision`` is NaN where nobody is flagged.
        Empty when no cut between the two ends is safe: a curve of its ends alone would
        look like chance.

    Examples
    --------
    >>> y = [1] * 16 + [0] * 11 + [1] * 11 + [0] * 16
    >>> risk = [0.8] * 27 + [0.2] * 27
    >>> coarse_curve(y, risk, min_cell=11)[["fpr", "tpr"]].round(3).to_numpy().tolist()
    [[0.0, 0.0], [0.407, 0.593], [1.0, 1.0]]
    >>> coarse_curve(y, risk, min_cell=12).empty
    True
    """
    y = np.asarray(y_true, dtype=np.int64)
    r = np.asarray(risk, dtype=np.float64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    columns = ["threshold", "fpr", "tpr", "recall", "precision"]
    empty = pd.DataFrame({name: pd.Series(dtype=np.float64) for name in columns})
    if pos == 0 or neg == 0:
        return empty
    order = np.argsort(-r, kind="stable")
    r, y = r[order], y[order]
    values, starts = np.unique(-r, return_index=True)  # distinct risks, descending
    cum = np.stack(
        [np.add.reduceat(y, starts).cumsum(), np.add.reduceat(1 - y, starts).cumsum()], axis=1
    )
    cuts = -values
    last = len(cuts) - 1
    if min_cell == 0:
        kept = [-1, *range(len(cuts))]
    else:
        ends = [last]
        if threshold is not None and cuts[0] >= threshold > cuts[-1]:
            ends = [int(np.flatnonzero(cuts >= threshold)[-1]), last]
        kept, start, first = [-1], np.zeros(2, dtype=np.int64), 0
        for end in ends:
            # Both columns of ``cum`` never decrease: the next cut far enough from ``start`` is
            # found by bisection, and once one is too close to ``end`` every later one is.
            index = first
            while True:
                index = max(
                    index,
                    int(np.searchsorted(cum[:, 0], start[0] + min_cell)),
                    int(np.searchsorted(cum[:, 1], start[1] + min_cell)),
                )
                if index >= end or (cum[end] - cum[index]).min() < min_cell:
                    break
                kept.append(index)
                start = cum[index]
            start, first = cum[end], end + 1
        kept.append(last)
        if len(kept) == 2:
            return empty
    tp = np.array([0 if k < 0 else cum[k, 0] for k in kept], dtype=np.float64)
    fp = np.array([0 if k < 0 else cum[k, 1] for k in kept], dtype=np.float64)
    flagged = tp + fp
    precision = np.full(len(kept), np.nan)
    np.divide(tp, flagged, out=precision, where=flagged > 0)
    return pd.DataFrame(
        {
            "threshold": [1.0 if k < 0 else float(np.clip(cuts[k], 0.0, 1.0)) for k in kept],
            "fpr": fp / neg,
            "tpr": tp / pos,
            "recall": tp / pos,
            "precision": precision,
        }
    )


def curve_through(
    y_true: npt.ArrayLike, risk: npt.ArrayLike, cuts: Sequence[float]
) -> pd.DataFrame:
    """ROC and precision-recall points at the given cuts only, and the two ends.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities.
    cuts : sequence of float
        Thresholds (``risk >= cut`` flagged), e.g.
        :attr:`fusion.evaluation.disclosure.ThresholdChoice.curve_cuts`.

    Returns
    -------
    DataFrame
        As :func:`coarse_curve`: ``threshold, fpr, tpr, recall, precision`` from nobody flagged
        to everybody flagged; empty when ``cuts`` is empty or ``y_true`` has one class.

    Examples
    --------
    >>> curve_through([0, 1, 0, 1], [0.1, 0.8, 0.4, 0.6], [0.5])[["fpr", "tpr"]].values.tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    y = np.asarray(y_true, dtype=np.int64)
    r = np.asarray(risk, dtype=np.float64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    columns = ["threshold", "fpr", "tpr", "recall", "precision"]
    if pos == 0 or neg == 0 or not len(cuts):
        return pd.DataFrame({name: pd.Series(dtype=np.float64) for name in columns})
    thresholds = np.array([1.0, *sorted(cuts, reverse=True), 0.0])
    flagged = r[None, :] >= thresholds[:, None]
    flagged[0] = False
    flagged[-1] = True
    tp = (flagged & (y == 1)).sum(axis=1).astype(np.float64)
    fp = (flagged & (y == 0)).sum(axis=1).astype(np.float64)
    precision = np.full(len(thresholds), np.nan)
    np.divide(tp, tp + fp, out=precision, where=(tp + fp) > 0)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "fpr": fp / neg,
            "tpr": tp / pos,
            "recall": tp / pos,
            "precision": precision,
        }
    )


def coarse_roc(
    y: npt.NDArray[np.int64],
    risk: npt.NDArray[np.float64],
    *,
    min_cell: int,
    threshold: float | None,
) -> pd.DataFrame:
    """ROC points (``fpr, tpr, threshold``), coarse enough that no step is a small count.

    Thinned to :data:`MAX_CURVE_POINTS` (:func:`thin_curve`), ``(0, 0)`` and ``(1, 1)`` kept.
    """
    if min_cell == 0:
        return thin_curve(roc_points(y, risk), "fpr", "tpr")
    curve = coarse_curve(y, risk, min_cell=min_cell, threshold=threshold)
    return thin_curve(curve.loc[:, ["fpr", "tpr", "threshold"]], "fpr", "tpr")


def coarse_pr(
    y: npt.NDArray[np.int64], risk: npt.NDArray[np.float64], *, min_cell: int, threshold: float
) -> pd.DataFrame:
    """PR points (``recall, precision, threshold``) from everyone flagged to the fewest.

    Thinned to :data:`MAX_CURVE_POINTS` (:func:`thin_curve`), both ends kept.
    """
    if min_cell == 0:
        return thin_curve(pr_points(y, risk), "recall", "precision")
    curve = coarse_curve(y, risk, min_cell=min_cell, threshold=threshold)
    points = curve.loc[curve["precision"].notna(), ["recall", "precision", "threshold"]]
    return thin_curve(points.iloc[::-1].reset_index(drop=True), "recall", "precision")
