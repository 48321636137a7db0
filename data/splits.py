"""Patient splits: which patients train, tune and test a model.

Owns the two split rules and their shared vocabulary (:data:`SPLITS`, :data:`SPLIT_FRACTIONS`):

* :func:`assign_splits`, for a whole cohort known at once (the synthetic demo and the example
  cohort): a seeded shuffle within each label class, so every split has the cohort's class
  balance.
* :func:`stable_split`, for an imported cohort without a ``split`` column: a hash of the stored
  patient id, so a patient keeps its split across re-imports whatever else the cohort holds.

The rules differ on purpose (stratified versus stable under re-import) and give different
splits for the same patients. Imports nothing from the project.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["SPLITS", "SPLIT_FRACTIONS", "Split", "assign_splits", "stable_split"]

Split = Literal["train", "val", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "val", "test")
SPLIT_FRACTIONS: Final[tuple[float, float, float]] = (0.6, 0.2, 0.2)
"""Default train, validation and test fractions of both rules."""

# Upper bounds of the train and val fractions on [0, 1): 0.6 and 0.8.
_STABLE_BOUNDS: Final[tuple[float, ...]] = tuple(itertools.accumulate(SPLIT_FRACTIONS))[:2]


def assign_splits(
    labels: npt.ArrayLike,
    *,
    seed: int = 0,
    fractions: Sequence[float] = SPLIT_FRACTIONS,
) -> npt.NDArray[np.str_]:
    """Assign each patient to ``"train"``, ``"val"`` or ``"test"``, stratified by label.

    Within each label class the patients are shuffled with ``seed`` and cut by ``fractions``
    (largest-remainder rounding), so every split has the class balance of the whole cohort.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class label of each patient (one row per patient, so splits are patient-level).
    seed : int, default=0
        Seed of the shuffle.
    fractions : sequence of 3 floats, default=(0.6, 0.2, 0.2)
        Train, validation and test fractions; positive and summing to 1.

    Returns
    -------
    numpy.ndarray of shape (n_samples,), dtype str
        ``"train"``, ``"val"`` or ``"test"`` per patient.

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D, ``fractions`` is invalid, or a split would be empty.

    Examples
    --------
    >>> splits = assign_splits([0, 1] * 10, seed=0)
    >>> sorted(set(splits.tolist()))
    ['test', 'train', 'val']
    >>> int((splits == "train").sum())
    12
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D of shape (n_samples,), got shape {y.shape}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"seed must be an int, got {type(seed).__name__} {seed!r}; "
            "pass a non-negative seed such as 0."
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}; pass a non-negative seed such as 0.")
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.shape != (3,) or np.any(shares <= 0) or not math.isclose(shares.sum(), 1.0):
        raise ValueError(
            f"fractions must be three positive numbers summing to 1 (train, val, test), got "
            f"{tuple(fractions)}; use e.g. (0.6, 0.2, 0.2)."
        )
    names = np.asarray(SPLITS)
    splits = np.empty(y.size, dtype="<U5")
    rng = np.random.default_rng([seed, 2])
    _, codes = np.unique(y, return_inverse=True)
    for code in range(int(codes.max(initial=-1)) + 1):
        members = np.flatnonzero(codes == code)
        ideal = shares * members.size
        counts = np.floor(ideal).astype(np.int64)
        remainder = members.size - int(counts.sum())
        counts[np.argsort(-(ideal - counts), kind="stable")[:remainder]] += 1
        splits[rng.permutation(members)] = np.repeat(names, counts)
    present = set(splits.tolist())
    if present != set(names.tolist()):
        raise ValueError(
            f"{y.size} samples are too few to fill all three splits with fractions "
            f"{tuple(fractions)}; pass more samples or larger val/test fractions."
        )
    return splits


def stable_split(patient_id: str) -> Split:
    """Train / val / test from a hash of the stored patient id: a patient never moves.

    The first 32 bits of ``SHA-256("riskfusion-split:" + patient_id)`` as a fraction of
    ``2**32`` fall below 0.6 (train), below 0.8 (val) or above (test).

    Parameters
    ----------
    patient_id : str
        The id as stored (after any hashing of the import).

    Returns
    -------
    {"train", "val", "test"}
        The patient's split.

    Examples
    --------
    >>> stable_split("P0000001") == stable_split("P0000001")
    True
    """
    digest = hashlib.sha256(f"riskfusion-split:{patient_id}".encode()).hexdigest()
    fraction = int(digest[:8], 16) / 16**8
    return (
        "train"
        if fraction < _STABLE_BOUNDS[0]
        else "val"
        if fraction < _STABLE_BOUNDS[1]
        else "test"
    )
