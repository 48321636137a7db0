"""Build-time artifacts of the patient explorer, made once per fusion model version.

Owns two batch jobs the demo build runs after the fusion model is fitted and before it is
activated:

- :func:`build_interval`: the risk interval's calibration, out of fold on train + validation
  (JSON with its SHA-256), with its width and coverage on the test split; registered as
  ``<fusion version>-interval`` (kind ``interval``), its metrics named in
  :func:`build_interval` (a bench reads them from the registry).
- :func:`store_explanations`: exact TreeSHAP of every patient, streamed in chunks into the
  store keyed by (model version, patient id), the additivity check over every chunk, and the
  similar-patient index (SHAP vectors of a capped reference set); registered as
  ``<fusion version>-explanations`` (kind ``explanations``).
- :func:`refresh_similarity_index`: after ``riskfusion score``, the index and the stored count
  rebuilt from every stored explanation of the version, registered as
  ``<fusion version>-explanations-<scoring batch>`` (the newest one of kind ``explanations``
  is the one served: :meth:`data.store.CohortStore.artifact_of`).

Must not import streamlit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.store import CohortStore
from data.vocabulary import MASKABLE_MODALITIES
from fusion.explain import make_explainer, shap_values
from fusion.explanations.similar import MAX_REFERENCE, SimilarityIndex, choose_reference, save_index
from fusion.features import FeatureSet
from fusion.interval_calibration import FORMAT_VERSION, save_calibration
from fusion.interval_folds import minimum_calibration
from fusion.model import FusionClassifier
from fusion.uncertainty import (
    METHODS,
    fit_interval_calibration,
    measure_interval,
)

__all__ = [
    "CALIBRATION_SPLIT",
    "EXPLAIN_CHUNK",
    "EXPLANATIONS_KIND",
    "EXPLANATIONS_SUFFIX",
    "INTERVAL_FILE",
    "INTERVAL_KIND",
    "INTERVAL_LEVEL",
    "INTERVAL_SUFFIX",
    "build_interval",
    "refresh_similarity_index",
    "store_explanations",
]

logger = logging.getLogger(__name__)

INTERVAL_SUFFIX = "-interval"
EXPLANATIONS_SUFFIX = "-explanations"
INTERVAL_KIND = "interval"
"""Registry kind of a fusion version's interval calibration (``parent_version``: that version)."""
EXPLANATIONS_KIND = "explanations"
"""Registry kind of a fusion version's similar-patient index (``parent_version``: that version)."""
INTERVAL_LEVEL = 0.9
INTERVAL_FILE = "calibration.json"
CALIBRATION_SPLIT = "train+val out-of-fold"
"""The ``calibration_split`` param and metric of an interval part."""
EXPLAIN_CHUNK = 5_000


