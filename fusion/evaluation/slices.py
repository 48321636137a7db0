"""The worst slices, found for the user: where the model's risks are wrong, and confirmed.

Owns the automatic slice search of the bias audit. A slice is a conjunction of up to
two predicates over categorical columns (sensitive attributes, site, modality
availability, binned model inputs), e.g. ``site = site_c & sex = F``.

**Two splits, so that finding and proving are separate.** The search runs on the validation
split's predictions (the *discovery* set); each of the ``k`` slices it keeps is then tested once
on the held-out test split (the *confirmation* set), and the ``k`` p-values are adjusted together
(Holm by default, or Benjamini-Hochberg). The test split plays no part in choosing the slices, so
the adjusted p-values keep their meaning however many slices the search looked at.

**What "wrong" means, and how slices are ranked.** The risks of each split are first
recalibrated on that split (logistic recalibration, :func:`recalibrate`), so the search and the
test look for groups that depart from the model's *overall* calibration (which the calibration
statistics report on their own) rather than finding every high-risk slice of a model that is too
extreme everywhere. A
slice's departure is Cox's calibration score test within the slice
(:func:`calibration_departure`): ``a = 0, b = 1`` in ``logit P(y) = a + b logit(p)``, a
chi-square with 2 degrees of freedom that catches a wrong level (observed over expected events)
and a wrong spread (risks too extreme or too flat for the slice, as when its inputs are recorded
worse and rank its patients worse). Under the null that the risks are calibrated within the slice
its distribution does not depend on the slice's prevalence (unlike the log-loss or Brier score,
which rank slices high merely because their prevalence is near one half). Every slice of one or
two conditions with at least twice the floor of patients is scored exactly, with a few matrix
products over the one-hot predicates (a few hundred slices for the audit's columns); the ``k``
largest statistics are kept. SliceLine (``sliceline``, Sagadeeva & Boehm 2021) was tried first: its
score ranks slices by mean non-negative error with a size penalty, and with the squared Pearson
residual as the error it kept slices carried by one or two surprising events, too small to
confirm (site_c found in 0 of 10 simulated biased cohorts, docs/models.md); an exact level-2
enumeration ranked by a test statistic needs no library and is cheap at this size. The
confirmation test is the same score test on the test split. AUROC, TPR and FPR
inside and outside a slice are reported beside it but not tested: they differ between slices by
case mix alone (within one age band age cannot discriminate), so a lower AUROC in a slice is not
by itself a model failure.

**Disclosure.** A slice needs ``min_size`` patients in both splits and ``min_size`` events and
non-events in the test split to be tested or shown (the audit's floor); others are dropped.

Arrays and frames in, a frame out: must not import SQL or streamlit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import chi2
from sklearn.metrics import roc_auc_score

from fusion.evaluation.bootstrap import check_outcomes
from fusion.evaluation.calibration_stats import fit_logistic
from fusion.evaluation.flags import (
    DEFAULT_MARGIN,
    FlagMethod,
    adjust_pvalues,
    check_flag_settings,
)

__all__ = [
    "SLICE_COLUMNS",
    "bin_inputs",
    "calibration_departure",
    "find_slices",
    "recalibrate",
]


SLICE_COLUMNS: tuple[str, ...] = (
    "slice",
    "level",
    "n_discovery",
    "chi2_discovery",
    "n",
    "observed_expected",
    "chi2",
    "p_value",
    "p_adjusted",
    "confirmed",
    "auroc",
    "auroc_rest",
    "tpr",
    "tpr_rest",
    "fpr",
    "fpr_rest",
)
"""Columns of :func:`find_slices`, one row per slice found and tested."""

_CLIP = 0.01  # risks clipped to [1%, 99%] before the log-odds of the recalibration


def bin_inputs(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    n_bins: int = 3,
    edges_from: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Numeric inputs as categorical bins (tertiles by default), for slicing.

    Bin edges are quantiles of ``edges_from`` (default ``frame``), so the discovery and
    confirmation sets share them; a missing value is its own bin (``"missing"``).
    """
    source = frame if edges_from is None else edges_from
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        edges = np.unique(
            np.nanquantile(
                pd.to_numeric(source[column], errors="coerce"), np.linspace(0, 1, n_bins + 1)[1:-1]
            )
        )
        if len(edges) == 0:
            continue
        index = np.digitize(values.to_numpy(dtype=np.float64), edges)
        names = (
            [f"<= {edges[0]:.3g}"]
            + [f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(edges)]
            + [f"> {edges[-1]:.3g}"]
        )
        labels = np.asarray(names, dtype=object)[index]
        labels[values.isna().to_numpy()] = "missing"
        out[column] = labels
    return out


