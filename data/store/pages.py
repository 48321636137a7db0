"""Page reads: one patient, one page of the picker, a few summaries, counts and cohort views.

Owns :class:`PageReads`: the narrow, indexed reads behind the pages (``get_patient``, the
keyset-paginated ``search_patients``, ``patient_summaries``) and the cohort's status (counts,
ground truth, sources, import batches). No read here skips rows with ``OFFSET``: a page starts
after (or ends before) a patient id, so its cost does not grow with its position. It must not
import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, func, select

from data.errors import PatientNotFoundError
from data.store.engine import StoreBase
from data.store.frames import patient_frame_query
from data.store.records import TRUTH_COLUMNS, ImageRecord, PatientRecord, check_split
from data.store.schema import (
    CounterfactualRisk,
    Demographics,
    EhrValue,
    GenomicValue,
    GroundTruth,
    Image,
    ImportBatch,
    Outcome,
    Patient,
    Prediction,
)

__all__ = ["PageReads"]


def _prefix_successor(prefix: str) -> str:
    """Smallest string above every string that starts with ``prefix`` (for range scans)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class PageReads(StoreBase):
    """Read what the pages show: patients, picker pages, status (one repository of the store)."""

    def count_patients(self, split: str | None = None, query: str = "") -> int:
        """Number of stored patients, optionally in one split and with an id prefix.

        An index-only count: ``(split, patient_id)`` with a split, the primary key without.
        """
        check_split(split)
        stmt = _patient_filter(select(func.count()).select_from(Patient), query, split)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def has_ground_truth(self) -> bool:
        """Whether the stored cohort carries synthetic ground truth."""
        with self.engine.connect() as conn:
            return conn.execute(select(GroundTruth.patient_id).limit(1)).first() is not None

    def load_truth(self) -> pd.DataFrame | None:
        """Synthetic ground truth of every patient, or None for a cohort without it.

        Columns: ``patient_id``, :data:`TRUTH_COLUMNS` and ``true_risk_<treatment>`` per stored
        treatment option, in patient-id order.
        """
        if not self.has_ground_truth():
            return None
        columns = [getattr(GroundTruth, name) for name in TRUTH_COLUMNS if name != "patient_id"]
        with self.engine.connect() as conn:
            truth = pd.DataFrame(
                conn.execute(
                    select(GroundTruth.patient_id, *columns).order_by(GroundTruth.patient_id)
                )
                .mappings()
                .all()
            )
            rows = [
                tuple(row)
                for row in conn.execute(
                    select(
                        CounterfactualRisk.patient_id,
                        CounterfactualRisk.treatment,
                        CounterfactualRisk.risk,
                    )
                )
            ]
        if rows:
            long = pd.DataFrame.from_records(rows, columns=["patient_id", "treatment", "risk"])
            wide = long.pivot(index="patient_id", columns="treatment", values="risk")
            truth = truth.join(wide.add_prefix("true_risk_"), on="patient_id")
        return truth

    def cohort_sources(self) -> list[str]:
        """Distinct ``patients.source`` values (``synthetic`` or ``import:<name>``)."""
        with self.engine.connect() as conn:
            return sorted(str(s) for s in conn.execute(select(Patient.source).distinct()).scalars())

    def import_batches(self) -> list[dict[str, Any]]:
        """Every import that changed the store, oldest first.

        Keys: ``batch_id, created_at, source, files, counts``.
        """
        query = select(
            ImportBatch.batch_id,
            ImportBatch.created_at,
            ImportBatch.source,
            ImportBatch.files,
            ImportBatch.counts,
        ).order_by(ImportBatch.created_at, ImportBatch.batch_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_patient(self, patient_id: str) -> PatientRecord:
        """Everything stored about one patient.

        Raises
        ------
        PatientNotFoundError
            If the id is not in the store.
        """
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    patient_frame_query()
                    .add_columns(Patient.source)
                    .where(Patient.patient_id == patient_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                raise PatientNotFoundError(
                    f"Patient {patient_id!r} is not in the store; search the patient list "
                    "for a valid id."
                )
            ehr = dict(
                conn.execute(
                    select(EhrValue.feature, EhrValue.value).where(
                        EhrValue.patient_id == patient_id
                    )
                ).all()
            )
            genomics = dict(
                conn.execute(
                    select(GenomicValue.feature, GenomicValue.value).where(
                        GenomicValue.patient_id == patient_id
                    )
                ).all()
            )
            # A Core connection yields Rows (not ORM objects): read the columns by name.
            image_row = conn.execute(
                select(Image)
                .where(Image.patient_id == patient_id)
                .order_by(Image.image_id)
                .limit(1)
            ).first()
            counterfactual = dict(
                conn.execute(
                    select(CounterfactualRisk.treatment, CounterfactualRisk.risk).where(
                        CounterfactualRisk.patient_id == patient_id
                    )
                ).all()
            )
        image = (
            None
            if image_row is None
            else ImageRecord(
                image_id=image_row.image_id,
                patient_id=image_row.patient_id,
                path=image_row.path,
                sha256=image_row.sha256,
                height=image_row.height,
                width=image_row.width,
                site=image_row.site,
                mask_path=image_row.mask_path,
            )
        )
        return PatientRecord(
            patient_id=row["patient_id"],
            split=row["split"],
            age=float(row["age"]),
            sex=row["sex"],
            ethnicity=row["ethnicity"],
            site=row["site"],
            treatment=row["treatment"],
            label=row["label"],
            event_time=row["event_time"],
            event=row["event"],
            ehr={str(k): float(v) for k, v in ehr.items()},
            genomics={str(k): int(v) for k, v in genomics.items()},
            image=image,
            true_risk=None if row["true_risk"] is None else float(row["true_risk"]),
            counterfactual_risks={str(k): float(v) for k, v in counterfactual.items()},
            source=str(row["source"]),
        )

    def search_patients(
        self,
        query: str = "",
        *,
        split: str | None = None,
        model_version: str | None = None,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        from_end: bool = False,
    ) -> pd.DataFrame:
        """One page of patients whose id starts with ``query`` (case-insensitive), in id order.

        Keyset pagination: the first page by default, the page after the id ``after``, the page
        before the id ``before``, or the last page (``from_end``). Pages before an id and the
        last page are read in descending id order with ``LIMIT`` and returned ascending, so no
        page skips rows (no ``OFFSET``) and each is one range read of an index: the primary key
        for all patients, ``(split, patient_id)`` within a split.

        Parameters
        ----------
        query : str, default=""
            Id prefix, trimmed and upper-cased; empty lists every patient.
        split : {"train", "val", "test"} or None, default=None
            Only patients of this split.
        model_version : str or None, default=None
            Adds each patient's stored ``risk`` under this version (NaN where not scored).
        limit : int, default=50
            Rows of the page, 1..1000.
        after, before : str or None, default=None
            The page starts after, or ends before, this patient id (at most one of them).
        from_end : bool, default=False
            The last ``limit`` matching patients (not with ``after`` or ``before``).

        Returns
        -------
        pandas.DataFrame
            Columns ``patient_id, split, age, sex, site`` and ``risk`` when ``model_version``
            is given.

        Raises
        ------
        ValueError
            If ``limit`` is out of range or more than one of ``after``, ``before``,
            ``from_end`` is given.
        """
        check_split(split)
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit={limit} is out of range; use 1..1000 rows per page.")
        anchors = {"after": after is not None, "before": before is not None, "from_end": from_end}
        if sum(anchors.values()) > 1:
            raise ValueError(
                f"A page has one anchor; got {sorted(k for k, v in anchors.items() if v)}. "
                "Pass only one of after, before, from_end."
            )
        columns: list[Any] = [
            Patient.patient_id,
            Patient.split,
            Demographics.age,
            Demographics.sex,
            Demographics.site,
        ]
        if model_version is not None:
            columns.append(Prediction.risk)
        stmt = select(*columns).join(Demographics, Demographics.patient_id == Patient.patient_id)
        if model_version is not None:
            stmt = stmt.outerjoin(
                Prediction,
                (Prediction.patient_id == Patient.patient_id)
                & (Prediction.model_version == model_version),
            )
        stmt = _patient_filter(stmt, query, split)
        if after is not None:
            stmt = stmt.where(Patient.patient_id > after)
        if before is not None:
            stmt = stmt.where(Patient.patient_id < before)
        descending = before is not None or from_end
        order = Patient.patient_id.desc() if descending else Patient.patient_id
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(stmt.order_by(order).limit(limit))]
        names = ["patient_id", "split", "age", "sex", "site"] + (
            ["risk"] if model_version is not None else []
        )
        if not rows:
            return pd.DataFrame(columns=names)
        return pd.DataFrame(rows[::-1] if descending else rows, columns=names)

    def patient_summaries(
        self, patient_ids: Sequence[str], model_version: str | None = None
    ) -> pd.DataFrame:
        """Split, outcome, true risk and stored risk of a few patients (one indexed query).

        Columns: ``patient_id, split, age, sex, label, true_risk`` and ``risk`` (NaN when the
        version has no prediction for the patient), in the order of ``patient_ids``; unknown
        ids are left out. At most 1000 ids per call (a page's worth).
        """
        ids = [str(pid) for pid in patient_ids]
        if len(ids) > 1000:
            raise ValueError(f"Got {len(ids)} patient ids; ask for at most 1000 per call.")
        columns = ["patient_id", "split", "age", "sex", "label", "true_risk", "risk"]
        if not ids:
            return pd.DataFrame(columns=columns)
        query = (
            select(
                Patient.patient_id,
                Patient.split,
                Demographics.age,
                Demographics.sex,
                Outcome.label,
                GroundTruth.true_risk,
                Prediction.risk,
            )
            .join(Demographics, Demographics.patient_id == Patient.patient_id)
            .join(Outcome, Outcome.patient_id == Patient.patient_id)
            .outerjoin(GroundTruth, GroundTruth.patient_id == Patient.patient_id)
            .outerjoin(
                Prediction,
                (Prediction.patient_id == Patient.patient_id)
                & (Prediction.model_version == (model_version or "")),
            )
            .where(Patient.patient_id.in_(ids))
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame([tuple(row) for row in conn.execute(query)], columns=columns)
        order = {pid: i for i, pid in enumerate(ids)}
        frame = frame.sort_values("patient_id", key=lambda s: s.map(order)).reset_index(drop=True)
        frame["true_risk"] = frame["true_risk"].astype(np.float64)
        frame["risk"] = frame["risk"].astype(np.float64)
        return frame


def _patient_filter(stmt: Select[Any], query: str, split: str | None) -> Select[Any]:
    """``stmt`` restricted to ids starting with ``query`` and to ``split`` (if given).

    The prefix is a range on the key instead of ``LIKE``, so that it uses the primary key or
    ``(split, patient_id)`` on every backend.
    """
    prefix = query.strip().upper()
    if prefix:
        stmt = stmt.where(
            Patient.patient_id >= prefix, Patient.patient_id < _prefix_successor(prefix)
        )
    if split is not None:
        stmt = stmt.where(Patient.split == split)
    return stmt
