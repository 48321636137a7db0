"""Stored embeddings: one packed vector and logit per (scan, imaging fold net).

Owns :class:`EmbeddingResults` (write, count, load, and the logit reads the fusion features
need) and the checked embedding rows that :mod:`data.store.predictions` writes with a scoring
chunk. It must not import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from data.store.engine import WRITE_CHUNK, StoreBase, insert_chunks
from data.store.records import EmbeddingBatch, check_split
from data.store.schema import Embedding, Image, Patient

LOGIT_COLUMNS = ("image_id", "patient_id", "fold", "in_training", "logit")
"""Columns of a per-net logit row (:meth:`EmbeddingResults.patient_logits` and others)."""


def _logit_columns() -> tuple[Any, ...]:
    """The selected columns of :data:`LOGIT_COLUMNS`, in that order."""
    return (
        Embedding.image_id,
        Image.patient_id,
        Embedding.fold,
        Embedding.in_training,
        Embedding.logit,
    )


__all__ = ["EmbeddingResults", "embedding_rows", "replace_embeddings"]


def embedding_rows(batch: EmbeddingBatch) -> list[dict[str, Any]]:
    """Checked embedding rows (vectors packed as float32 bytes)."""
    ids = np.asarray(batch.image_ids)
    vecs = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != len(ids):
        raise ValueError(
            f"vectors must have shape (n_images, dim) with n_images={len(ids)}; got {vecs.shape}."
        )
    return [
        {
            "image_id": int(image_id),
            "model_version": batch.model_version,
            "fold": int(fold),
            "in_training": bool(seen),
            "logit": float(logit),
            "dim": int(vecs.shape[1]),
            "vector": vec.tobytes(),
        }
        for image_id, fold, seen, logit, vec in zip(
            ids,
            np.asarray(batch.folds),
            np.asarray(batch.in_training),
            np.asarray(batch.logits),
            vecs,
            strict=True,
        )
    ]


def replace_embeddings(conn: Connection, model_version: str, rows: list[dict[str, Any]]) -> None:
    """Delete the images' rows of the version (a partial set included), then insert ``rows``."""
    ids = sorted({row["image_id"] for row in rows})
    for start in range(0, len(ids), WRITE_CHUNK):
        conn.execute(
            delete(Embedding).where(
                Embedding.model_version == model_version,
                Embedding.image_id.in_(ids[start : start + WRITE_CHUNK]),
            )
        )
    insert_chunks(conn, Embedding, rows)


class EmbeddingResults(StoreBase):
    """Write and read the embeddings of imaging versions (one repository of the store)."""

    def write_embeddings(
        self,
        model_version: str,
        image_ids: npt.ArrayLike,
        folds: npt.ArrayLike,
        in_training: npt.ArrayLike,
        logits: npt.ArrayLike,
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Store one embedding row per (image, fold net) of an imaging model version.

        One transaction: pass every net's rows of a chunk in one call, so that no image is
        left with the embedding of only some nets.

        Parameters
        ----------
        model_version : str
            A registered imaging model version.
        image_ids, folds, in_training, logits : array-like of shape (n,)
            Image, the fold net that embedded it, whether that net trained on it, its logit.
        vectors : ndarray of shape (n, dim)
            Penultimate-layer embeddings, stored as packed float32.
        """
        rows = embedding_rows(
            EmbeddingBatch(
                model_version,
                np.asarray(image_ids),
                np.asarray(folds),
                np.asarray(in_training),
                np.asarray(logits),
                vectors,
            )
        )
        with self.engine.begin() as conn:
            insert_chunks(conn, Embedding, rows)

    def count_embeddings(self, model_version: str) -> int:
        """Number of embedding rows (image x fold net) of an imaging model version."""
        return self._count_of_version(Embedding, model_version)

    def load_embeddings(self, model_version: str) -> pd.DataFrame:
        """Embedding rows of a version: ``image_id, patient_id, fold, in_training, logit, vector``.

        ``vector`` holds float32 arrays.
        """
        query = (
            select(*_logit_columns(), Embedding.vector)
            .join(Image, Image.image_id == Embedding.image_id)
            .where(Embedding.model_version == model_version)
            .order_by(Embedding.image_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=[*LOGIT_COLUMNS, "vector"])
        vectors = [np.frombuffer(blob, dtype=np.float32) for blob in frame["vector"]]
        frame["vector"] = pd.Series(vectors, index=frame.index, dtype=object)
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def split_logits(self, model_version: str, split: str) -> pd.DataFrame:
        """Per-net logits of one split's scans (no vectors), filtered in SQL.

        Columns: ``patient_id, fold, in_training, logit`` (what
        :func:`fusion.features.image_scores` needs), in (patient id, fold) order.
        """
        check_split(split)
        query = (
            select(Image.patient_id, Embedding.fold, Embedding.in_training, Embedding.logit)
            .join(Image, Image.image_id == Embedding.image_id)
            .join(Patient, Patient.patient_id == Image.patient_id)
            .where(Embedding.model_version == model_version, Patient.split == split)
            .order_by(Image.patient_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=["patient_id", "fold", "in_training", "logit"])
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def patient_logits(self, model_version: str, patient_ids: Sequence[str]) -> pd.DataFrame:
        """Per-net logits of some patients' scans (no vectors).

        Columns: ``image_id, patient_id, fold, in_training, logit`` in (patient id, fold)
        order; patients without a scan or without embeddings of the version are absent.
        """
        query = (
            select(*_logit_columns())
            .join(Image, Image.image_id == Embedding.image_id)
            .where(
                Embedding.model_version == model_version,
                Image.patient_id.in_([str(pid) for pid in patient_ids]),
            )
            .order_by(Image.patient_id, Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=list(LOGIT_COLUMNS))
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame

    def image_logits(self, image_id: int, model_version: str) -> pd.DataFrame:
        """One image's rows of an imaging version: ``fold, in_training, logit``."""
        query = (
            select(Embedding.fold, Embedding.in_training, Embedding.logit)
            .where(Embedding.image_id == image_id, Embedding.model_version == model_version)
            .order_by(Embedding.fold)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=["fold", "in_training", "logit"])
        frame["in_training"] = frame["in_training"].astype(bool)
        return frame