def build_interval(
    store: CohortStore,
    fusion_version: str,
    model: FusionClassifier,
    X_train: pd.DataFrame,
    y_train: npt.ArrayLike,
    X_test: pd.DataFrame,
    true_risk_test: npt.ArrayLike | None,
    folder: Path,
    artifacts_dir: Path,
    *,
    X_val: pd.DataFrame,
    y_val: npt.ArrayLike,
    true_risk_val: npt.ArrayLike | None = None,
    true_risk_train: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    level: float = INTERVAL_LEVEL,
    random_state: int = 0,
) -> dict[str, Any]:
    """Calibrate, save and register the risk interval out of fold on train + validation.

    See :mod:`fusion.uncertainty`: the fusion model is refitted in folds inside train +
    validation and every patient is scored by the refit that never saw it. With the true risk
    of both splits (synthetic cohorts) the interval covers the patient's true risk
    (cross-conformal, logit scale); without it, the event rate among patients with the same
    predicted risk (exact binomial interval of the nearest patients' outcomes). Both are
    measured on the test split. Too few patients for ``level``: no interval, and the registered
    metrics say why (``available`` false, ``reason``).

    Parameters
    ----------
    store : CohortStore
        Where the interval is registered.
    fusion_version : str
        The fusion model it belongs to (``parent_version``).
    model : FusionClassifier
        The fitted fusion model.
    X_train, y_train
        The fusion model's training split (calibration patients, scored out of fold).
    X_test : DataFrame
        Test inputs, for the coverage check.
    true_risk_test : array-like of shape (n_test,) or None
        Synthetic ground truth (None or any NaN: coverage is not measured).
    folder : Path
        Where ``calibration.json`` goes (created).
    artifacts_dir : Path
        Root the registered path is relative to.
    X_val : DataFrame
        Validation inputs (calibration patients too).
    y_val : array-like of shape (n_val,)
        Validation outcomes.
    true_risk_val, true_risk_train : array-like, optional
        True risk of the validation and training patients (synthetic cohorts): with both the
        ``"true_risk"`` target is served.
    y_test : array-like of shape (n_test,), optional
        Test outcomes, for the check of the outcome rate against the mean bounds.
    level : float, default=0.9
    random_state : int, default=0

    Returns
    -------
    dict
        The registered metrics: ``available, reason, method, target, level, n_calibration,
        calibration_split, folds, min_calibration, n_train, n_val, n_test, seconds``; when
        available also ``test_mean_width, test_strict_share``, with test outcomes
        ``test_outcome_rate, test_mean_low, test_mean_high``, with ground truth
        ``test_coverage_true_risk, test_coverage_event_rate, test_mean_abs_error_true_risk``
        (all of the served target with every modality present) and ``by_missing`` (both
        targets for every set of missing modalities).
    """
    start = time.perf_counter()
    X_cal = pd.concat([X_train, X_val])
    y_cal = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    truth = (
        None
        if true_risk_train is None or true_risk_val is None
        else np.concatenate([np.asarray(true_risk_train), np.asarray(true_risk_val)])
    )
    calibration = fit_interval_calibration(
        model,
        X_cal,
        y_cal,
        truth,
        modality_columns=_modality_columns(store, model),
        level=level,
        random_state=random_state,
    )
    path = folder / INTERVAL_FILE
    sha = save_calibration(calibration, path)
    metrics: dict[str, Any] = {
        "available": calibration.available,
        "reason": calibration.reason,
        "method": METHODS[calibration.target],
        "target": calibration.target,
        "level": level,
        "n_calibration": calibration.n_calibration,
        "calibration_split": CALIBRATION_SPLIT,
        "folds": calibration.folds,
        "min_calibration": minimum_calibration(level),
        "n_train": len(X_train),
        "n_val": len(X_val),
        "n_test": len(X_test),
    }
    if calibration.available:
        by_missing = measure_interval(calibration, model, X_test, true_risk_test, y_test)
        served = by_missing["none"][calibration.target]
        metrics.update({f"test_{name}": value for name, value in served.items()})
        metrics["by_missing"] = by_missing
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    store.register_artifact(  # activated with the whole version, once it is complete
        f"{fusion_version}{INTERVAL_SUFFIX}",
        INTERVAL_KIND,
        str(path.relative_to(artifacts_dir)),
        sha,
        metrics=metrics,
        params={
            "method": metrics["method"],
            "target": calibration.target,
            "level": level,
            "calibration_split": CALIBRATION_SPLIT,
            "format_version": FORMAT_VERSION,
        },
        parent_version=fusion_version,
    )
    logger.info(
        "interval (%s, target %s) calibrated out of fold on %d patients in %.1f s; %s",
        metrics["method"],
        calibration.target,
        calibration.n_calibration,
        metrics["seconds"],
        calibration.reason
        or (
            f"test coverage of the true risk {metrics.get('test_coverage_true_risk', 'n/a')}, "
            f"mean width {metrics['test_mean_width']:.3f}"
        ),
    )
    return metrics


def _modality_columns(store: CohortStore, model: FusionClassifier) -> dict[str, tuple[str, ...]]:
    """Model inputs of each maskable modality, from the store's feature catalogue."""
    features = FeatureSet.from_catalog(store.feature_catalog())
    modality_of = dict(zip(features.names, features.modalities, strict=True))
    inputs = [str(name) for name in model.feature_names_in_]
    return {
        modality: tuple(name for name in inputs if modality_of.get(name) == modality)
        for modality in MASKABLE_MODALITIES
    }


def _explainer_name(explainer: object) -> str:
    """How the stored SHAP values were computed, for the registry params."""
    if type(explainer).__name__ == "LinearExplainer":
        return "shap.LinearExplainer (exact, independent standardised inputs)"
    return "shap.TreeExplainer (tree_path_dependent)"


