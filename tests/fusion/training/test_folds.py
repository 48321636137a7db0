"""Cross-fitting folds: scikit-learn's StratifiedKFold, seeded, with a clear refusal."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from data.errors import CohortError
from fusion.training.training_data import stratified_folds


def test_folds_are_stratified_kfold_shuffled_with_the_seed() -> None:
    labels = np.array([0] * 30 + [1] * 9)
    folds = stratified_folds(labels, 3, seed=7)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=7)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        assert (folds[held_out] == fold).all()
    per_class = [np.bincount(folds[labels == label], minlength=3) for label in (0, 1)]
    assert per_class[0].tolist() == [10, 10, 10]
    assert per_class[1].tolist() == [3, 3, 3]
    assert (stratified_folds(labels, 3, seed=7) == folds).all()
    assert (stratified_folds(labels, 3, seed=8) != folds).any()


def test_a_class_smaller_than_the_folds_is_refused_with_counts_and_the_fix() -> None:
    with pytest.raises(CohortError, match=r"2 with label 1; 3-fold .* at least 3 .* --folds"):
        stratified_folds([0] * 10 + [1] * 2, 3, seed=0)
