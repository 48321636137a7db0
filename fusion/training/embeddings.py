"""Scans to imaging outputs: load and normalise scans, embed them with every fold net.

Owns the chunk size of scan streaming, the per-net logit scaling and the embedding batches that
the store writes in one transaction (used by training and by scoring). Must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from tqdm import tqdm

from data.errors import CohortError
from data.store import CohortStore, EmbeddingBatch
from models.embed import embed
from models.nets import RiskCNN
from models.transforms import normalize_scan

__all__ = [
    "SCAN_CHUNK",
    "concat_batches",
    "embed_chunk",
    "embed_every_scan",
    "load_scans",
    "logit_scaling",
    "write_embeddings",
]

SCAN_CHUNK = 256
"""Scans loaded and embedded at a time (bounds memory)."""


def load_scans(artifacts_dir: Path, paths: pd.Series) -> npt.NDArray[np.float32]:
    """Load and intensity-normalise scans, shape (n, H, W); never unpickles.

    Raises
    ------
    data.errors.CohortError
        If a stored scan file is missing (names the file and how to restore it).
    """
    images = []
    for rel in paths:
        path = artifacts_dir / str(rel)
        if not path.is_file():
            raise CohortError(
                f"The stored scan {path} is missing, so nothing was trained or scored; import "
                "the cohort again (`riskfusion import DIR` rewrites missing scans) or rebuild "
                "the demo (`riskfusion demo --rebuild`)."
            )
        images.append(np.load(path, allow_pickle=False))
    return normalize_scan(np.stack(images).astype(np.float32))


def logit_scaling(
    nets: Sequence[RiskCNN], scans: npt.NDArray[np.float32]
) -> dict[str, list[float]]:
    """Per-net mean and standard deviation of the logit over unlabelled reference scans.

    Independently trained fold nets put their logits on different offsets and scales; scores
    are compared across nets only after this label-free standardisation.
    """
    scaling = {}
    for k, net in enumerate(nets):
        _, logits = embed(net, scans)
        scaling[str(k)] = [float(logits.mean()), float(max(logits.std(), 1e-6))]
    return scaling


def embed_chunk(
    imaging_version: str,
    nets: Sequence[RiskCNN],
    rows: pd.DataFrame,
    scans: npt.NDArray[np.float32],
    patient_folds: npt.NDArray[np.int64],
) -> EmbeddingBatch:
    """Embed one chunk of scans with every fold net (``patient_folds`` -1: seen by none).

    Returns every net's rows together, so the store writes them in one transaction: no scan
    is ever stored with the embedding of only some nets.
    """
    parts = []
    for k, net in enumerate(nets):
        vectors, logits = embed(net, scans)
        parts.append(
            (np.full(len(rows), k), (patient_folds >= 0) & (patient_folds != k), logits, vectors)
        )
    ids = rows["image_id"].to_numpy()
    return EmbeddingBatch(
        model_version=imaging_version,
        image_ids=np.concatenate([ids] * len(nets)),
        folds=np.concatenate([p[0] for p in parts]),
        in_training=np.concatenate([p[1] for p in parts]),
        logits=np.concatenate([np.asarray(p[2], dtype=np.float64) for p in parts]),
        vectors=np.concatenate([np.asarray(p[3], dtype=np.float32) for p in parts]),
    )


def write_embeddings(
    store: CohortStore,
    imaging_version: str,
    nets: Sequence[RiskCNN],
    rows: pd.DataFrame,
    scans: npt.NDArray[np.float32],
    patient_folds: npt.NDArray[np.int64],
) -> None:
    """Embed one chunk of scans with every fold net and store all rows in one transaction."""
    batch = embed_chunk(imaging_version, nets, rows, scans, patient_folds)
    store.write_embeddings(
        batch.model_version,
        batch.image_ids,
        batch.folds,
        batch.in_training,
        batch.logits,
        batch.vectors,
    )


def embed_every_scan(
    store: CohortStore,
    imaging_version: str,
    nets: Sequence[RiskCNN],
    image_rows: pd.DataFrame,
    fold_of: Mapping[str, int],
    artifacts_dir: Path,
    *,
    chunk_size: int,
) -> None:
    """Embed every stored scan with every fold net, a chunk per transaction, with a progress bar.

    ``fold_of`` maps a training patient to the fold whose net did not see it (others: -1).
    """
    bar = tqdm(total=len(image_rows), desc="embeddings", unit="scan", leave=False)
    for start in range(0, len(image_rows), chunk_size):
        chunk = image_rows.iloc[start : start + chunk_size]
        patient_folds = np.array([fold_of.get(pid, -1) for pid in chunk["patient_id"]])
        scans = load_scans(artifacts_dir, chunk["path"])
        write_embeddings(store, imaging_version, nets, chunk, scans, patient_folds)
        bar.update(len(chunk))
    bar.close()


def concat_batches(imaging_version: str, batches: Sequence[EmbeddingBatch]) -> EmbeddingBatch:
    """One batch of the rows of several (an empty batch for none)."""
    if not batches:
        return EmbeddingBatch(
            imaging_version,
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=bool),
            np.empty(0, dtype=np.float64),
            np.empty((0, 0), dtype=np.float32),
        )
    return EmbeddingBatch(
        imaging_version,
        np.concatenate([b.image_ids for b in batches]),
        np.concatenate([b.folds for b in batches]),
        np.concatenate([b.in_training for b in batches]),
        np.concatenate([b.logits for b in batches]),
        np.concatenate([b.vectors for b in batches]),
    )
