"""Disclosure control of the cohort views: who sets the suppression floor, and coarse curves.

Owns two rules the performance page, the bias audit and their exports share:

* **The floor is configuration, not a widget.** :func:`resolve_min_cell` turns the floor
  configured by the operator (``RISKFUSION_MIN_CELL``, :class:`fusion.settings.Settings`) and the
  value a user asks for into the floor a view applies: anyone may raise it; only an admin may
  lower it (the service writes that to the audit trail).
* **Curves show no small step.** Each point of a ROC or precision-recall curve is a confusion
  matrix, and the difference of two neighbouring points is a count of events and non-events in
  a risk interval. :func:`coarse_curve` keeps only cut points between which (and between which
  and the decision threshold, whose column totals the page shows) at least ``min_cell`` events
  and ``min_cell`` non-events lie, so no count under the floor follows from a curve.
* **A researcher's thresholds are cut points too.** Two confusion matrices at neighbouring
  thresholds differ by the patients between them. :func:`allowed_thresholds` keeps the cut points
  between which (and the model's threshold) at least ``min_cell`` events and non-events lie,
  :func:`choose_threshold` snaps a requested threshold to them and :func:`curve_through` draws
  curves through the same cut points, so no shown number at one allowed threshold, minus one at
  another, is a small count.

Cell suppression of tables lives in :mod:`fusion.evaluation.fairness`. Must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.admin.access import AccessDeniedError, Identity

__all__ = [
    "LOWER_FLOOR_MESSAGE",
    "ThresholdChoice",
    "allowed_thresholds",
    "choose_threshold",
    "coarse_curve",
    "curve_through",
    "resolve_min_cell",
]

THRESHOLD_GRID: npt.NDArray[np.float64] = np.round(np.arange(1, 100) / 100, 2)
"""Candidate thresholds of a researcher: the page slider's steps strictly inside (0, 1)."""

LOWER_FLOOR_MESSAGE = (
    "The {role} role may not lower the suppression floor: {requested} is below the configured "
    "{floor} (RISKFUSION_MIN_CELL). Choose {floor} or more, or ask an admin."
)
"""Refusal when a non-admin asks for a floor under the configured one."""


def resolve_min_cell(identity: Identity | None, requested: int | None, floor: int) -> int:
    """The suppression floor a view applies for ``identity``.

    Parameters
    ----------
    identity : Identity or None
        The signed-in user; None (a caller without a role) is treated like a researcher.
    requested : int or None
        The floor asked for; None takes the configured ``floor``.
    floor : int
        The configured floor (``Settings.min_cell``).

    Returns
    -------
    int
        ``requested`` (or ``floor`` when None).

    Raises
    ------
    ValueError
        If ``requested`` is negative.
    AccessDeniedError
        If ``requested`` is below ``floor`` and the role is not admin.

    Examples
    --------
    >>> from fusion.admin.access import Identity
    >>> resolve_min_cell(Identity("r@h.org", "researcher", "oidc"), 20, 11)
    20
    >>> resolve_min_cell(Identity("a@h.org", "admin", "oidc"), 3, 11)
    3
    >>> resolve_min_cell(None, None, 11)
    11
    """
    if requested is None:
        return floor
    if requested < 0:
        raise ValueError(
            f"min_cell={requested}; pass 0 (no suppression, admin only) or a positive count."
        )
    if requested < floor and (identity is None or identity.role != "admin"):
        role = "anonymous" if identity is None else identity.role
        raise AccessDeniedError(
            LOWER_FLOOR_MESSAGE.format(role=role, requested=requested, floor=floor)
        )
    return int(requested)


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
            for index in range(first, end):
                step, rest = cum[index] - start, cum[end] - cum[index]
                if step.min() >= min_cell and rest.min() >= min_cell:
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


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """The threshold a view applies, and the cut points it was chosen from.

    Attributes
    ----------
    requested : float
        The threshold asked for.
    threshold : float
        The threshold applied: ``requested`` itself, or the nearest of ``allowed``.
    allowed : tuple of float or None
        The thresholds the role may choose, ascending (the model's threshold included); None
        when every threshold is allowed.
    curve_cuts : tuple of float or None
        The cut points a curve may pass through (``allowed`` less the model's threshold,
        which is a boundary only); None when curves are not restricted.
    min_cell : int
        Smallest count between neighbouring allowed thresholds.
    """

    requested: float
    threshold: float
    allowed: tuple[float, ...] | None
    curve_cuts: tuple[float, ...] | None
    min_cell: int

    @property
    def snapped(self) -> bool:
        """Whether the applied threshold differs from the requested one."""
        return self.threshold != self.requested

    def note(self) -> str:
        """One sentence for the page: the applied threshold and why (empty when unrestricted)."""
        if self.allowed is None:
            return ""
        choices = ", ".join(f"{value:.2f}" for value in self.allowed)
        head = (
            f"Threshold {self.requested:.2f} snapped to {self.threshold:.2f}, the nearest "
            "allowed cut point. "
            if self.snapped
            else ""
        )
        return (
            f"{head}Researchers choose among the thresholds {choices}: between neighbouring "
            f"ones lie at least {self.min_cell} events and {self.min_cell} non-events, so no "
            "count under the floor follows from comparing two thresholds."
        )


