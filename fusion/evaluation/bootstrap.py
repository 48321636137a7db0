"""Vectorised percentile bootstrap of per-group metrics: one code path for estimates and CIs.

Owns the engine every interval of the evaluation comes from (the bias audit's per-group
metrics and the headline AUROC of :func:`fusion.evaluation.metrics.auroc_with_ci`). Rows are
sorted once by (group, risk); each chunk of resamples is a matrix of per-row draw counts (shape
``(n_resamples, n_samples)``), and every group statistic, AUROC included (Mann-Whitney U on the
weighted, tie-blocked rows), is a ``np.add.reduceat`` over that matrix. The point estimate is
the same computation with all weights 1, so the numbers in a table and their intervals come
from one code path; only the point AUROC is sklearn's ``roc_auc_score`` (the engine's equals
it, as the tests check). A group that vanishes or has one class in a resample contributes NaN to
that resample, and NaNs are left out of the percentiles.

Arrays in, arrays out: must not import pandas-level views of the evaluation package, SQL or
streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

__all__ = [
    "METRICS",
    "check_outcomes",
    "divide_or_nan",
    "group_metrics",
    "paired_auroc_draws",
    "percentile_bounds",
]


METRICS: tuple[str, ...] = (
    "prevalence",
    "auroc",
    "tpr",
    "fpr",
    "ppv",
    "npv",
    "selection_rate",
    "brier",
    "calibration_in_the_large",
)
"""Per-group metrics, in table order (``n`` comes first and has no interval)."""


# Cells of (resamples x rows) drawn per chunk: bounds memory to ~100 MB whatever the size.
_CHUNK_CELLS = 4_000_000


def check_outcomes(
    y_true: npt.ArrayLike, risk: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Outcomes and risks as float arrays, validated.

    Raises
    ------
    ValueError
        If they are not 1-D of equal length, ``y_true`` is not 0/1 or ``risk`` is not a
        finite probability.
    """
    y = np.asarray(y_true, dtype=np.float64)
    r = np.asarray(risk, dtype=np.float64)
    if y.ndim != 1 or y.shape != r.shape:
        raise ValueError(f"y_true {y.shape} and risk {r.shape} must be 1-D of equal length.")
    if len(y) and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y_true must hold 0/1 labels; got values {np.unique(y)[:5].tolist()}.")
    if len(r) and (not np.isfinite(r).all() or r.min() < 0 or r.max() > 1):
        raise ValueError("risk must hold finite probabilities in [0, 1].")
    return y, r


