"""Wide patient frames and the scan index: the reads of training, scoring and evaluation.

Owns :class:`FrameReads` (feature catalogue, wide frames streamed in keyset chunks, the image
index) and :func:`patient_frame_query`, the per-patient columns that the page reads share. It
must not import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from data.errors import StoreNotBuiltError
from data.store.engine import StoreBase
from data.store.records import FEATURE_COLUMNS, IMAGE_COLUMNS, check_split
from data.store.schema import (
    Demographics,
    EhrValue,
    Feature,
    GenomicValue,
    GroundTruth,
    Image,
    Outcome,
    Patient,
)

__all__ = ["FrameReads", "patient_frame_query"]


def patient_frame_query() -> Any:
    """``SELECT`` of the per-patient columns of a wide frame (one row per patient)."""
    return (
        select(
            Patient.patient_id,
            Patient.split,
            Demographics.age,
            Demographics.sex,
            Demographics.ethnicity,
            Demographics.site,
            Outcome.treatment,
            Outcome.label,
            Outcome.event_time,
            Outcome.event,
            GroundTruth.true_risk,
        )
        .join(Demographics, Demographics.patient_id == Patient.patient_id)
        .join(Outcome, Outcome.patient_id == Patient.patient_id)
        .outerjoin(GroundTruth, GroundTruth.patient_id == Patient.patient_id)
    )


class FrameReads(StoreBase):
    """Read patients as wide frames and scans as an index (one repository of the store)."""

    def feature_catalog(self) -> pd.DataFrame:
        """The feature catalogue in model-input order."""
        query = select(Feature).order_by(Feature.position)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame(
            [{key: row[key] for key in (*FEATURE_COLUMNS, "position")} for row in rows],
            columns=[*FEATURE_COLUMNS, "position"],
        )

    def iter_patient_frames(
        self, *, split: str | None = None, chunk_size: int = 20_000
    ) -> Iterator[pd.DataFrame]:
        """Stream wide patient frames (one row per patient) in patient-id order.

        Columns: ``patient_id, split, age, sex, ethnicity, site, treatment, label, event_time,
        event``, one column per catalogue feature (NaN when not recorded) and, for synthetic
        cohorts, ``true_risk``. Each chunk costs three indexed range queries.
        """
        check_split(split)
        last = ""
        while True:
            query = patient_frame_query().where(Patient.patient_id > last)
            if split is not None:
                query = query.where(Patient.split == split)
            frame = self._frame(query.order_by(Patient.patient_id).limit(chunk_size))
            if frame.empty:
                return
            last = str(frame["patient_id"].iloc[-1])
            yield frame

    def patient_frame(self, patient_ids: Sequence[str]) -> pd.DataFrame:
        """The wide frame of some patients (columns of :meth:`iter_patient_frames`).

        Rows come in patient-id order; ids that are not stored are absent. Pass at most a few
        thousand ids per call (one ``IN`` list).
        """
        ids = sorted({str(pid) for pid in patient_ids})
        if not ids:
            return self._frame(patient_frame_query().where(Patient.patient_id.in_([])))
        query = patient_frame_query().where(Patient.patient_id.in_(ids))
        return self._frame(query.order_by(Patient.patient_id))

    def _frame(self, query: Any) -> pd.DataFrame:
        """Run a :func:`patient_frame_query` and join the EHR and genomic values of its rows."""
        catalog = self.feature_catalog()
        ehr_names = catalog.loc[catalog["modality"] == "ehr", "name"].tolist()
        genomic_names = catalog.loc[catalog["modality"] == "genomics", "name"].tolist()
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
            if frame.empty:
                return frame
            first, last = str(frame["patient_id"].iloc[0]), str(frame["patient_id"].iloc[-1])
            ehr = self._pivot(conn, EhrValue, first, last, ehr_names)
            genomics = self._pivot(conn, GenomicValue, first, last, genomic_names)
        return frame.join(ehr, on="patient_id").join(genomics, on="patient_id")

    def load_patient_frame(self, *, split: str | None = None) -> pd.DataFrame:
        """All patients (or one split) as one wide frame; see :meth:`iter_patient_frames`."""
        chunks = list(self.iter_patient_frames(split=split))
        if not chunks:
            raise StoreNotBuiltError(
                "The store holds no patients; build the demo with `riskfusion demo --no-serve` "
                "or import a cohort."
            )
        return pd.concat(chunks, ignore_index=True)

    @staticmethod
    def _pivot(
        conn: Connection, table: Any, first: str, last: str, names: Sequence[str]
    ) -> pd.DataFrame:
        query = select(table.patient_id, table.feature, table.value).where(
            table.patient_id >= first, table.patient_id <= last
        )
        rows = [tuple(row) for row in conn.execute(query)]  # tuples: 10x faster than Rows
        long = pd.DataFrame.from_records(rows, columns=["patient_id", "feature", "value"])
        wide = long.pivot(index="patient_id", columns="feature", values="value")
        return wide.reindex(columns=list(names)).astype(np.float64)

    def image_index(self) -> pd.DataFrame:
        """Every image row, in image-id order.

        Columns: ``image_id, patient_id, path, sha256, height, width, site, mask_path``.
        """
        query = select(
            Image.image_id,
            Image.patient_id,
            Image.path,
            Image.sha256,
            Image.height,
            Image.width,
            Image.site,
            Image.mask_path,
        ).order_by(Image.image_id)
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=["image_id", *IMAGE_COLUMNS]
            )

    def image_rows(self, patient_ids: Sequence[str]) -> pd.DataFrame:
        """The image rows of some patients (columns of :meth:`image_index`), in image-id order."""
        query = (
            select(Image.image_id, *(getattr(Image, c) for c in IMAGE_COLUMNS))
            .where(Image.patient_id.in_([str(pid) for pid in patient_ids]))
            .order_by(Image.image_id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=["image_id", *IMAGE_COLUMNS]
            )
