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

Cell suppression of tables lives in :mod:`fusion.evaluation.fairness`. Must not import streamlit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.admin.access import AccessDeniedError, Identity

__all__ = ["LOWER_FLOOR_MESSAGE", "coarse_curve", "resolve_min_cell"]

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
