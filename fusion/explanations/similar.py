"""Similar patients: nearest neighbours in the fused model's SHAP space.

Owns the reference index (a capped set of stored patients, built at training time and saved as
one ``.npz`` of float32 vectors and ids with its SHA-256) and the query. Patients are compared
by their exact TreeSHAP vectors (log-odds per input): two patients are close when the fused
model's risk is driven by the same inputs in the same amounts. Unweighted standardised inputs
would let the many inputs the model barely uses (e.g. dozens of genotypes) dominate the
distance; SHAP space weights every input by its effect on this model, handles missing values
(as the model does) and needs no imputation. The index holds at most ``max_reference`` rows,
so a query is one brute-force pass over a bounded float32 matrix whatever the cohort size.
Must not import streamlit.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from data.artifacts import verified_file

__all__ = [
    "MAX_REFERENCE",
    "REFERENCE_SPLITS",
    "SimilarityIndex",
    "choose_reference",
    "load_index",
    "save_index",
]

MAX_REFERENCE = 50_000
# Training and test patients: their outcomes are known; validation picked the threshold.
REFERENCE_SPLITS = ("train", "test")


@dataclass(frozen=True, slots=True)
class SimilarityIndex:
    """Reference patients and their vectors.

    Attributes
    ----------
    patient_ids : ndarray of str, shape (n_reference,)
    vectors : ndarray of float32, shape (n_reference, n_features)
    """

    patient_ids: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.patient_ids):
            raise ValueError(
                f"vectors of shape {self.vectors.shape} do not match {len(self.patient_ids)} "
                "patient ids; pass one row per id."
            )

    def nearest(
        self, vector: npt.ArrayLike, *, k: int = 5, exclude: Sequence[str] = ()
    ) -> tuple[list[str], npt.NDArray[np.float64]]:
        """The ``k`` reference patients closest to ``vector`` (Euclidean), nearest first.

        Parameters
        ----------
        vector : array-like of shape (n_features,)
            Query in the index's space.
        k : int, default=5
            Number of neighbours (1..100).
        exclude : sequence of str
            Patient ids to leave out (the query patient itself).

        Returns
        -------
        patient_ids : list of str
        distances : ndarray of shape (k,)

        Examples
        --------
        >>> vectors = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
        >>> index = SimilarityIndex(np.array(["A", "B", "C"]), vectors)
        >>> index.nearest([0.9], k=2, exclude=["B"])[0]
        ['A', 'C']
        """
        if not 1 <= k <= 100:
            raise ValueError(f"k={k}; ask for 1..100 similar patients.")
        query = np.asarray(vector, dtype=np.float32).ravel()
        if query.shape != (self.vectors.shape[1],):
            raise ValueError(
                f"Query has {query.size} values; the index has {self.vectors.shape[1]} per "
                "patient (one per model input)."
            )
        squared = np.einsum("ij,ij->i", self.vectors - query, self.vectors - query)
        if exclude:
            squared[np.isin(self.patient_ids, list(exclude))] = np.inf
        count = min(k, int(np.isfinite(squared).sum()))
        if count == 0:
            return [], np.empty(0)
        top = np.argpartition(squared, count - 1)[:count]
        top = top[np.lexsort((self.patient_ids[top], squared[top]))]  # ties: by id
        distances = np.sqrt(squared[top].astype(np.float64))
        return [str(pid) for pid in self.patient_ids[top]], distances


def choose_reference(
    patient_ids: Sequence[str],
    splits: Sequence[str],
    *,
    max_reference: int = MAX_REFERENCE,
    random_state: int = 0,
) -> npt.NDArray[np.bool_]:
    """Which patients go into the reference index: reference splits, capped by a seeded draw.

    Returns
    -------
    ndarray of bool, shape (n_patients,)

    Examples
    --------
    >>> choose_reference(["A", "B", "C"], ["train", "val", "test"]).tolist()
    [True, False, True]
    """
    if max_reference < 1:
        raise ValueError(f"max_reference={max_reference}; pass a positive cap.")
    eligible = np.flatnonzero(np.isin(np.asarray(splits), REFERENCE_SPLITS))
    if len(patient_ids) != len(splits):
        raise ValueError(f"Got {len(patient_ids)} ids but {len(splits)} splits.")
    if len(eligible) > max_reference:
        rng = np.random.default_rng(random_state)
        eligible = np.sort(rng.choice(eligible, max_reference, replace=False))
    chosen = np.zeros(len(splits), dtype=bool)
    chosen[eligible] = True
    return chosen


def save_index(index: SimilarityIndex, path: Path) -> str:
    """Write the index as ``.npz`` (no pickle) and return the file's SHA-256."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        patient_ids=np.asarray(index.patient_ids, dtype=np.str_),
        vectors=np.ascontiguousarray(index.vectors, dtype=np.float32),
    )
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_index(path: Path, *, expected_sha256: str) -> SimilarityIndex:
    """Load an index saved by :func:`save_index`, checking its SHA-256 first (never unpickles).

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the file is missing or differs from its registered hash.
    """
    source = verified_file(path, expected_sha256, what="Similar-patient index")
    with np.load(source, allow_pickle=False) as data:
        return SimilarityIndex(
            patient_ids=np.asarray(data["patient_ids"]),
            vectors=np.asarray(data["vectors"], dtype=np.float32),
        )
