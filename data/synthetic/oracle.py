"""What the ground truth alone achieves: the oracle AUROCs a model is compared with.

Owns :func:`oracle_aurocs` (on a :class:`~data.synthetic.cohort.SyntheticCohort`) and
:func:`truth_aurocs` (on a stored ground-truth table). Imports only :mod:`data.vocabulary` and
the sibling module ``cohort``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score

from data.synthetic.cohort import SyntheticCohort
from data.vocabulary import MODALITIES

__all__ = ["oracle_aurocs", "truth_aurocs"]


def oracle_aurocs(cohort: SyntheticCohort, mask: npt.ArrayLike | None = None) -> dict[str, float]:
    """AUROC against ``label`` of the true risk and of each modality's true logit alone.

    These are the ceilings a model can reach: ``"all"`` scores with ``true_risk`` (all
    modalities plus the received treatment); ``"demographics"``, ``"ehr"``, ``"genomics"`` and
    ``"imaging"`` with that modality's additive logit component alone.

    Parameters
    ----------
    cohort : SyntheticCohort
        The cohort.
    mask : array-like of bool of shape (n_patients,), default=None
        Patients to score (e.g. ``splits == "test"``); all patients if None.

    Returns
    -------
    dict of str to float
        Keys ``"all"`` then :data:`MODALITIES`.

    Raises
    ------
    ValueError
        If ``mask`` has the wrong shape or dtype, or selects patients of only one class.

    Examples
    --------
    >>> from data.synthetic import generate_cohort
    >>> cohort = generate_cohort(500, seed=0, image_size=16)
    >>> scores = oracle_aurocs(cohort)
    >>> list(scores)
    ['all', 'demographics', 'ehr', 'genomics', 'imaging']
    """
    y = cohort.patients["label"].to_numpy(dtype=np.int64)
    keep = np.ones(y.size, dtype=bool)
    if mask is not None:
        keep = np.asarray(mask)
        if keep.dtype != np.bool_ or keep.shape != y.shape:
            raise ValueError(
                f"mask must be a boolean array of shape ({y.size},), got dtype {keep.dtype} and "
                f"shape {keep.shape}; pass e.g. splits == 'test'."
            )
    y = y[keep]
    if y.size == 0 or y.min() == y.max():
        raise ValueError(
            f"The selected {y.size} patients hold a single label class; AUROC needs both. "
            "Select more patients."
        )
    return truth_aurocs(cohort.truth.loc[keep], y)


def truth_aurocs(truth: pd.DataFrame, y: npt.ArrayLike) -> dict[str, float]:
    """AUROC against ``y`` of ``true_risk`` and of each ``logit_<modality>`` column of ``truth``.

    The same figures as :func:`oracle_aurocs`, from a ground-truth table (e.g. the store's
    ``ground_truth`` rows of the test split); rows align with ``y``.

    Examples
    --------
    >>> logits = {f"logit_{m}": [0.0, 1.0] for m in MODALITIES}
    >>> truth = pd.DataFrame({"true_risk": [0.1, 0.9], **logits})
    >>> truth_aurocs(truth, [0, 1])["all"]
    1.0
    """
    labels = np.asarray(y, dtype=np.int64)
    scores = {"all": truth["true_risk"]} | {name: truth[f"logit_{name}"] for name in MODALITIES}
    return {
        name: float(roc_auc_score(labels, values.to_numpy(dtype=np.float64)))
        for name, values in scores.items()
    }
