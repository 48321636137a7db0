"""What a cohort must hold to be trained on, and what the registry records about that data.

Owns the per-split class minimums, the trainability checks (with messages that say how to fix
the cohort), the stratified cross-fitting folds (scikit-learn's), the forecast's data
requirements, the oracle AUROCs of a synthetic cohort and the training-data fingerprint. Must
not import torch or streamlit.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from data.errors import CohortError
from data.store import CohortStore
from data.synthetic import truth_aurocs
from data.vocabulary import TREATMENTS
from fusion.features import FeatureSet

__all__ = [
    "MIN_PER_CLASS",
    "check_trainable",
    "describe_training_data",
    "forecast_skip_reason",
    "oracle_aurocs",
    "stratified_folds",
]

# Fewest patients of each class each split must hold for `riskfusion train`.
MIN_PER_CLASS = {"train": 4, "val": 1, "test": 1}


def _class_counts(frame: pd.DataFrame, what: str) -> None:
    """Refuse a cohort whose splits cannot train and evaluate a binary model."""
    for split, minimum in MIN_PER_CLASS.items():
        labels = frame.loc[frame["split"] == split, "label"].astype(int)
        counts = {label: int((labels == label).sum()) for label in (0, 1)}
        if min(counts.values()) < minimum:
            raise CohortError(
                f"The {split} split holds {counts[0]} {what} with label 0 and {counts[1]} with "
                f"label 1; training needs at least {minimum} of each class in {split}. Add "
                "patients, or give patients.csv a `split` column stratified by label "
                "(docs/import.md), then import again."
            )


def check_trainable(frame: pd.DataFrame, scans: pd.DataFrame) -> None:
    """Refuse a cohort a split of which lacks a class, or whose scans differ in size."""
    _class_counts(frame, "patients")
    _class_counts(scans, "patients with a scan")
    shapes = scans.loc[:, ["height", "width"]].drop_duplicates()
    if len(shapes) > 1:
        found = sorted(f"{h}x{w}" for h, w in shapes.itertuples(index=False, name=None))
        raise CohortError(
            f"Stored scans have {len(shapes)} sizes ({', '.join(found[:5])}); the imaging net "
            "needs one. Import every scan with the same `[images] size` in schema.toml."
        )


def describe_training_data(
    store: CohortStore, frame: pd.DataFrame, scans: pd.DataFrame, features: FeatureSet
) -> dict[str, Any]:
    """What the registry records about the data a model version was trained on.

    ``fingerprint`` is the SHA-256 of the model-input table (patient id, split, label and
    every input, CSV-serialised in id order) and of the scans' SHA-256s: two trainings with the
    same fingerprint saw the same data.
    """
    inputs = [name for name in features.names if name in frame.columns]
    table = frame.loc[:, ["patient_id", "split", "label", *inputs]].sort_values("patient_id")
    digest = hashlib.sha256(table.to_csv(index=False, float_format="%.9g").encode())
    for sha in scans.sort_values("patient_id")["sha256"]:
        digest.update(str(sha).encode())
    batches = store.import_batches()
    return {
        "sources": store.cohort_sources(),
        "n_patients": len(frame),
        "n_scans": len(scans),
        "splits": {s: int((frame["split"] == s).sum()) for s in ("train", "val", "test")},
        "import_batches": [str(batch["batch_id"]) for batch in batches],
        "last_import": None if not batches else batches[-1]["created_at"].isoformat(),
        "fingerprint": digest.hexdigest(),
    }


def forecast_skip_reason(frame: pd.DataFrame) -> str | None:
    """Why the treatment forecast cannot be fitted on this cohort, or None."""
    if frame["event_time"].isna().any() or frame["event"].isna().any():
        return "the outcomes lack event_time/event for some patients"
    unknown = sorted(set(frame["treatment"].dropna().astype(str)) - set(TREATMENTS))
    if frame["treatment"].isna().any() or unknown:
        return f"treatments must be one of {list(TREATMENTS)} for every patient (found {unknown})"
    return None


def stratified_folds(labels: npt.ArrayLike, n_folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Cross-fitting fold of each training patient: scikit-learn's ``StratifiedKFold``.

    Shuffled with ``random_state=seed``, so equal seeds give equal folds; each fold holds
    each class in about the same proportion.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Binary labels (0 or 1).
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    ndarray of shape (n_samples,)
        Fold index in ``range(n_folds)`` of each patient.

    Raises
    ------
    CohortError
        If a class has fewer patients than ``n_folds`` (a fold would lack it).

    Examples
    --------
    >>> folds = stratified_folds([0, 0, 0, 0, 1, 1], 2, seed=0)
    >>> sorted(folds[:4].tolist()), sorted(folds[4:].tolist())
    ([0, 0, 1, 1], [0, 1])
    """
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) and counts.min() < n_folds:
        pairs = zip(classes, counts, strict=True)
        found = ", ".join(f"{int(count)} with label {label}" for label, count in pairs)
        raise CohortError(
            f"The train split holds {found}; {n_folds}-fold cross-fitting needs at least "
            f"{n_folds} patients of each class in train. Add patients of the smaller class, "
            "or train with fewer folds (riskfusion train --folds)."
        )
    folds = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(y)), y)):
        folds[held_out] = fold
    return folds


def oracle_aurocs(truth: pd.DataFrame | None, frame: pd.DataFrame) -> dict[str, float]:
    """Test AUROC of the true risk and of each modality's true logit (synthetic cohorts)."""
    if truth is None:
        return {}
    test = frame.loc[frame["split"] == "test", ["patient_id", "label"]]
    joined = test.join(truth.set_index("patient_id"), on="patient_id")
    return truth_aurocs(joined, joined["label"])
