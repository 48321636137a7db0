"""Stored explanations: exact SHAP values per (fusion version, patient), packed as float64.

Owns :class:`ExplanationResults` (write, look up, count, stream, the explained patients and
their values for the similar-patient index) and the checked explanation rows that
:mod:`data.store.predictions` writes with a scoring chunk. It must not import torch, shap,
streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from data.store.engine import WRITE_CHUNK, StoreBase, insert_chunks
from data.store.records import check_split
from data.store.schema import Patient, StoredExplanation

__all__ = ["ExplanationResults", "explanation_rows", "replace_explanations"]


def explanation_rows(
    model_version: str,
    patient_ids: Sequence[str],
    base_values: npt.ArrayLike,
    values: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    """Checked explanation rows (SHAP values packed as float64 bytes)."""
    shap = np.ascontiguousarray(values, dtype=np.float64)
    base = np.asarray(base_values, dtype=np.float64)
    if shap.ndim != 2 or len(shap) != len(patient_ids) or base.shape != (len(patient_ids),):
        raise ValueError(
            f"Got {len(patient_ids)} patient ids, base values of shape {base.shape} and "
            f"SHAP values of shape {shap.shape}; pass (n,) base values and (n, n_features) "
            "values, one row per patient."
        )
    if not (np.all(np.isfinite(shap)) and np.all(np.isfinite(base))):
        raise ValueError("SHAP and base values must be finite; recompute the explanations.")
    return [
        {
            "model_version": model_version,
            "patient_id": str(pid),
            "base_value": float(b),
            "dim": int(shap.shape[1]),
            "shap": row.tobytes(),
        }
        for pid, b, row in zip(patient_ids, base, shap, strict=True)
    ]


def replace_explanations(
    conn: Connection, model_version: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Replace the version's explanations of the rows' patients (caller's transaction)."""
    ids = [row["patient_id"] for row in rows]
    for start in range(0, len(ids), WRITE_CHUNK):
        conn.execute(
            delete(StoredExplanation).where(
                StoredExplanation.model_version == model_version,
                StoredExplanation.patient_id.in_(ids[start : start + WRITE_CHUNK]),
            )
        )
    insert_chunks(conn, StoredExplanation, list(rows))


class ExplanationResults(StoreBase):
    """Write and read the stored SHAP values of fusion versions (one repository of the store)."""

    def write_explanations(
        self,
        model_version: str,
        patient_ids: Sequence[str],
        base_values: npt.ArrayLike,
        values: npt.NDArray[np.float64],
    ) -> None:
        """Store (replace) exact SHAP values of patients under a model version (one transaction).

        Parameters
        ----------
        model_version : str
            A registered fusion model version.
        patient_ids : sequence of str, length n
            Stored patients.
        base_values : array-like of shape (n,)
            The explainer's base value (log-odds) of each row.
        values : ndarray of shape (n, n_features)
            SHAP values in the model's input order, stored as packed float64.

        Raises
        ------
        ValueError
            If the shapes disagree or a value is not finite; nothing is written.
        """
        rows = explanation_rows(model_version, patient_ids, base_values, values)
        with self.engine.begin() as conn:
            replace_explanations(conn, model_version, rows)

    def get_explanation(
        self, model_version: str, patient_id: str
    ) -> tuple[float, npt.NDArray[np.float64]] | None:
        """One patient's stored ``(base_value, shap values)`` under a version, or None."""
        query = select(StoredExplanation.base_value, StoredExplanation.shap).where(
            StoredExplanation.model_version == model_version,
            StoredExplanation.patient_id == patient_id,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return float(row[0]), np.frombuffer(row[1], dtype=np.float64).copy()

    def count_explanations(self, model_version: str) -> int:
        """Number of patients with stored explanations under a model version."""
        return self._count_of_version(StoredExplanation, model_version)

    def explained_patients(self, model_version: str) -> pd.DataFrame:
        """Ids and splits of the patients with stored explanations under a version (no values).

        Columns ``patient_id, split``, in patient-id order (one query over the primary key).
        """
        query = (
            select(StoredExplanation.patient_id, Patient.split)
            .join(Patient, Patient.patient_id == StoredExplanation.patient_id)
            .where(StoredExplanation.model_version == model_version)
            .order_by(StoredExplanation.patient_id)
        )
        with self.engine.connect() as conn:
            rows = [(str(pid), str(split)) for pid, split in conn.execute(query)]
        return pd.DataFrame(rows, columns=["patient_id", "split"])

    def explanation_values(
        self, model_version: str, patient_ids: Sequence[str]
    ) -> npt.NDArray[np.float64]:
        """Stored SHAP values of ``patient_ids`` under a version, in the order given.

        Reads primary-key look-ups in chunks.

        Raises
        ------
        KeyError
            If a patient has no stored explanation under the version.
        """
        ids = [str(pid) for pid in patient_ids]
        found: dict[str, npt.NDArray[np.float64]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), WRITE_CHUNK):
                query = select(StoredExplanation.patient_id, StoredExplanation.shap).where(
                    StoredExplanation.model_version == model_version,
                    StoredExplanation.patient_id.in_(ids[start : start + WRITE_CHUNK]),
                )
                found.update(
                    (str(pid), np.frombuffer(blob, dtype=np.float64))
                    for pid, blob in conn.execute(query)
                )
        missing = [pid for pid in ids if pid not in found]
        if missing:
            raise KeyError(f"No stored explanation under {model_version!r} for {missing[:5]}.")
        if not ids:
            return np.empty((0, 0), dtype=np.float64)
        return np.stack([found[pid] for pid in ids])

    def iter_explanations(
        self, model_version: str, *, split: str | None = None, chunk_size: int = 50_000
    ) -> Iterator[tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Stream stored explanations in patient-id order (keyset pagination), in chunks.

        Yields
        ------
        tuple
            ``(patient_ids, base_values (n,), values (n, n_features))`` per chunk.
        """
        check_split(split)
        last = ""
        while True:
            query = (
                select(
                    StoredExplanation.patient_id,
                    StoredExplanation.base_value,
                    StoredExplanation.shap,
                )
                .where(
                    StoredExplanation.model_version == model_version,
                    StoredExplanation.patient_id > last,
                )
                .order_by(StoredExplanation.patient_id)
                .limit(chunk_size)
            )
            if split is not None:
                query = query.join(
                    Patient, Patient.patient_id == StoredExplanation.patient_id
                ).where(Patient.split == split)
            with self.engine.connect() as conn:
                rows: list[tuple[str, float, bytes]] = [
                    (str(pid), float(base), bytes(blob)) for pid, base, blob in conn.execute(query)
                ]
            if not rows:
                return
            last = rows[-1][0]
            yield (
                [r[0] for r in rows],
                np.array([r[1] for r in rows], dtype=np.float64),
                np.stack([np.frombuffer(r[2], dtype=np.float64) for r in rows]),
            )
