"""Stored predictions: one risk per (fusion version, patient), and scored chunks.

Owns :class:`PredictionResults` (write, the all-or-nothing ``write_scored`` of a scoring chunk,
each recorded as a scoring batch, the :class:`~data.store.records.DataStamp` of a version,
look-ups, keyset streams, top risks, evaluation splits) and the checked prediction rows. It
must not import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import delete, func, insert, inspect, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from data.errors import CohortError
from data.store.audit import append_audit
from data.store.embeddings import embedding_rows, replace_embeddings
from data.store.engine import WRITE_CHUNK, StoreBase
from data.store.explanations import explanation_rows, replace_explanations
from data.store.records import AuditEntry, DataStamp, EmbeddingBatch, check_split
from data.store.schema import (
    Demographics,
    GroundTruth,
    ImportBatch,
    ModelVersion,
    Outcome,
    Patient,
    Prediction,
    ScoringBatch,
)

__all__ = ["PredictionResults", "prediction_rows", "replace_predictions"]

_PREDICTION_FK = (
    "Cannot store predictions of model {version!r}: register the version first and score "
    "only stored patients (a patient id or the version is unknown). Nothing was written."
)


def prediction_rows(
    model_version: str, patient_ids: Sequence[str], risks: npt.ArrayLike
) -> list[dict[str, Any]]:
    """Checked prediction rows: one finite probability per distinct patient."""
    values = np.asarray(risks, dtype=np.float64)
    if len(values) != len(patient_ids):
        raise ValueError(
            f"Got {len(patient_ids)} patient ids but {len(values)} risks; pass one risk each."
        )
    if len(values) and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1):
        raise ValueError("Risks must be finite probabilities in [0, 1].")
    ids = pd.Index(list(patient_ids))
    if ids.has_duplicates:
        twice = sorted(map(str, ids[ids.duplicated()].unique()))[:5]
        raise ValueError(f"Patient ids given more than once, e.g. {twice}; pass each once.")
    now = datetime.now(UTC)
    return [
        {"model_version": model_version, "patient_id": pid, "risk": float(r), "created_at": now}
        for pid, r in zip(patient_ids, values, strict=True)
    ]


def replace_predictions(
    conn: Connection, model_version: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Replace the version's predictions of the rows' patients (caller's transaction).

    Records the write as one :class:`~data.store.schema.ScoringBatch` in the same transaction.
    """
    conn.execute(
        insert(ScoringBatch).values(
            model_version=model_version, patients=len(rows), created_at=datetime.now(UTC)
        )
    )
    for start in range(0, len(rows), WRITE_CHUNK):
        chunk = list(rows[start : start + WRITE_CHUNK])
        conn.execute(
            delete(Prediction).where(
                Prediction.model_version == model_version,
                Prediction.patient_id.in_([row["patient_id"] for row in chunk]),
            )
        )
        conn.execute(insert(Prediction), chunk)


