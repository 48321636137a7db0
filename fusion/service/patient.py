"""One patient's risk, interval and explanations, computed from a loaded :class:`PatientCase`.

Owns the pure use cases of the patient pages: fused risk (:func:`predict`), the calibrated
interval (:func:`risk_interval`), exact TreeSHAP attributions (:func:`explain`,
:func:`explain_features`), modality and input what-ifs (:func:`explain_without`,
:func:`what_if`, :func:`modality_what_if`) and the largest contributions per modality
(:func:`top_features`). None of them reads the store. Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

from data.artifacts import REBUILD_HINT
from data.errors import ArtifactIntegrityError, CohortError
from data.vocabulary import MASKABLE_MODALITIES, MODALITIES, MaskableModality
from fusion import uncertainty
from fusion.explain import modality_sums, shap_values
from fusion.features import mask_modalities, modality_columns
from fusion.records import PatientExplanation, RiskResult, WhatIfResult
from fusion.service.loaded_models import LoadedModels
from fusion.service.patient_case import PatientCase
from fusion.training.modality_value import unused_note, value_table
from fusion.uncertainty import RiskInterval
from fusion.what_if import apply_overrides

__all__ = [
    "explain",
    "explain_features",
    "explain_without",
    "interval_of",
    "modality_what_if",
    "predict",
    "risk_interval",
    "top_features",
    "unused_modality_notes",
    "what_if",
    "without",
]


def predict(models: LoadedModels, case: PatientCase) -> RiskResult:
    """Fused risk of one patient under the active model, with the identity facts."""
    record = case.record
    return RiskResult(
        patient_id=record.patient_id,
        risk=float(models.model.predict_proba(case.X)[0, 1]),
        model_version=models.version,
        threshold=float(models.fusion_record.metrics.get("threshold", 0.5)),
        split=record.split,
        label=record.label,
        true_risk=record.true_risk,
        image_score=case.image_score,
        age=record.age,
        sex=record.sex,
        site=record.site,
        cohort=record.source or None,
    )


def _explanation_from(
    models: LoadedModels,
    X: pd.DataFrame,
    base_value: float,
    values: npt.NDArray[np.float64],
    *,
    source: Literal["live", "store"],
) -> PatientExplanation:
    """A :class:`PatientExplanation` from one row's SHAP values (model input order).

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If ``values`` does not have one entry per model input.
    """
    features = models.features
    if values.shape != (len(features.names),):
        raise ArtifactIntegrityError(
            f"Stored SHAP vector has shape {values.shape}; the model has "
            f"{len(features.names)} inputs; {REBUILD_HINT}."
        )
    contributions = pd.DataFrame(
        {
            "feature": list(features.names),
            "label": list(features.labels),
            "unit": list(features.units),
            "modality": list(features.modalities),
            "value": X.iloc[0].to_numpy(),
            "shap": values,
        }
    )
    order = np.argsort(-np.abs(values), kind="stable")
    # A modality the risk does not use (its SHAP values are exactly 0) gets no bar.
    used = [m for m in features.present_modalities if m not in models.unused_modalities]
    totals = modality_sums(values[np.newaxis, :], features.modalities, used)
    margin = float(base_value + values.sum())
    ranked = contributions.iloc[order]
    return PatientExplanation(
        risk=float(expit(margin)),
        base_value=float(base_value),
        margin=margin,
        contributions=ranked[ranked["modality"].isin(used)].reset_index(drop=True),
        modality_totals={str(k): float(v) for k, v in totals.iloc[0].items()},
        source=source,
    )


def explain_features(models: LoadedModels, X: pd.DataFrame) -> PatientExplanation:
    """Exact TreeSHAP attribution of one feature row, shape (1, n_features), computed now."""
    if len(X) != 1:
        raise ValueError(f"Got {len(X)} feature rows; pass exactly one (one patient).")
    result = shap_values(models.model, X, explainer=models.tree_explainer)
    values = np.asarray(result.values[0], dtype=np.float64)
    return _explanation_from(models, X, result.base_value, values, source="live")


def explain(models: LoadedModels, case: PatientCase) -> PatientExplanation:
    """Exact TreeSHAP attribution of the patient's fused risk.

    The case's stored SHAP vector when the version has one (``source == "store"``); computed
    live otherwise.
    """
    if case.stored_shap is None:
        return explain_features(models, case.X)
    base_value, values = case.stored_shap
    return _explanation_from(models, case.X, base_value, values, source="store")


def without(models: LoadedModels, X: pd.DataFrame, missing: Sequence[str]) -> pd.DataFrame:
    """``X`` with every input of the ``missing`` modalities set to missing.

    Raises
    ------
    ValueError
        If a modality is not one of :data:`fusion.records.MASKABLE_MODALITIES`.
    """
    unknown = sorted(set(missing) - set(MASKABLE_MODALITIES))
    if unknown:
        raise ValueError(
            f"Unknown what-if modalities {unknown}; choose from {list(MASKABLE_MODALITIES)}."
        )
    return mask_modalities(X, modality_columns(models.features), missing)


def interval_of(models: LoadedModels, X: pd.DataFrame) -> RiskInterval:
    """Calibrated interval of the fused risk of one feature row, shape (1, n_features).

    What it covers (``target``) and how is in :mod:`fusion.uncertainty`; modalities whose
    inputs are all missing in ``X`` select the calibration fitted without them.

    Raises
    ------
    data.errors.CohortError
        If the active version serves no interval; the message is the reason
        (``models.interval_reason``: too few patients to calibrate one, or none built).
    """
    if models.interval_calibration is None:
        raise CohortError(models.interval_reason)
    return uncertainty.risk_interval(models.interval_calibration, models.model, X)


def risk_interval(
    models: LoadedModels, case: PatientCase, missing: Sequence[MaskableModality] = ()
) -> RiskInterval:
    """Calibrated interval of the patient's fused risk (optionally without some modalities)."""
    return interval_of(models, without(models, case.X, missing))


