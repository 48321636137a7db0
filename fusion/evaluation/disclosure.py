"""Disclosure control of the cohort views: the suppression floor and a researcher's thresholds.

Owns two rules the performance page, the bias audit and their exports share:

* **The floor is configuration, not a widget.** :func:`resolve_min_cell` turns the floor
  configured by the operator (``RISKFUSION_MIN_CELL``, :class:`fusion.settings.Settings`) and the
  value a user asks for into the floor a view applies: anyone may raise it; only an admin may
  lower it (the service writes that to the audit trail).
* **A researcher's thresholds are cut points.** Two confusion matrices at neighbouring
  thresholds differ by the patients between them. :func:`allowed_thresholds` keeps the cut points
  between which (and the model's threshold) at least ``min_cell`` events and non-events lie, and
  :func:`choose_threshold` snaps a requested threshold to them; curves pass through the same
  cut points (:func:`fusion.evaluation.curves.curve_through`), so no shown number at one
  allowed threshold, minus one at another, is a small count.

Cell suppression of tables lives in :mod:`fusion.evaluation.suppression`. Must not import
streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fusion.admin.access import AccessDeniedError, Identity

__all__ = [
    "LOWER_FLOOR_MESSAGE",
    "THRESHOLD_GRID",
    "ThresholdChoice",
    "allowed_thresholds",
    "choose_threshold",
    "resolve_min_cell",
]


LOWER_FLOOR_MESSAGE = (
    "The {role} role may not lower the suppression floor: {requested} is below the configured "
    "{floor} (RISKFUSION_MIN_CELL). Choose {floor} or more, or ask an admin."
)
"""Refusal when a non-admin asks for a floor under the configured one."""


THRESHOLD_GRID: npt.NDArray[np.float64] = np.round(np.arange(1, 100) / 100, 2)
"""Candidate thresholds of a researcher: the page slider's steps strictly inside (0, 1)."""


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
        """Whether the applied threshold differs from the requested one at the slider's 0.01."""
        return round(self.threshold, 2) != round(self.requested, 2)

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
    :func:`fusion.evaluation.curves.coarse_curve`. So any two of the kept cuts and ``threshold``
    differ by counts of ``min_cell`` or more (or by none) and the kept cuts are safe curve
    points.

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
