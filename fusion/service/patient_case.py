"""One patient as a request sees it, loaded once: :class:`PatientCase` and :func:`load_case`.

A page or the command line loads the case with one query set (the patient's rows, the scan's
logits under the active imaging nets, the stored SHAP vector) and every use case in
:mod:`fusion.service.patient`, :mod:`fusion.service.image_evidence` and
:mod:`fusion.service.forecasting` computes from it, so no request goes back to the store for the
same patient and no value is read back out of an explanation. Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.errors import NotScoredError
from data.store import CohortStore, PatientRecord
from fusion.features import DERIVED_DEMOGRAPHICS, IMAGE_FEATURE, build_feature_matrix, image_scores

if TYPE_CHECKING:  # annotations only: the case is read without loading torch
    from fusion.service.loaded_models import LoadedModels

__all__ = ["PatientCase", "load_case", "model_inputs"]


@dataclass(frozen=True, slots=True)
class PatientCase:
    """Everything one request needs about one patient, read once from the store.

    Attributes
    ----------
    record : PatientRecord
        Everything stored about the patient.
    X : DataFrame of shape (1, n_features)
        The patient's model inputs (not recorded -> NaN, as in training).
    scan_logits : DataFrame or None
        The scan's logit under every active imaging net (``fold, in_training, logit``); None
        without a scan.
    stored_shap : tuple (float, ndarray of shape (n_features,)) or None
        Base value and SHAP vector stored for the model version (None if not stored).
    model_version : str
        The fusion version the case was loaded for.
    """

    record: PatientRecord
    X: pd.DataFrame
    scan_logits: pd.DataFrame | None
    stored_shap: tuple[float, npt.NDArray[np.float64]] | None
    model_version: str

    @property
    def patient_id(self) -> str:
        """The patient's id."""
        return self.record.patient_id

    @property
    def image_score(self) -> float | None:
        """The scan's score (fused input), None without a scan."""
        score = self.X[IMAGE_FEATURE].iloc[0]
        return None if pd.isna(score) else float(score)

    def recorded_values(self) -> dict[str, float]:
        """The recorded model inputs by name (NaN where not recorded), in model order."""
        return {str(name): float(value) for name, value in self.X.iloc[0].items()}


def _scan_logits(
    store: CohortStore, models: LoadedModels, record: PatientRecord
) -> pd.DataFrame | None:
    """The scan's logits under every active net (None without a scan).

    Raises
    ------
    data.errors.NotScoredError
        If some net has not embedded the scan yet (``riskfusion score`` has not reached the
        patient): a risk from the other nets, or without the scan, would be partial.
    """
    if record.image is None:
        return None
    rows = store.image_logits(record.image.image_id, models.imaging_record.version)
    if rows["fold"].nunique() < len(models.nets):
        raise NotScoredError(
            f"Patient {record.patient_id!r} has a scan that the active imaging model "
            f"{models.imaging_record.version} has not embedded yet, so no risk is shown; "
            "run `riskfusion score` (or Score on the Data page) and open the patient again."
        )
    return rows


def model_inputs(
    store: CohortStore, models: LoadedModels, record: PatientRecord
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The patient's model inputs, shape (1, n_features), and the scan's logits (one query).

    Raises
    ------
    data.errors.NotScoredError
        If the scan is not embedded by every active imaging net yet.
    """
    logits = _scan_logits(store, models, record)
    score: float | None = None
    if logits is not None:
        scores = image_scores(logits.assign(patient_id=record.patient_id), models.logit_scaling)
        score = float(scores.iloc[0]) if len(scores) else None
    row: dict[str, object] = {
        "patient_id": record.patient_id,
        "age": record.age,
        "sex": record.sex,
        IMAGE_FEATURE: score,
    }
    row.update(record.ehr)
    row.update(record.genomics)
    frame = pd.DataFrame([row])
    for name in models.features.names:  # not recorded -> missing, as in training
        if name not in frame.columns and name not in DERIVED_DEMOGRAPHICS:
            frame[name] = np.nan
    return build_feature_matrix(frame, models.features), logits


def load_case(store: CohortStore, models: LoadedModels, patient_id: str) -> PatientCase:
    """Load one patient for one request: record, model inputs, scan logits, stored SHAP.

    Raises
    ------
    data.errors.PatientNotFoundError
        If the patient is not in the store.
    data.errors.NotScoredError
        If the scan is not embedded by every active imaging net yet.
    """
    record = store.get_patient(patient_id)
    X, logits = model_inputs(store, models, record)
    return PatientCase(
        record=record,
        X=X,
        scan_logits=logits,
        stored_shap=store.get_explanation(models.version, record.patient_id),
        model_version=models.version,
    )
