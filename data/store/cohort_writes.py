"""Cohort writes: a whole synthetic cohort, or an import that rewrites only what changed.

Owns :class:`CohortWrites` (``write_cohort``, ``import_cohort``, ``import_hashes``) and the
per-part rewrite of imported patients. It must not import torch, streamlit or the
``models``/``fusion``/``dashboard`` packages, nor :mod:`data.cohort_import` (which builds the
:class:`~data.store.records.ImportTables` it writes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from data.errors import CohortError
from data.store.audit import append_audit
from data.store.engine import WRITE_CHUNK, StoreBase, frame_rows, insert_chunks, long_rows
from data.store.records import (
    FEATURE_COLUMNS,
    IMAGE_COLUMNS,
    IMPORT_PARTS,
    OUTCOME_COLUMNS,
    PATIENT_COLUMNS,
    SPLITS,
    TRUTH_COLUMNS,
    AuditEntry,
    CohortTables,
    ImportCounts,
    ImportTables,
)
from data.store.schema import (
    CohortSetting,
    CounterfactualRisk,
    Demographics,
    EhrValue,
    Embedding,
    Feature,
    GenomicValue,
    GroundTruth,
    Image,
    ImportBatch,
    ImportHash,
    Outcome,
    OutcomeDefinition,
    Patient,
    Prediction,
    StoredExplanation,
)
from data.vocabulary import OutcomeSpec

__all__ = ["CohortWrites"]

logger = logging.getLogger(__name__)


def _settings_changed(conn: Connection, settings: Mapping[str, Any]) -> bool:
    """Whether an import declares a cohort setting other than the stored one."""
    stored = {
        str(name): value
        for name, value in conn.execute(select(CohortSetting.name, CohortSetting.value))
    }
    return any(stored.get(name) != value for name, value in settings.items())


def _write_settings(conn: Connection, settings: Mapping[str, Any], batch_id: str) -> None:
    """Replace the declared cohort settings, recording the import batch that set them."""
    for name, value in settings.items():
        conn.execute(delete(CohortSetting).where(CohortSetting.name == name))
        conn.execute(insert(CohortSetting).values(name=name, value=value, batch_id=batch_id))


class CohortWrites(StoreBase):
    """Write cohorts into the store, each in one transaction (one repository of the store)."""

    def write_cohort(self, tables: CohortTables) -> int:
        """Write a whole cohort in one transaction.

        Parameters
        ----------
        tables : CohortTables
            The cohort; every frame is keyed by ``patient_id``.

        Returns
        -------
        int
            Number of patients written.

        Raises
        ------
        ValueError
            If a frame lacks a required column or a split is unknown. Nothing is written.
        sqlalchemy.exc.IntegrityError
            If a patient id already exists or a row references an unknown patient; the
            transaction is rolled back and the store is as before.
        """
        for name, frame, columns in (
            ("patients", tables.patients, PATIENT_COLUMNS),
            ("outcomes", tables.outcomes, OUTCOME_COLUMNS),
            ("images", tables.images, IMAGE_COLUMNS),
            ("features", tables.features, FEATURE_COLUMNS),
        ):
            missing = sorted(set(columns) - set(frame.columns))
            if missing:
                raise ValueError(
                    f"Cohort table {name!r} lacks columns {missing}; required: {list(columns)}."
                )
        bad_splits = sorted(set(tables.patients["split"]) - set(SPLITS))
        if bad_splits:
            raise ValueError(f"Unknown split values {bad_splits}; allowed: {list(SPLITS)}.")
        features = tables.features.reset_index(drop=True).assign(
            position=lambda df: np.arange(len(df))
        )
        with self.engine.begin() as conn:
            existing = set(conn.execute(select(Feature.name)).scalars())
            new_features = features[~features["name"].isin(existing)]
            insert_chunks(conn, Feature, frame_rows(new_features, (*FEATURE_COLUMNS, "position")))
            patient_rows = frame_rows(tables.patients, ("patient_id", "split"))
            for row in patient_rows:
                row["source"] = tables.source
            insert_chunks(conn, Patient, patient_rows)
            insert_chunks(
                conn,
                Demographics,
                frame_rows(tables.patients, ("patient_id", "age", "sex", "ethnicity", "site")),
            )
            insert_chunks(conn, Outcome, frame_rows(tables.outcomes, OUTCOME_COLUMNS))
            insert_chunks(conn, EhrValue, long_rows(tables.ehr, as_int=False))
            insert_chunks(conn, GenomicValue, long_rows(tables.genomics, as_int=True))
            insert_chunks(conn, Image, frame_rows(tables.images, IMAGE_COLUMNS))
            if tables.truth is not None:
                insert_chunks(conn, GroundTruth, frame_rows(tables.truth, TRUTH_COLUMNS))
            if tables.counterfactuals is not None:
                insert_chunks(
                    conn,
                    CounterfactualRisk,
                    frame_rows(tables.counterfactuals, ("patient_id", "treatment", "risk")),
                )
        logger.info("wrote cohort: %d patients (source %s)", len(patient_rows), tables.source)
        return len(patient_rows)

    def import_cohort(
        self, tables: ImportTables, *, audit: AuditEntry | None = None
    ) -> ImportCounts:
        """Write an imported cohort in one transaction, rewriting only what changed.

        Each patient's parts (:data:`IMPORT_PARTS`) carry a content hash: a part whose hash is
        stored already is skipped, a changed part is deleted and written again (a changed scan
        also drops that scan's embeddings; changed model inputs drop the patient's stored
        predictions and explanations, which ``riskfusion score`` recomputes), a new patient is
        inserted with its split. Patients
        stored earlier but absent from this import are kept. On any error (or a kill) nothing
        of the import stays.

        Parameters
        ----------
        tables : ImportTables
            The validated cohort with its hashes.
        audit : AuditEntry or None, default=None
            Appended to the audit trail in the same transaction (its detail gains the batch
            id and counts) when the import changes anything.

        Returns
        -------
        ImportCounts
            Added, updated and unchanged patients and rewritten parts.

        Raises
        ------
        CohortError
            If the store holds a cohort from another source (the synthetic demo or another
            import); nothing is written.
        """
        ids = tables.patients["patient_id"].astype(str).tolist()
        hash_rows = tables.hashes.loc[:, ["patient_id", "part", "sha256"]]
        new_hashes = {
            (str(pid), str(part)): str(sha)
            for pid, part, sha in hash_rows.itertuples(index=False, name=None)
        }
        batch_id = f"import-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S-%f')}"
        with self.engine.begin() as conn:
            sources = sorted(
                str(s) for s in conn.execute(select(Patient.source).distinct()).scalars()
            )
            other = [source for source in sources if source != tables.source]
            if other:
                raise CohortError(
                    f"The store holds patients from {other}, not {tables.source!r}; a store "
                    "holds one cohort. Import into a fresh store (set RISKFUSION_HOME or "
                    "RISKFUSION_DATABASE_URL to a new location)."
                )
            stored: dict[tuple[str, str], str] = {}
            known: set[str] = set()
            for start in range(0, len(ids), WRITE_CHUNK):
                chunk = ids[start : start + WRITE_CHUNK]
                known.update(
                    conn.execute(
                        select(Patient.patient_id).where(Patient.patient_id.in_(chunk))
                    ).scalars()
                )
                for pid, part, sha in conn.execute(
                    select(ImportHash.patient_id, ImportHash.part, ImportHash.sha256).where(
                        ImportHash.patient_id.in_(chunk)
                    )
                ):
                    stored[(str(pid), str(part))] = str(sha)
            changed: dict[str, list[str]] = {}
            for part in IMPORT_PARTS:
                changed[part] = [
                    pid for pid in ids if stored.get((pid, part)) != new_hashes.get((pid, part))
                ]
            added = [pid for pid in ids if pid not in known]
            touched = set().union(*changed.values())
            stored_features = {
                row["name"]: {key: row[key] for key in FEATURE_COLUMNS}
                for row in conn.execute(select(Feature)).mappings()
            }
            catalogue_changed = any(
                stored_features.get(row["name"]) != row
                for row in frame_rows(tables.features, FEATURE_COLUMNS)
            )
            outcome_changed = tables.outcome is not None and _stored_outcome(
                conn, tables.source
            ) != (tables.outcome.name, tables.outcome.description, tables.outcome.horizon_years)
            if outcome_changed and tables.outcome is not None:
                _write_outcome(conn, tables.source, tables.outcome)
            settings_changed = _settings_changed(conn, tables.settings)
            if not touched and not catalogue_changed and not settings_changed:
                # The same files again: leave the store exactly as it is (an edited [outcome]
                # alone is a schema change, written above without an import batch).
                logger.info("import of %s: nothing changed", tables.source)
                return ImportCounts("", 0, 0, len(ids), dict.fromkeys(IMPORT_PARTS, 0))
            conn.execute(
                insert(ImportBatch).values(
                    batch_id=batch_id,
                    created_at=datetime.now(UTC),
                    source=tables.source,
                    files=dict(tables.files),
                    counts={
                        "added": len(added),
                        "updated": len(touched - set(added)),
                        "unchanged": len(ids) - len(touched),
                        "parts": {part: len(pids) for part, pids in changed.items()},
                    },
                )
            )
            _upsert_features(conn, tables.features)
            _write_settings(conn, tables.settings, batch_id)
            by_id = tables.patients.set_index("patient_id", drop=False)
            insert_chunks(
                conn,
                Patient,
                [
                    {**row, "source": tables.source}
                    for row in frame_rows(by_id.loc[added], ("patient_id", "split"))
                ],
            )
            for part, table_rows in (
                ("patient", [(Demographics, tables.patients), (EhrValue, tables.ehr)]),
                ("outcome", [(Outcome, tables.outcomes)]),
                ("genomics", [(GenomicValue, tables.genomics)]),
                ("image", [(Image, tables.images)]),
            ):
                self._rewrite_part(conn, part, changed[part], table_rows)
            # A prediction made from a patient's old inputs is stale: `riskfusion score` redoes it.
            stale = sorted(
                set().union(*(changed[part] for part in ("patient", "genomics", "image")))
                - set(added)
            )
            for start in range(0, len(stale), WRITE_CHUNK):
                chunk = stale[start : start + WRITE_CHUNK]
                conn.execute(delete(Prediction).where(Prediction.patient_id.in_(chunk)))
                conn.execute(
                    delete(StoredExplanation).where(StoredExplanation.patient_id.in_(chunk))
                )
            for part, pids in changed.items():
                rows = [
                    {"patient_id": pid, "part": part, "sha256": new_hashes[(pid, part)]}
                    for pid in pids
                    if (pid, part) in new_hashes
                ]
                for start in range(0, len(pids), WRITE_CHUNK):
                    conn.execute(
                        delete(ImportHash).where(
                            ImportHash.part == part,
                            ImportHash.patient_id.in_(pids[start : start + WRITE_CHUNK]),
                        )
                    )
                insert_chunks(conn, ImportHash, [{**row, "batch_id": batch_id} for row in rows])
            if audit is not None:
                detail = {**audit.detail, "batch_id": batch_id, "added": len(added)}
                append_audit(conn, replace(audit, detail=detail))
        counts = ImportCounts(
            batch_id=batch_id,
            added=len(added),
            updated=len(touched - set(added)),
            unchanged=len(ids) - len(touched),
            parts={part: len(pids) for part, pids in changed.items()},
        )
        logger.info(
            "imported %s: %d added, %d updated, %d unchanged",
            tables.source,
            counts.added,
            counts.updated,
            counts.unchanged,
        )
        return counts

    def import_hashes(self, part: str, patient_ids: Sequence[str]) -> dict[str, str]:
        """Stored content hashes of one import part, by patient id (primary-key look-ups).

        Parameters
        ----------
        part : str
            One of :data:`IMPORT_PARTS`.
        patient_ids : sequence of str
            Stored patient ids to look up; ids without a hash are absent from the result.

        Returns
        -------
        dict of str to str
            ``patient_id -> sha256``.
        """
        if part not in IMPORT_PARTS:
            raise ValueError(f"Unknown import part {part!r}; use one of {list(IMPORT_PARTS)}.")
        ids = list(patient_ids)
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), WRITE_CHUNK):
                query = select(ImportHash.patient_id, ImportHash.sha256).where(
                    ImportHash.part == part,
                    ImportHash.patient_id.in_(ids[start : start + WRITE_CHUNK]),
                )
                found.update((str(pid), str(sha)) for pid, sha in conn.execute(query))
        return found

    @staticmethod
    def _rewrite_part(
        conn: Connection, part: str, pids: Sequence[str], tables: Sequence[tuple[Any, pd.DataFrame]]
    ) -> None:
        """Delete and re-insert the rows of one part for some patients."""
        for start in range(0, len(pids), WRITE_CHUNK):
            chunk = list(pids[start : start + WRITE_CHUNK])
            if part == "image":
                image_ids = select(Image.image_id).where(Image.patient_id.in_(chunk))
                conn.execute(delete(Embedding).where(Embedding.image_id.in_(image_ids)))
            for table, frame in tables:
                conn.execute(delete(table).where(table.patient_id.in_(chunk)))
                rows = frame[frame["patient_id"].isin(chunk)]
                if table is Demographics:
                    records = frame_rows(rows, ("patient_id", "age", "sex", "ethnicity", "site"))
                    # The split is part of the patient part: keep ``patients.split`` in step.
                    if len(rows):
                        conn.execute(
                            update(Patient)
                            .where(Patient.patient_id == bindparam("pid"))
                            .values(split=bindparam("new_split")),
                            [
                                {"pid": pid, "new_split": split}
                                for pid, split in zip(
                                    rows["patient_id"], rows["split"], strict=True
                                )
                            ],
                        )
                elif table is Outcome:
                    records = frame_rows(rows, OUTCOME_COLUMNS)
                elif table is Image:
                    records = frame_rows(rows, IMAGE_COLUMNS)
                else:
                    records = long_rows(rows, as_int=table is GenomicValue)
                insert_chunks(conn, table, records)


def _upsert_features(conn: Connection, features: pd.DataFrame) -> None:
    """Insert new catalogue entries (appended in order); update the metadata of known ones."""
    existing = dict(conn.execute(select(Feature.name, Feature.position)).all())
    position = max(existing.values(), default=-1) + 1
    for row in frame_rows(features, FEATURE_COLUMNS):
        if row["name"] in existing:
            conn.execute(
                update(Feature)
                .where(Feature.name == row["name"])
                .values({k: v for k, v in row.items() if k != "name"})
            )
        else:
            conn.execute(insert(Feature).values(**row, position=position))
            position += 1


def _stored_outcome(conn: Connection, source: str) -> tuple[str, str, float | None] | None:
    row = conn.execute(
        select(
            OutcomeDefinition.name, OutcomeDefinition.description, OutcomeDefinition.horizon_years
        ).where(OutcomeDefinition.source == source)
    ).first()
    return None if row is None else (str(row[0]), str(row[1]), row[2])


def _write_outcome(conn: Connection, source: str, outcome: OutcomeSpec) -> None:
    conn.execute(delete(OutcomeDefinition).where(OutcomeDefinition.source == source))
    conn.execute(
        insert(OutcomeDefinition).values(
            source=source,
            name=outcome.name,
            description=outcome.description,
            horizon_years=outcome.horizon_years,
        )
    )