def explain_without(
    models: LoadedModels, case: PatientCase, missing: Sequence[MaskableModality]
) -> PatientExplanation:
    """Live TreeSHAP attribution of the risk if the ``missing`` modalities were unavailable."""
    return explain_features(models, without(models, case.X, missing))


def what_if(
    models: LoadedModels, case: PatientCase, overrides: Mapping[str, float]
) -> WhatIfResult:
    """Risk and SHAP attribution before and after editing modifiable inputs.

    The edited row goes through the same model and explainer as :func:`explain_features`; the
    image score (the scan embedding) stays fixed.

    Parameters
    ----------
    models : LoadedModels
        The active models.
    case : PatientCase
        The loaded patient.
    overrides : mapping of str to float
        Edits of inputs in :data:`fusion.what_if.EDITABLE`, e.g. ``{"smoking": 0}``; an
        empty mapping gives ``after == before``.

    Returns
    -------
    WhatIfResult
        ``before`` and ``after`` explanations and the table of edited values.

    Raises
    ------
    ValueError
        If an override is unknown, not modifiable, not finite or out of range (see
        :func:`fusion.what_if.validate_overrides`).
    """
    X = case.X
    edited = apply_overrides(X, overrides)
    features = models.features
    names = [name for name in features.names if name in overrides]
    position = {name: i for i, name in enumerate(features.names)}
    changes = pd.DataFrame(
        {
            "feature": names,
            "label": [features.labels[position[n]] for n in names],
            "unit": [features.units[position[n]] for n in names],
            "before": [float(X[n].iloc[0]) for n in names],
            "after": [float(edited[n].iloc[0]) for n in names],
        }
    )
    return WhatIfResult(
        patient_id=case.patient_id,
        overrides={n: float(edited[n].iloc[0]) for n in names},
        before=explain_features(models, X),
        after=explain_features(models, edited),
        changes=changes,
    )


def modality_what_if(models: LoadedModels, case: PatientCase) -> pd.DataFrame:
    """Fused risk if one modality were not available (its inputs set to missing).

    LightGBM scores a missing input the way it learnt missing values in training, so this
    is the risk a clinician would see without that test.

    Returns
    -------
    DataFrame
        One row per scenario (``all available``, ``without scan``, ``without genomics``,
        ``without EHR``; only the modalities the model has inputs of): ``scenario, modality,
        risk, change`` (risk minus the full risk).
    """
    columns = modality_columns(models.features)
    present = models.features.present_modalities
    scenarios: list[tuple[str, str | None]] = [
        ("all available", None),
        *(
            (name, modality)
            for name, modality in (
                ("without scan", "imaging"),
                ("without genomics", "genomics"),
                ("without EHR", "ehr"),
            )
            if modality in present
        ),
    ]
    rows = [mask_modalities(case.X, columns, [m] if m else []) for _, m in scenarios]
    risks = models.model.predict_proba(pd.concat(rows))[:, 1]
    return pd.DataFrame(
        {
            "scenario": [name for name, _ in scenarios],
            "modality": [m or "" for _, m in scenarios],
            "risk": risks,
            "change": risks - risks[0],
        }
    )


def unused_modality_notes(models: LoadedModels, case: PatientCase) -> list[str]:
    """Plain sentences for each modality the patient has that the risk does not use.

    A modality is the patient's when at least one of its inputs is known; the sentence gives
    the gain measured in training (:mod:`fusion.training.modality_value`).
    """
    rows = value_table(models.fusion_record.metrics.get("modality_value")).to_dict("index")
    columns = modality_columns(models.features)
    return [
        unused_note(modality, {str(k): v for k, v in rows[modality].items()})
        for modality in models.unused_modalities
        if modality in rows and case.X.loc[:, list(columns[modality])].notna().any(axis=None)
    ]


def top_features(explanation: PatientExplanation, *, per_modality: int = 3) -> pd.DataFrame:
    """The largest SHAP contributions within each modality, with the patient's values.

    Returns
    -------
    DataFrame
        ``modality, label, value, unit, shap, feature``; at most ``per_modality`` rows per
        modality, modalities in :data:`fusion.features.MODALITIES` order, each sorted by
        ``|shap|`` descending.

    Raises
    ------
    ValueError
        If ``per_modality`` is below 1.
    """
    if per_modality < 1:
        raise ValueError(f"per_modality={per_modality}; pass an integer >= 1.")
    contributions = explanation.contributions  # sorted by |shap|
    parts = [contributions[contributions["modality"] == m].head(per_modality) for m in MODALITIES]
    columns = ["modality", "label", "value", "unit", "shap", "feature"]
    return pd.concat(parts).loc[:, columns].reset_index(drop=True)