class PredictionResults(StoreBase):
    """Write and read the risks of fusion versions (one repository of the store)."""

    def write_predictions(
        self, model_version: str, patient_ids: Sequence[str], risks: npt.ArrayLike
    ) -> None:
        """Store (replace) the risk of each patient under a model version, in one transaction."""
        rows = prediction_rows(model_version, patient_ids, risks)
        try:
            with self.engine.begin() as conn:
                replace_predictions(conn, model_version, rows)
        except IntegrityError as err:
            raise CohortError(_PREDICTION_FK.format(version=model_version)) from err

    def write_scored(
        self,
        model_version: str,
        patient_ids: Sequence[str],
        risks: npt.ArrayLike,
        base_value: float,
        values: npt.NDArray[np.float64],
        *,
        audit: AuditEntry | None = None,
        embeddings: EmbeddingBatch | None = None,
    ) -> None:
        """Store embeddings, risks and SHAP values of patients together, in one transaction.

        A batch-scoring chunk is all or nothing, so a patient never has a risk without its
        explanation (see :meth:`write_predictions` and :meth:`write_explanations`) nor the
        embedding of only some imaging nets. ``embeddings`` (every net's rows of the chunk's
        newly embedded scans) replace any rows those images had under that imaging version;
        ``audit`` is appended in the same transaction.
        """
        rows = prediction_rows(model_version, patient_ids, risks)
        explanations = explanation_rows(
            model_version, patient_ids, np.full(len(rows), base_value), values
        )
        vectors = [] if embeddings is None else embedding_rows(embeddings)
        try:
            with self.engine.begin() as conn:
                if embeddings is not None and vectors:
                    replace_embeddings(conn, embeddings.model_version, vectors)
                replace_predictions(conn, model_version, rows)
                replace_explanations(conn, model_version, explanations)
                if audit is not None:
                    append_audit(conn, audit)
        except IntegrityError as err:
            raise CohortError(_PREDICTION_FK.format(version=model_version)) from err

    def data_stamp(self, model_version: str) -> DataStamp:
        """What ``model_version``'s cohort views are computed from, in one small query.

        The version's last scoring batch (primary-key index), the last import and the version's
        newest explanations artifact (small tables). A store made before scoring batches were
        recorded has none until its next ``riskfusion score``, ``import`` or ``train`` (each
        creates the table): its predictions have not changed since, so 0 is exact.
        """
        scoring = (
            select(func.max(ScoringBatch.batch_id))
            .where(ScoringBatch.model_version == model_version)
            .scalar_subquery()
        )
        imported = (
            select(ImportBatch.batch_id)
            .order_by(ImportBatch.created_at.desc(), ImportBatch.batch_id.desc())
            .limit(1)
            .scalar_subquery()
        )
        explanations = (
            select(ModelVersion.version)
            .where(
                ModelVersion.parent_version == model_version,
                ModelVersion.kind == "explanations",
            )
            .order_by(ModelVersion.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(scoring, imported, explanations)).one()
        except DBAPIError:
            with self.engine.connect() as conn:
                if inspect(conn).has_table(ScoringBatch.__tablename__):
                    raise
                row = conn.execute(select(literal(0), imported, explanations)).one()
        return DataStamp(model_version, int(row[0] or 0), str(row[1] or ""), str(row[2] or ""))

    def get_prediction(self, patient_id: str, model_version: str) -> float | None:
        """Stored risk of one patient under one version, or None if not scored."""
        query = select(Prediction.risk).where(
            Prediction.patient_id == patient_id, Prediction.model_version == model_version
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else float(value)

    def count_predictions(self, model_version: str) -> int:
        """Number of patients scored by a model version."""
        return self._count_of_version(Prediction, model_version)

    def iter_unscored_ids(
        self, model_version: str, *, chunk_size: int = 5_000
    ) -> Iterator[list[str]]:
        """Stream the ids of patients without a prediction of ``model_version``, in id order.

        Keyset pagination over the patients' primary key with an anti-join on the predictions'
        primary key: each chunk is one indexed query, whatever the cohort size.
        """
        scored = select(Prediction.patient_id).where(
            Prediction.model_version == model_version,
            Prediction.patient_id == Patient.patient_id,
        )
        last = ""
        while True:
            query = (
                select(Patient.patient_id)
                .where(Patient.patient_id > last, ~scored.exists())
                .order_by(Patient.patient_id)
                .limit(chunk_size)
            )
            with self.engine.connect() as conn:
                ids = [str(pid) for pid in conn.execute(query).scalars()]
            if not ids:
                return
            last = ids[-1]
            yield ids

    def top_risks(self, model_version: str, *, split: str, limit: int) -> pd.DataFrame:
        """The ``limit`` highest risks of one split under a version (ties by patient id).

        Columns ``patient_id, risk``. Walks the ``(model_version, risk)`` index from the top,
        so the cost does not grow with the cohort.
        """
        check_split(split)
        query = (
            select(Prediction.patient_id, Prediction.risk)
            .join(Patient, Patient.patient_id == Prediction.patient_id)
            .where(Prediction.model_version == model_version, Patient.split == split)
            .order_by(Prediction.risk.desc(), Prediction.patient_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        return pd.DataFrame(rows, columns=["patient_id", "risk"])

    def iter_prediction_rows(
        self, model_version: str, *, chunk_size: int = 50_000
    ) -> Iterator[pd.DataFrame]:
        """Stream predictions with demographics and outcome, in patient-id order, in chunks.

        Columns: ``patient_id, split, sex, age, ethnicity, site, treatment, label, risk,
        model_version`` and ``true_risk`` (NaN when the cohort has no ground truth). Keyset
        pagination on the primary key keeps memory bounded for any cohort size.
        """
        last = ""
        while True:
            query = (
                select(
                    Prediction.patient_id,
                    Patient.split,
                    Demographics.sex,
                    Demographics.age,
                    Demographics.ethnicity,
                    Demographics.site,
                    Outcome.treatment,
                    Outcome.label,
                    Prediction.risk,
                    Prediction.model_version,
                    GroundTruth.true_risk,
                )
                .join(Patient, Patient.patient_id == Prediction.patient_id)
                .join(Demographics, Demographics.patient_id == Prediction.patient_id)
                .join(Outcome, Outcome.patient_id == Prediction.patient_id)
                .outerjoin(GroundTruth, GroundTruth.patient_id == Prediction.patient_id)
                .where(Prediction.model_version == model_version, Prediction.patient_id > last)
                .order_by(Prediction.patient_id)
                .limit(chunk_size)
            )
            with self.engine.connect() as conn:
                frame = pd.DataFrame(conn.execute(query).mappings().all())
            if frame.empty:
                return
            last = str(frame["patient_id"].iloc[-1])
            frame["true_risk"] = frame["true_risk"].astype(np.float64)  # None -> NaN
            yield frame

    def split_predictions(self, model_versions: Sequence[str], split: str) -> pd.DataFrame:
        """Predictions of several model versions on one split, filtered in SQL (one query).

        Columns: ``patient_id, model_version, risk, sex, age, ethnicity, site, label`` and
        ``true_risk`` (NaN without ground truth), one row per (patient, version), in
        (patient id, version) order. Meant for the evaluation splits (validation, test), whose
        size is a fraction of the cohort.
        """
        check_split(split)
        if split is None:
            raise ValueError("split_predictions needs a split; use iter_prediction_rows for all.")
        query = (
            select(
                Prediction.patient_id,
                Prediction.model_version,
                Prediction.risk,
                Demographics.sex,
                Demographics.age,
                Demographics.ethnicity,
                Demographics.site,
                Outcome.label,
                GroundTruth.true_risk,
            )
            .join(Patient, Patient.patient_id == Prediction.patient_id)
            .join(Demographics, Demographics.patient_id == Prediction.patient_id)
            .join(Outcome, Outcome.patient_id == Prediction.patient_id)
            .outerjoin(GroundTruth, GroundTruth.patient_id == Prediction.patient_id)
            .where(Prediction.model_version.in_(list(model_versions)), Patient.split == split)
            .order_by(Prediction.patient_id, Prediction.model_version)
        )
        columns = [
            "patient_id",
            "model_version",
            "risk",
            "sex",
            "age",
            "ethnicity",
            "site",
            "label",
            "true_risk",
        ]
        with self.engine.connect() as conn:
            frame = pd.DataFrame([tuple(row) for row in conn.execute(query)], columns=columns)
        frame["true_risk"] = frame["true_risk"].astype(np.float64)  # None -> NaN
        frame["risk"] = frame["risk"].astype(np.float64)
        return frame
