"""``riskfusion score``: risk, TreeSHAP and missing embeddings for every unscored patient.

Streams the patients the active fusion version has not scored in chunks, one transaction per
chunk, so an interrupted run resumes where it stopped with the values of an uninterrupted one,
then refreshes what is computed from the stored scores (the similar-patient index and its
stored count). Must not import streamlit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.store import AuditEntry, CohortStore
from fusion.explain import shap_values
from fusion.features import build_feature_matrix, image_scores
from fusion.service.cohort_views import precompute
from fusion.service.facade import RiskService
from fusion.settings import DEFAULT_MIN_CELL
from fusion.training.embeddings import SCAN_CHUNK, concat_batches, embed_chunk, load_scans
from fusion.training.serving_artifacts import refresh_similarity_index
from fusion.training.stages import SCORE_STAGES, Stages

__all__ = ["SCORE_CHUNK", "score_cohort"]

logger = logging.getLogger(__name__)

SCORE_CHUNK = 5_000
"""Patients scored per chunk (per transaction)."""


def complete_logits(logits: pd.DataFrame, n_nets: int) -> pd.DataFrame:
    """The rows of images that have the logit of every one of the ``n_nets`` fold nets."""
    folds = logits.groupby("image_id")["fold"].nunique()
    complete = folds.index[folds == n_nets]
    return logits.loc[logits["image_id"].isin(complete)]


def score_cohort(
    store: CohortStore,
    artifacts_dir: Path,
    *,
    stages: Stages | None = None,
    chunk_size: int = SCORE_CHUNK,
    audit: AuditEntry | None = None,
    min_cell: int = DEFAULT_MIN_CELL,
) -> dict[str, Any]:
    """Score every patient the active fusion version has not scored yet (new or updated).

    Streams the unscored patients in chunks. For each chunk it embeds, with every active
    imaging net, the scans that lack the embedding of any net (no net trained on them; a
    partial set left by an older version of this job is replaced), computes risk and TreeSHAP,
    and stores embeddings, risks, SHAP values and the audit event in one transaction. A patient
    therefore has all of them or none, readers never see a partial result, and an interrupted
    run resumes at the first unfinished chunk with exactly the chunks, and so exactly the
    values, of an uninterrupted run. Then the similar-patient index is rebuilt from the stored
    explanations when a scoring batch is newer than it
    (:func:`~fusion.training.serving_artifacts.refresh_similarity_index`).

    Parameters
    ----------
    store : CohortStore
        The store with an active fusion model.
    artifacts_dir : Path
        Root of the scan and model files.
    stages : Stages, optional
        Stage logger (one stage: ``score``).
    chunk_size : int, default=5000
        Patients per chunk (per transaction).
    audit : AuditEntry, optional
        A ``score`` event written with each chunk, in its transaction (detail: patients).
    min_cell : int, default=DEFAULT_MIN_CELL
        The configured suppression floor: the cohort views are stored at it.

    Returns
    -------
    dict
        ``model_version``, ``scored``, ``embedded`` (scans embedded), ``index_reference``
        (reference patients of the refreshed similar-patient index; None: not refreshed),
        ``cohort_views`` (cohort-page views stored under the new data stamp) and ``seconds``.

    Raises
    ------
    data.errors.StoreNotBuiltError
        If no model is active (train first).
    """
    stages = stages or Stages(SCORE_STAGES, logger.info)
    store.create_schema()  # a store made before scoring batches were recorded gains the table
    service = RiskService(store, artifacts_dir)
    info = service.model_info()
    version = info.version
    imaging = store.active_model("imaging")
    scaling = imaging.params["logit_scaling"]
    n_nets = len(service.nets)
    start = time.perf_counter()
    embedded = scored = 0
    detail = f"embeddings ({imaging.version}), risk and TreeSHAP under {version}"
    with stages.stage("score", detail):
        for ids in store.iter_unscored_ids(version, chunk_size=chunk_size):
            logits = complete_logits(store.patient_logits(imaging.version, ids), n_nets)
            rows = store.image_rows(ids)
            rows = rows[~rows["image_id"].isin(logits["image_id"])].reset_index(drop=True)
            batches = [
                embed_chunk(
                    imaging.version,
                    service.nets,
                    chunk,
                    load_scans(artifacts_dir, chunk["path"]),
                    np.full(len(chunk), -1, dtype=np.int64),
                )
                for chunk in (
                    rows.iloc[begin : begin + SCAN_CHUNK]
                    for begin in range(0, len(rows), SCAN_CHUNK)
                )
            ]
            batch = concat_batches(imaging.version, batches)
            new = pd.DataFrame(
                {
                    "image_id": batch.image_ids,
                    "fold": batch.folds,
                    "in_training": batch.in_training,
                    "logit": batch.logits,
                }
            ).merge(rows[["image_id", "patient_id"]], on="image_id")
            frame = store.patient_frame(ids)
            scores = image_scores(pd.concat([logits, new], ignore_index=True), scaling)
            X = build_feature_matrix(frame.join(scores, on="patient_id"), service.features)
            risk = service.model.predict_proba(X)[:, 1]
            result = shap_values(service.model, X)
            store.write_scored(
                version,
                X.index.tolist(),
                risk,
                result.base_value,
                result.values,
                audit=None
                if audit is None
                else replace(
                    audit, model_version=version, detail={**audit.detail, "patients": len(X)}
                ),
                embeddings=batch,
            )
            scored += len(X)
            embedded += len(rows)
        # Newly scored patients become similar patients (also after an interrupted run).
        index = refresh_similarity_index(store, version, artifacts_dir)
        # The cohort pages' views under the new stamp, stored once (fusion.service.cohort_views).
        views = precompute(RiskService(store, artifacts_dir, min_cell=min_cell).cohort)
    stages.report(f"      scored {scored} patients ({embedded} scans embedded)")
    return {
        "model_version": version,
        "scored": scored,
        "embedded": embedded,
        "index_reference": None if index is None else index["n_reference"],
        "cohort_views": views["views"],
        "seconds": round(time.perf_counter() - start, 2),
    }