def _as_categories(frame: pd.DataFrame) -> npt.NDArray[np.object_]:
    """Every cell as text; missing values as ``"missing"`` (SliceLine needs no NaN)."""
    return frame.astype(object).where(frame.notna(), "missing").astype(str).to_numpy(dtype=object)


def _mask(frame: pd.DataFrame, predicates: Sequence[tuple[str, str]]) -> npt.NDArray[np.bool_]:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in predicates:
        cells = frame[column].astype(object).where(frame[column].notna(), "missing").astype(str)
        mask &= (cells == value).to_numpy()
    return mask


def _rates(
    y: npt.NDArray[np.float64], r: npt.NDArray[np.float64], threshold: float
) -> tuple[float, float, float]:
    """AUROC, TPR and FPR (NaN where a class is missing)."""
    if len(y) == 0 or y.min() == y.max():
        return float("nan"), float("nan"), float("nan")
    flagged = r >= threshold
    return (
        float(roc_auc_score(y, r)),
        float(flagged[y == 1].mean()),
        float(flagged[y == 0].mean()),
    )


def _predicates(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, str]]:
    """Every (column, value) pair of the categorical ``columns``."""
    pairs: list[tuple[str, str]] = []
    for column in columns:
        cells = frame[column].astype(object).where(frame[column].notna(), "missing").astype(str)
        pairs.extend((column, value) for value in sorted(cells.unique()))
    return pairs


def _memberships(frame: pd.DataFrame, predicates: Sequence[tuple[str, str]]) -> np.ndarray:
    """Boolean matrix (n_rows, n_predicates)."""
    return np.column_stack([_mask(frame, [p]) for p in predicates]).astype(np.float64)


def recalibrate(
    y_true: npt.ArrayLike, risk: npt.ArrayLike
) -> Callable[[npt.ArrayLike], npt.NDArray[np.float64]]:
    """Logistic recalibration ``expit(a + b logit(p))`` fitted on (y, risk): a function of risk.

    The slice search asks where a subgroup departs from the model's *overall* calibration
    (reported on its own by the calibration statistics), so a model that is too extreme
    everywhere does not make every high-risk slice look miscalibrated.
    """
    y, r = check_outcomes(y_true, risk)
    z = logit(np.clip(r, _CLIP, 1 - _CLIP))
    coef = fit_logistic(np.column_stack([np.ones_like(z), z]), y, np.ones((1, len(y))))[0]

    def apply(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        x = logit(np.clip(np.asarray(values, dtype=np.float64), _CLIP, 1 - _CLIP))
        out: npt.NDArray[np.float64] = expit(coef[0] + coef[1] * x)
        return out

    return apply


def _sums(
    members: np.ndarray, y: npt.NDArray[np.float64], p: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], ...]:
    """Per slice of one predicate (vectors) and of two (matrices): size and score-test sums."""
    z = logit(np.clip(p, _CLIP, 1 - _CLIP))
    w = p * (1.0 - p)
    parts = (np.ones_like(y), y - p, (y - p) * z, w, w * z, w * z * z)
    singles = [members.T @ q for q in parts]
    pairs = [members.T @ (members * q[:, None]) for q in parts]
    return (*singles, *pairs)


def _chi2(u0, u1, i00, i01, i11):  # type: ignore[no-untyped-def]
    """Score statistic ``U' I^-1 U`` of (intercept, slope) within a slice (2 df), elementwise."""
    det = i00 * i11 - i01 * i01
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = (i11 * u0 * u0 - 2 * i01 * u0 * u1 + i00 * u1 * u1) / det
    return np.where(det > 1e-9, stat, np.nan)


def calibration_departure(y_true: npt.ArrayLike, risk: npt.ArrayLike) -> tuple[float, float, float]:
    """Cox's calibration score test within one group: chi-square (2 df), p-value and O/E.

    Tests ``a = 0, b = 1`` in ``logit P(y) = a + b logit(risk)``: the group's outcomes depart
    from its risks in level (calibration-in-the-large) or in spread (slope: risks too extreme or
    too flat for this group, as when its inputs are recorded worse).
    """
    y, p = check_outcomes(y_true, risk)
    members = np.ones((len(y), 1))
    _, u0, u1, i00, i01, i11 = (v[0] for v in _sums(members, y, p)[:6])
    stat = float(_chi2(u0, u1, i00, i01, i11))
    observed_expected = float(y.sum() / p.sum()) if p.sum() > 0 else float("nan")
    return stat, float(chi2.sf(stat, 2)) if np.isfinite(stat) else float("nan"), observed_expected