def _band_counts(
    y: npt.NDArray[np.int64],
    risks: npt.NDArray[np.float64],
    groups: npt.NDArray[np.intp],
    cuts: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Events and non-events flagged (``risk >= cut``) per cut, model and group.

    Returns shape ``(n_cuts, n_models * n_groups * 2)``.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 1
    columns = groups * 2 + (1 - y)  # [events, non-events] per group
    counts = np.zeros((len(cuts), len(risks), n_groups * 2), dtype=np.int64)
    for model, risk in enumerate(risks):
        flagged = risk[None, :] >= cuts[:, None]
        for column in range(n_groups * 2):
            counts[:, model, column] = flagged[:, columns == column].sum(axis=1)
    return counts.reshape(len(cuts), -1)


def allowed_thresholds(
    y_true: npt.ArrayLike,
    risks: Sequence[npt.ArrayLike],
    *,
    min_cell: int,
    threshold: float,
    groups: npt.ArrayLike | None = None,
    candidates: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Cut points a researcher may choose besides the model's threshold, ascending.

    Walking ``candidates`` from the highest down, a cut is kept when, for every model in
    ``risks`` (and every group of ``groups``), the patients between it and the previous
    boundary, and between it and the next boundary, hold at least ``min_cell`` events and
    ``min_cell`` non-events (with ``groups``: none or at least ``min_cell``, as group sums keep
    that). Boundaries are nobody flagged, ``threshold`` and everybody flagged, as in
    :func:`coarse_curve`. So any two of the kept cuts and ``threshold`` differ by counts of
    ``min_cell`` or more (or by none) and the kept cuts are safe curve points.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risks : sequence of array-like of shape (n_samples,)
        Risks of every model whose numbers the view shows at the threshold.
    min_cell : int
        Smallest count between neighbouring cuts (0: every candidate).
    threshold : float
        The model's threshold, always allowed.
    groups : array-like of int of shape (n_samples,), optional
        Group codes ``0..k-1`` whose counts the view shows.
    candidates : array-like of float, optional
        Cuts to choose from; default the slider steps 0.01 to 0.99.

    Returns
    -------
    ndarray of float
        The kept cuts (``threshold`` not among them).

    Examples
    --------
    >>> y = [1] * 20 + [0] * 20 + [1] * 20 + [0] * 20
    >>> risk = [0.9] * 40 + [0.1] * 40
    >>> allowed_thresholds(y, [risk], min_cell=11, threshold=0.5).tolist()
    []
    >>> allowed_thresholds(y, [risk], min_cell=11, threshold=0.95).tolist()
    [0.9]
    """
    grid = THRESHOLD_GRID if candidates is None else np.asarray(candidates, dtype=np.float64)
    cuts = np.unique(grid[grid != threshold])[::-1]  # descending
    if min_cell == 0:
        return np.sort(cuts)
    y = np.asarray(y_true, dtype=np.int64)
    matrix = np.stack([np.asarray(risk, dtype=np.float64) for risk in risks])
    codes = np.zeros(len(y), dtype=np.intp) if groups is None else np.asarray(groups, np.intp)
    boundaries = np.array([np.inf, threshold, -np.inf])
    counts = _band_counts(y, matrix, codes, np.concatenate([cuts, boundaries]))
    cum, top, middle, bottom = counts[: len(cuts)], counts[-3], counts[-2], counts[-1]

    def safe(band: npt.NDArray[np.int64]) -> bool:
        if groups is None:
            return bool(band.min() >= min_cell)
        return bool(((band == 0) | (band >= min_cell)).all() and band.any())

    kept: list[float] = []
    start = top
    for low, high, end in ((threshold, np.inf, middle), (-np.inf, threshold, bottom)):
        for index in np.flatnonzero((cuts > low) & (cuts < high)):
            if safe(cum[index] - start) and safe(end - cum[index]):
                kept.append(float(cuts[index]))
                start = cum[index]
        start = end
    return np.sort(np.asarray(kept, dtype=np.float64))


def choose_threshold(
    requested: float,
    allowed: npt.ArrayLike | None,
    *,
    default: float,
    min_cell: int,
) -> ThresholdChoice:
    """Snap ``requested`` to the nearest of ``allowed`` and ``default`` (ties: the lower).

    Parameters
    ----------
    requested : float
        The threshold asked for.
    allowed : array-like of float or None
        Cut points of :func:`allowed_thresholds`; None allows every threshold.
    default : float
        The model's threshold (always allowed).
    min_cell : int
        The floor the cut points keep (for :meth:`ThresholdChoice.note`).

    Returns
    -------
    ThresholdChoice

    Examples
    --------
    >>> choose_threshold(0.37, [0.2, 0.6], default=0.45, min_cell=11).threshold
    0.45
    >>> choose_threshold(0.37, None, default=0.45, min_cell=11).threshold
    0.37
    """
    if allowed is None:
        return ThresholdChoice(float(requested), float(requested), None, None, min_cell)
    cuts = np.asarray(allowed, dtype=np.float64)
    options = np.unique(np.append(cuts, default))
    applied = float(options[int(np.argmin(np.abs(options - requested)))])
    return ThresholdChoice(
        requested=float(requested),
        threshold=applied,
        allowed=tuple(float(value) for value in options),
        curve_cuts=tuple(float(value) for value in np.sort(cuts)),
        min_cell=min_cell,
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
        Thresholds (``risk >= cut`` flagged), e.g. :attr:`ThresholdChoice.curve_cuts`.

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
