"""Uncertainty interval of a patient's fused risk: a bootstrap ensemble of the fusion booster.

Owns fitting, saving (LightGBM text, SHA-256 checked before loading) and querying the ensemble.
At build time ``n_models`` copies of the fusion model are refitted on bootstrap resamples of the
training split, with the fusion model's hyper-parameters and number of boosting rounds; the
interval of a patient is the central ``level`` percentile range of the members' risks. It
reflects how much the fused risk moves when the training sample changes (model variance), not
the model's bias, so its coverage of the true risk is measured and reported, not assumed (see
``docs/models.md``). Querying costs one booster call per member (about 0.1 ms each).
Streamlit is not imported here (the dashboard layer only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.errors import ArtifactIntegrityError
from fusion.model import REBUILD_HINT, FusionClassifier, file_sha256

__all__ = [
    "INTERVAL_METHOD",
    "RiskInterval",
    "fit_bootstrap_ensemble",
    "interval_coverage",
    "load_ensemble",
    "member_risks",
    "risk_intervals",
    "save_ensemble",
]

logger = logging.getLogger(__name__)

INTERVAL_METHOD: Literal["bootstrap"] = "bootstrap"
MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class RiskInterval:
    """Central ``level`` interval of the fused risk over a bootstrap ensemble.

    Attributes
    ----------
    low, high : float
        Interval bounds (probabilities).
    level : float
        Nominal level, e.g. 0.9 for the 5th-95th percentiles of the members' risks.
    method : {"bootstrap"}
        How the interval was made.
    n_models : int
        Ensemble size.
    """

    low: float
    high: float
    level: float
    method: Literal["bootstrap"]
    n_models: int

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


def fit_bootstrap_ensemble(
    model: FusionClassifier,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    *,
    n_models: int = 10,
    random_state: int = 0,
) -> list[FusionClassifier]:
    """Refit the fusion model on ``n_models`` bootstrap resamples of its training data.

    Each member uses ``model``'s hyper-parameters and its chosen number of boosting rounds
    (``best_iteration_``) without early stopping, so no validation data is needed and every
    member costs the same.

    Parameters
    ----------
    model : FusionClassifier
        The fitted fusion model.
    X : DataFrame of shape (n_samples, n_features)
        Its training inputs.
    y : array-like of shape (n_samples,)
        Its training labels.
    n_models : int, default=10
        Ensemble size (>= 2).
    random_state : int, default=0
        Seed of the resamples and of the members.

    Returns
    -------
    list of FusionClassifier
    """
    if n_models < 2:
        raise ValueError(f"n_models={n_models}; a bootstrap interval needs at least 2 models.")
    labels = np.asarray(y).astype(np.int64)
    rng = np.random.default_rng(random_state)
    params = {**model.get_params(), "n_estimators": int(model.best_iteration_)}
    members = []
    for b in range(n_models):
        index = rng.integers(0, len(X), len(X))
        while len(np.unique(labels[index])) < 2:  # a resample needs both classes
            index = rng.integers(0, len(X), len(X))
        member = FusionClassifier(**{**params, "random_state": random_state + b})
        members.append(member.fit(X.iloc[index], labels[index]))
    return members


def save_ensemble(models: Sequence[FusionClassifier], folder: Path) -> str:
    """Write each member as LightGBM text plus a manifest of their SHA-256s.

    Returns
    -------
    str
        SHA-256 of the manifest (register it; :func:`load_ensemble` checks it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        f"member_{b:02d}.txt": m.save(folder / f"member_{b:02d}.txt") for b, m in enumerate(models)
    }
    manifest = folder / MANIFEST
    manifest.write_text(json.dumps({"method": INTERVAL_METHOD, "members": files}, indent=2))
    return file_sha256(manifest)


def load_ensemble(folder: Path, *, expected_sha256: str) -> list[FusionClassifier]:
    """Load an ensemble saved by :func:`save_ensemble`, checking every SHA-256 first.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the manifest or a member is missing or differs from its registered hash.
    """
    manifest = folder / MANIFEST
    if not manifest.is_file() or file_sha256(manifest) != expected_sha256:
        raise ArtifactIntegrityError(
            f"Interval ensemble manifest {manifest} is missing or does not match its registered "
            f"SHA-256; {REBUILD_HINT}."
        )
    members: Mapping[str, str] = json.loads(manifest.read_text())["members"]
    return [
        FusionClassifier.load(folder / name, expected_sha256=sha)
        for name, sha in sorted(members.items())
    ]


def member_risks(models: Sequence[FusionClassifier], X: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Risk of each row under each member, shape (n_samples, n_models)."""
    if not models:
        raise ValueError("The ensemble is empty; fit it with fit_bootstrap_ensemble.")
    X = models[0]._checked(X)
    values = X.to_numpy(dtype=np.float64)  # one conversion, then raw boosters (fast)
    margins = np.column_stack([m.booster_.predict(values, raw_score=True) for m in models])
    return np.asarray(1.0 / (1.0 + np.exp(-margins)), dtype=np.float64)


def risk_intervals(
    models: Sequence[FusionClassifier], X: pd.DataFrame, *, level: float = 0.9
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Central ``level`` percentile interval of the members' risks per row.

    Returns
    -------
    low, high : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> np.percentile(np.array([[0.1, 0.2, 0.3]]), [5.0, 95.0], axis=1).ravel().round(2)
    array([0.11, 0.29])
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level}; pass a probability in (0, 1), e.g. 0.9.")
    risks = member_risks(models, X)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(risks, [tail, 100 - tail], axis=1)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def interval_coverage(low: npt.ArrayLike, high: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Share of rows whose ``truth`` lies in ``[low, high]``.

    Examples
    --------
    >>> interval_coverage([0.1, 0.2], [0.3, 0.4], [0.2, 0.5])
    0.5
    """
    lo, hi, t = (np.asarray(a, dtype=np.float64) for a in (low, high, truth))
    if not (lo.shape == hi.shape == t.shape):
        raise ValueError(f"Shapes differ: low {lo.shape}, high {hi.shape}, truth {t.shape}.")
    if t.size == 0:
        raise ValueError("No rows to measure coverage on; pass at least one.")
    return float(np.mean((t >= lo) & (t <= hi)))