def divide_or_nan(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], *, signed: bool = False
) -> npt.NDArray[np.float64]:
    """``num / den`` with NaN where the denominator is 0 (or, unless ``signed``, negative)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) if signed else (den > 0))
    return out


def _stats(
    weights: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    risk: npt.NDArray[np.float64],
    flagged: npt.NDArray[np.float64],
    group_starts: npt.NDArray[np.intp],
    block_starts: npt.NDArray[np.intp],
    block_group: npt.NDArray[np.intp],
) -> dict[str, npt.NDArray[np.float64]]:
    """Every metric per (resample, group) from row weights of shape (R, N).

    Rows must be sorted by (group, risk); ``group_starts`` and ``block_starts`` (tie blocks
    of equal risk within a group) index the first row of each non-empty run.
    """

    def per_group(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        summed: npt.NDArray[np.float64] = np.add.reduceat(values, group_starts, axis=1)
        return summed

    n = per_group(weights)
    positive_w = weights * y
    negative_w = weights - positive_w
    pos = per_group(positive_w)
    pred = per_group(weights * flagged)
    tp = per_group(positive_w * flagged)
    neg = n - pos
    fp = pred - tp
    tn = neg - fp
    # AUROC: Mann-Whitney U over tie blocks; negatives strictly below + half the tied ones.
    block_pos = np.add.reduceat(positive_w, block_starts, axis=1)
    block_neg = np.add.reduceat(negative_w, block_starts, axis=1)
    cum_neg = np.cumsum(block_neg, axis=1)
    first_block = np.searchsorted(block_group, np.arange(len(group_starts)))
    before_group = np.where(first_block > 0, cum_neg[:, np.maximum(first_block - 1, 0)], 0.0)
    below = cum_neg - block_neg - before_group[:, block_group]
    u = np.add.reduceat(block_pos * (below + 0.5 * block_neg), first_block, axis=1)
    return {
        "n": n,
        "prevalence": divide_or_nan(pos, n),
        "auroc": divide_or_nan(u, pos * neg),
        "tpr": divide_or_nan(tp, pos),
        "fpr": divide_or_nan(fp, neg),
        "ppv": divide_or_nan(tp, pred),
        "npv": divide_or_nan(tn, n - pred),
        "selection_rate": divide_or_nan(pred, n),
        "brier": divide_or_nan(per_group(weights * (risk - y) ** 2), n),
        "calibration_in_the_large": divide_or_nan(per_group(weights * risk) - pos, n),
    }


def percentile_bounds(samples: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """2.5th and 97.5th percentiles per column, NaNs left out; all-NaN columns give NaN."""
    low = np.full(samples.shape[1:], np.nan)
    high = low.copy()
    valid = ~np.isnan(samples).all(axis=0)
    if valid.any():
        low[valid], high[valid] = np.nanpercentile(samples[:, valid], [2.5, 97.5], axis=0)
    return low, high


def group_metrics(
    y_true: npt.ArrayLike,
    risk: npt.ArrayLike,
    groups: npt.ArrayLike,
    *,
    threshold: float,
    n_groups: int | None = None,
    n_resamples: int = 0,
    random_state: int = 0,
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, npt.NDArray[np.float64]]]:
    """Point estimates and bootstrap draws of every metric for integer-coded groups.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    risk : array-like of shape (n_samples,)
        Predicted probabilities in [0, 1].
    groups : array-like of int of shape (n_samples,)
        Group code per row, ``0 .. n_groups - 1``; codes without rows give NaN metrics.
    threshold : float
        Rows with ``risk >= threshold`` are flagged (predicted positive).
    n_groups : int, optional
        Number of groups (default ``max(groups) + 1``); codes without rows give ``n = 0``.
    n_resamples : int, default=0
        Bootstrap resamples of the whole population (groups vary in size, and may vanish).
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    point : dict of str to ndarray of shape (n_groups,)
        ``n`` and every metric in :data:`METRICS`.
    draws : dict of str to ndarray of shape (n_resamples, n_groups)
        The same per resample; NaN where a group vanished or lacks a class.

    Examples
    --------
    >>> point, _ = group_metrics([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.4], [0, 0, 1, 1], threshold=0.5)
    >>> point["tpr"].tolist(), point["auroc"].tolist()
    ([1.0, 0.0], [1.0, 0.0])
    """
    y, r = check_outcomes(y_true, risk)
    codes = np.asarray(groups, dtype=np.intp)
    if codes.shape != y.shape:
        raise ValueError(f"groups {codes.shape} must match y_true {y.shape}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold}; pass a risk in [0, 1].")
    if n_resamples < 0:
        raise ValueError(f"n_resamples={n_resamples}; pass 0 (no CI) or more.")
    if n_groups is None:
        n_groups = int(codes.max()) + 1 if len(codes) else 0
    if len(codes) and (codes.min() < 0 or codes.max() >= n_groups):
        raise ValueError(
            f"groups must be codes in [0, {n_groups}); got {codes.min()}..{codes.max()}."
        )
    present = np.unique(codes)
    order = np.lexsort((r, codes))
    y, r, codes = y[order], r[order], codes[order]
    flagged = (r >= threshold).astype(np.float64)
    # Non-empty groups are compacted for reduceat, then put back at their codes.
    compact = np.searchsorted(present, codes)
    group_starts = np.flatnonzero(np.r_[True, compact[1:] != compact[:-1]]) if len(y) else None
    new_block = np.r_[True, (compact[1:] != compact[:-1]) | (r[1:] != r[:-1])]
    block_starts = np.flatnonzero(new_block)
    block_group = compact[block_starts]

    def expand(stats: dict[str, npt.NDArray[np.float64]]) -> dict[str, npt.NDArray[np.float64]]:
        out = {}
        for name, values in stats.items():
            full = np.full((values.shape[0], n_groups), 0.0 if name == "n" else np.nan)
            full[:, present] = values
            out[name] = full
        return out

    names = ("n", *METRICS)
    if group_starts is None:
        empty = {name: np.full(n_groups, np.nan) for name in names}
        return empty, {name: np.full((n_resamples, n_groups), np.nan) for name in names}
    args = (y, r, flagged, group_starts, block_starts, block_group)
    point = {k: v[0] for k, v in expand(_stats(np.ones((1, len(y))), *args)).items()}
    # Point AUROC from sklearn; the engine's equals it (tested) and serves the resamples.
    for index, code in enumerate(present):
        member = compact == index
        if y[member].min() != y[member].max():
            point["auroc"][code] = roc_auc_score(y[member], r[member])
    rng = np.random.default_rng(random_state)
    size = len(y)
    per_chunk = max(1, _CHUNK_CELLS // size)
    chunks: list[dict[str, npt.NDArray[np.float64]]] = []
    for start in range(0, n_resamples, per_chunk):
        count = min(per_chunk, n_resamples - start)
        draws = rng.integers(0, size, (count, size))
        draws += np.arange(count)[:, None] * size
        weights = np.bincount(draws.ravel(), minlength=count * size).reshape(count, size)
        chunks.append(expand(_stats(weights.astype(np.float64), *args)))
    samples = {
        name: (
            np.concatenate([c[name] for c in chunks]) if chunks else np.full((0, n_groups), np.nan)
        )
        for name in names
    }
    return point, samples


def paired_auroc_draws(
    y_true: npt.ArrayLike,
    scores: Sequence[npt.ArrayLike],
    *,
    n_resamples: int,
    random_state: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """AUROC of several scores of the same patients, resampled together (paired bootstrap).

    Each resample draws one set of patients (per-row draw counts, as in
    :func:`group_metrics`) and every score's AUROC is computed on it by the same weighted
    Mann-Whitney U, so differences between the scores' draws are paired.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        0/1 outcomes.
    scores : sequence of array-like of shape (n_samples,)
        Probabilities in [0, 1] of each model, rows in the same patient order.
    n_resamples : int
        Bootstrap resamples (>= 1).
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    point : ndarray of shape (n_scores,)
        sklearn's AUROC of each score.
    draws : ndarray of shape (n_resamples, n_scores)
        AUROC per resample and score; NaN where a resample has one class.

    Examples
    --------
    >>> point, draws = paired_auroc_draws([0, 0, 1, 1], [[0.1, 0.4, 0.3, 0.8]] * 2, n_resamples=5)
    >>> point.tolist(), bool(np.allclose(draws[:, 0], draws[:, 1], equal_nan=True))
    ([0.75, 0.75], True)
    """
    y = np.asarray(y_true, dtype=np.float64)
    checked = [check_outcomes(y, score)[1] for score in scores]
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; pass 1 or more.")
    size = len(y)
    point = np.array([roc_auc_score(y, r) for r in checked], dtype=np.float64)
    rng = np.random.default_rng(random_state)
    per_chunk = max(1, _CHUNK_CELLS // max(size, 1))
    draws = np.full((n_resamples, len(checked)), np.nan)
    one_group = np.zeros(1, dtype=np.intp)
    for start in range(0, n_resamples, per_chunk):
        count = min(per_chunk, n_resamples - start)
        picks = rng.integers(0, size, (count, size)) + np.arange(count)[:, None] * size
        weights = np.bincount(picks.ravel(), minlength=count * size).reshape(count, size)
        for column, r in enumerate(checked):
            order = np.argsort(r, kind="stable")
            sorted_r = r[order]
            block_starts = np.flatnonzero(np.r_[True, sorted_r[1:] != sorted_r[:-1]])
            stats = _stats(
                weights[:, order].astype(np.float64),
                y[order],
                sorted_r,
                np.zeros(size),
                one_group,
                block_starts,
                np.zeros(len(block_starts), dtype=np.intp),
            )
            draws[start : start + count, column] = stats["auroc"][:, 0]
    return point, draws