def store_explanations(
    store: CohortStore,
    fusion_version: str,
    model: FusionClassifier,
    X: pd.DataFrame,
    splits: npt.ArrayLike,
    index_path: Path,
    artifacts_dir: Path,
    *,
    chunk_size: int = EXPLAIN_CHUNK,
    max_reference: int = MAX_REFERENCE,
    random_state: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """TreeSHAP of every row of ``X`` into the store, in chunks, plus the similar-patient index.

    Parameters
    ----------
    store : CohortStore
        Receives the rows (one transaction per chunk).
    fusion_version : str
        A registered fusion version (the key of the stored rows).
    model : FusionClassifier
        That version's model.
    X : DataFrame of shape (n_patients, n_features)
        Inputs indexed by ``patient_id``.
    splits : array-like of shape (n_patients,)
        Each row's split (the reference set takes ``train`` and ``test`` rows).
    index_path : Path
        Where the similar-patient index is written.
    artifacts_dir : Path
        Root the registered path is relative to.
    chunk_size : int, default=5000
    max_reference : int, default=50000
        Cap of the reference set (seeded draw above it).
    random_state : int, default=0
    progress : callable, optional
        Called with the number of rows done after each chunk.

    Returns
    -------
    dict
        ``n_stored, n_reference, additivity_max_abs, additivity_max_abs_test, scoring_batch``
        (the version's last scoring batch the index covers) and ``seconds``.
    """
    start = time.perf_counter()
    split_values = np.asarray(splits).astype(str)
    ids = X.index.astype(str).to_numpy()
    reference = choose_reference(
        list(ids), list(split_values), max_reference=max_reference, random_state=random_state
    )
    explainer = make_explainer(model)
    vectors: list[npt.NDArray[np.float32]] = []
    worst, worst_test = 0.0, 0.0
    for begin in range(0, len(X), chunk_size):
        chunk = X.iloc[begin : begin + chunk_size]
        result = shap_values(model, chunk, explainer=explainer)
        error = np.abs(result.margin() - model.decision_function(chunk))
        is_test = split_values[begin : begin + chunk_size] == "test"
        worst = max(worst, float(error.max(initial=0.0)))
        worst_test = max(worst_test, float(error[is_test].max(initial=0.0)))
        store.write_explanations(
            fusion_version,
            list(ids[begin : begin + chunk_size]),
            np.full(len(chunk), result.base_value),
            result.values,
        )
        vectors.append(result.values[reference[begin : begin + chunk_size]].astype(np.float32))
        if progress is not None:
            progress(len(chunk))
    index = SimilarityIndex(
        patient_ids=ids[reference].astype(np.str_),
        vectors=np.concatenate(vectors) if vectors else np.empty((0, X.shape[1]), np.float32),
    )
    sha = save_index(index, index_path)
    seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {
        "n_stored": len(X),
        "n_reference": int(reference.sum()),
        "reference_splits": ["train", "test"],
        "space": "shap",
        "additivity_max_abs": worst,
        "additivity_max_abs_test": worst_test,
        "scoring_batch": store.data_stamp(fusion_version).scoring_batch,
        "seconds": round(seconds, 2),
    }
    store.register_artifact(  # activated with the whole version, once it is complete
        f"{fusion_version}{EXPLANATIONS_SUFFIX}",
        EXPLANATIONS_KIND,
        str(index_path.relative_to(artifacts_dir)),
        sha,
        metrics=metrics,
        params={"explainer": _explainer_name(explainer), "chunk": chunk_size},
        parent_version=fusion_version,
    )
    logger.info(
        "explanations: %d patients stored in %.1f s (reference %d); SHAP additivity max abs "
        "error %.1e (test split %.1e)",
        len(X),
        seconds,
        metrics["n_reference"],
        worst,
        worst_test,
    )
    return metrics


def refresh_similarity_index(
    store: CohortStore,
    fusion_version: str,
    artifacts_dir: Path,
    *,
    max_reference: int = MAX_REFERENCE,
    random_state: int = 0,
) -> dict[str, Any] | None:
    """Rebuild the similar-patient index of a version from its stored explanations.

    ``riskfusion score`` stores the SHAP values of the patients it scores; this makes them
    eligible as similar patients and updates the stored count, choosing the reference set by
    the training-time rule (:func:`choose_reference` over the explained patients in id order).
    It reads the ids and splits of the explained patients, then only
    the reference rows' values. The index records the version's last scoring batch it covers;
    an index that covers the last one is left as it is (so an interrupted score that is run
    again still refreshes it). The new index is written beside the current one and registered
    (inactive, like the training-time artifact) as ``<version>-explanations-<batch>``.

    Returns
    -------
    dict or None
        The registered metrics (those of the current artifact, with ``n_stored``,
        ``n_reference``, ``scoring_batch`` and ``seconds`` of this refresh); None when nothing
        was to do (the index is up to date, or the version has none).
    """
    start = time.perf_counter()
    current = store.artifact_of(fusion_version, EXPLANATIONS_KIND)
    batch = store.data_stamp(fusion_version).scoring_batch
    if current is None or current.metrics.get("scoring_batch") == batch:
        return None
    explained = store.explained_patients(fusion_version)
    ids = explained["patient_id"].to_numpy().astype(np.str_)
    reference = choose_reference(
        list(ids), list(explained["split"]), max_reference=max_reference, random_state=random_state
    )
    values = store.explanation_values(fusion_version, list(ids[reference]))
    path = (artifacts_dir / current.artifact_path).parent / f"similar-{batch}.npz"
    index = SimilarityIndex(patient_ids=ids[reference], vectors=values.astype(np.float32))
    sha = save_index(index, path)
    metrics: dict[str, Any] = {
        **current.metrics,
        "n_stored": len(ids),
        "n_reference": int(reference.sum()),
        "scoring_batch": batch,
        "seconds": round(time.perf_counter() - start, 2),
    }
    store.register_artifact(
        f"{fusion_version}{EXPLANATIONS_SUFFIX}-{batch}",
        EXPLANATIONS_KIND,
        str(path.relative_to(artifacts_dir)),
        sha,
        metrics=metrics,
        params={**current.params, "refreshed_by": "score"},
        parent_version=fusion_version,
    )
    logger.info(
        "similar-patient index refreshed: %d patients stored, reference %d",
        len(ids),
        metrics["n_reference"],
    )
    return metrics
