"""Where and who: a loaded patient's image maps and similar patients.

Owns the saliency maps of a :class:`~fusion.service.patient_case.PatientCase` (Grad-CAM,
Grad-CAM++ or occlusion of the fused risk, averaged over the nets that never trained on the
patient and bounded to the scan's foreground), the fused scorer the occlusion map and the trust
check use, and the nearest reference patients in SHAP space. Reads scan files under the
artifacts directory and, for the neighbours only, their summaries from the store.
Neither streamlit nor the dashboard is imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import CohortError
from data.store import CohortStore, PatientRecord
from data.vocabulary import MaskableModality
from fusion.explain import shap_values
from fusion.explanations.map_measures import bound_to_foreground
from fusion.explanations.occlusion import FusedImageScorer, occlusion_map
from fusion.records import MAP_METHODS, ImageMaps, MapMethod
from fusion.service.loaded_models import LoadedModels
from fusion.service.patient import without
from fusion.service.patient_case import PatientCase
from models.foreground import foreground_mask
from models.transforms import normalize_scan

__all__ = ["fused_scorer", "has_lesion", "image_maps", "similar_patients"]

NO_INDEX_MESSAGE = (
    "The active model was built without a similar-patient index; retrain it "
    "(`riskfusion train`; the synthetic demo: `riskfusion demo --no-serve --rebuild`)."
)


def has_lesion(record: PatientRecord, artifacts_dir: Path) -> bool:
    """Whether the patient's true lesion mask (synthetic cohorts) has any lesion pixel."""
    if record.image is None or record.image.mask_path is None:
        return False
    path = artifacts_dir / record.image.mask_path
    return path.is_file() and bool(np.load(path, allow_pickle=False).any())


def fused_scorer(models: LoadedModels, X: pd.DataFrame, folds: Sequence[int]) -> FusedImageScorer:
    """The fused risk of the feature row ``X`` as a function of its scan (other inputs fixed)."""
    return FusedImageScorer.from_folds(
        models.model, X, list(models.nets), models.logit_scaling, [int(k) for k in folds]
    )


def image_maps(
    models: LoadedModels, case: PatientCase, artifacts_dir: Path, method: MapMethod = "gradcam"
) -> ImageMaps:
    """Scan and saliency map of one patient, averaged over the nets that scored it.

    Raises
    ------
    ValueError
        If ``method`` is unknown.
    data.errors.CohortError
        If the patient has no scan or its file is missing.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"Unknown map method {method!r}; choose one of {list(MAP_METHODS)}.")
    record = case.record
    if record.image is None or case.scan_logits is None:
        raise CohortError(f"Patient {record.patient_id!r} has no scan in the store.")
    path = artifacts_dir / record.image.path
    if not path.is_file():
        raise CohortError(
            f"Scan file {path} is missing; restore it (re-import the cohort; the synthetic demo: "
            "`riskfusion demo --no-serve --rebuild`)."
        )
    raw = np.load(path, allow_pickle=False).astype(np.float32)
    scan = normalize_scan(raw)
    rows = case.scan_logits
    folds = rows.loc[~rows["in_training"], "fold"].tolist() or list(range(len(models.nets)))
    if method == "occlusion":  # one map of the fused risk, through all scoring nets at once
        maps = [occlusion_map(fused_scorer(models, case.X, folds), scan).saliency]
    else:
        maps = [models.explainers[int(k)].compute(scan, method=method) for k in folds]
    # Positive evidence, scaled by its peak and bounded to the body (map_measures).
    saliency = bound_to_foreground(np.mean(maps, axis=0), foreground_mask(raw))
    lesion_mask = None
    if record.image.mask_path is not None and record.true_risk is not None:
        mask_file = artifacts_dir / record.image.mask_path
        if mask_file.is_file():
            lesion_mask = np.load(mask_file, allow_pickle=False).astype(np.uint8)
    low, high = float(raw.min()), float(raw.max())
    display = (raw - low) / (high - low) if high > low else np.zeros_like(raw)
    return ImageMaps(
        image=display.astype(np.float32),
        saliency=saliency.astype(np.float32),
        lesion_mask=lesion_mask,
        method=method,
        n_nets=len(folds),
    )


def similar_patients(
    store: CohortStore,
    models: LoadedModels,
    case: PatientCase,
    *,
    k: int = 5,
    missing: Sequence[MaskableModality] = (),
) -> pd.DataFrame:
    """The ``k`` nearest reference patients in SHAP space (:mod:`fusion.explanations.similar`).

    The query is the case's stored SHAP vector (or a live one for a what-if); only the ``k``
    neighbours are read from the store.

    Returns
    -------
    DataFrame
        ``patient_id, distance, split, age, sex, label, true_risk, risk``, nearest first.

    Raises
    ------
    data.errors.CohortError
        If the active version was built without the similar-patient index.
    """
    if models.similarity_index is None:
        raise CohortError(NO_INDEX_MESSAGE)
    if case.stored_shap is not None and not missing:
        vector = case.stored_shap[1]
    else:
        X = without(models, case.X, missing)
        vector = shap_values(models.model, X, explainer=models.tree_explainer).values[0]
    ids, distances = models.similarity_index.nearest(vector, k=k, exclude=[case.patient_id])
    summaries = store.patient_summaries(ids, models.version)
    frame = pd.DataFrame({"patient_id": ids, "distance": distances})
    return frame.merge(summaries, on="patient_id", how="inner")