def _scores(
    members: np.ndarray, y: npt.NDArray[np.float64], p: npt.NDArray[np.float64], min_size: int
) -> tuple[list[tuple[int, ...]], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Slices of one and two predicates with their size and calibration chi-square."""
    n1, a1, b1, c1, d1, e1, n2, a2, b2, c2, d2, e2 = _sums(members, y, p)
    stat1, stat2 = _chi2(a1, b1, c1, d1, e1), _chi2(a2, b2, c2, d2, e2)
    keys: list[tuple[int, ...]] = []
    sizes, stats = [], []
    count = members.shape[1]
    for i in range(count):
        if n1[i] >= min_size and np.isfinite(stat1[i]):
            keys.append((i,))
            sizes.append(n1[i])
            stats.append(stat1[i])
        for j in range(i + 1, count):
            if n2[i, j] >= min_size and n2[i, j] < min(n1[i], n1[j]) and np.isfinite(stat2[i, j]):
                keys.append((i, j))
                sizes.append(n2[i, j])
                stats.append(stat2[i, j])
    return keys, np.asarray(sizes), np.asarray(stats)


def find_slices(
    discovery: pd.DataFrame,
    confirmation: pd.DataFrame,
    columns: Sequence[str],
    *,
    threshold: float,
    min_size: int,
    k: int = 10,
    alpha: float = 0.05,
    adjustment: FlagMethod = "holm",
) -> pd.DataFrame:
    """Search the discovery set for the worst-calibrated slices; test them on the other set.

    Parameters
    ----------
    discovery, confirmation : DataFrame
        ``label``, ``risk`` and the categorical ``columns`` (validation and test split).
    columns : sequence of str
        The columns slices are made of (bin numeric inputs first with :func:`bin_inputs`).
    threshold : float
        Decision threshold of the reported TPR/FPR.
    min_size : int
        Smallest slice searched and shown (the suppression floor; also the least events and
        non-events a tested slice has in the confirmation set).
    k : int, default=10
        Slices kept by the search (the largest discovery chi-squares).
    alpha : float, default=0.05
        Level of the adjusted test: ``confirmed`` where ``p_adjusted < alpha``.
    adjustment : {"holm", "bh"}, default="holm"
        Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) over the tested
        slices.

    Returns
    -------
    DataFrame
        :data:`SLICE_COLUMNS`, largest discovery chi-square first; empty when none qualifies.
    """
    adjustment = check_flag_settings(adjustment, alpha, DEFAULT_MARGIN)
    if min_size < 1:
        raise ValueError(f"min_size={min_size}; pass the suppression floor (1 or more).")
    y_d, r_d = check_outcomes(discovery["label"], discovery["risk"])
    y_c, r_c = check_outcomes(confirmation["label"], confirmation["risk"])
    empty = pd.DataFrame(columns=list(SLICE_COLUMNS)).astype(
        {"slice": object, "level": int, "n": int, "confirmed": bool}
    )
    columns = list(columns)
    if len(y_d) < 2 * min_size or not columns or y_d.min() == y_d.max():
        return empty
    # Each split is recalibrated on itself: the search and the test ask where a group departs
    # from the model's overall calibration on that split (recalibrating the test split with the
    # validation split's fit would leave that fit's noise in every test).
    p_d = recalibrate(y_d, r_d)(r_d)
    p_c = recalibrate(y_c, r_c)(r_c) if y_c.min() != y_c.max() else r_c
    predicates = _predicates(discovery, columns)
    keys, sizes, stats = _scores(_memberships(discovery, predicates), y_d, p_d, min_size)
    # Also a slice must be big enough for the search to see: at least twice the floor.
    order = [i for i in np.argsort(-stats) if sizes[i] >= 2 * min_size][:k]
    rows = []
    for index in order:
        chosen = [predicates[i] for i in keys[index]]
        member = _mask(confirmation, chosen)
        n, events = int(member.sum()), float(y_c[member].sum())
        if n < min_size or min(events, n - events) < min_size:
            continue  # too small to test, and to show
        stat, p_value, observed_expected = calibration_departure(y_c[member], p_c[member])
        auroc, tpr, fpr = _rates(y_c[member], r_c[member], threshold)
        auroc_rest, tpr_rest, fpr_rest = _rates(y_c[~member], r_c[~member], threshold)
        rows.append(
            {
                "slice": " & ".join(f"{c} = {v}" for c, v in chosen),
                "level": len(chosen),
                "n_discovery": int(sizes[index]),
                "chi2_discovery": float(stats[index]),
                "n": n,
                "observed_expected": observed_expected,
                "chi2": stat,
                "p_value": p_value,
                "auroc": auroc,
                "auroc_rest": auroc_rest,
                "tpr": tpr,
                "tpr_rest": tpr_rest,
                "fpr": fpr,
                "fpr_rest": fpr_rest,
            }
        )
    if not rows:
        return empty
    table = pd.DataFrame(rows)
    table["p_adjusted"] = adjust_pvalues(table["p_value"], adjustment)
    table["confirmed"] = table["p_adjusted"] < alpha
    return table.loc[:, list(SLICE_COLUMNS)].reset_index(drop=True)
