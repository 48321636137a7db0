"""Treatment forecasts of a loaded patient, their proof, and the guided demo's two patients.

Owns finding and loading (once, verified) the forecast model built with the active fusion
version, one patient's anchored forecast (:func:`forecast`), the build-time proof and
calibration tables read from the registry, and choosing the guided demo's patients (one batched
forecast). Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import StoreNotBuiltError
from data.store import CohortStore, ModelRecord
from data.vocabulary import TREATMENTS
from fusion.forecast.build import FORECAST_KIND
from fusion.forecast.hazard import HazardForecaster
from fusion.forecast.patient import PatientForecast, compare_options, make_patient_forecast
from fusion.forecast.survival import REFERENCE_TREATMENT
from fusion.service.evidence import has_lesion
from fusion.service.guided_demo import StoryPatient, choose_high_risk, choose_treatment_benefit
from fusion.service.loaded_models import LoadedModels
from fusion.service.patient import interval_of
from fusion.service.patient_case import PatientCase, model_inputs
from fusion.what_if import apply_overrides

__all__ = [
    "NO_FORECAST_MESSAGE",
    "ForecastLoader",
    "forecast",
    "forecast_calibration",
    "forecast_proof",
    "forecast_record",
    "guided_demo_patients",
    "no_forecast_message",
]

NO_FORECAST_MESSAGE = (
    "The active model was built without a treatment-forecast model; rebuild the "
    "demo (`riskfusion demo --no-serve --rebuild`)."
)


def no_forecast_message(store: CohortStore) -> str:
    """Why the active version has no forecast model: what the cohort lacks, or rebuild the demo.

    Only on the failure path: one aggregate query over the outcomes.
    """
    if store.has_ground_truth():
        return NO_FORECAST_MESSAGE
    counts = store.outcome_counts()
    n = counts["patients"]
    lacking = [
        f"{what} for {n - counts[key]} of {n} patients"
        for key, what in (
            ("event_time", "no event time"),
            ("event", "no event indicator"),
            ("treatment", f"no treatment from {list(TREATMENTS)}"),
        )
        if counts[key] < n
    ]
    outcome = store.outcome_spec()
    kind = "" if outcome.horizon_years else f" (the outcome '{outcome.name}' has no horizon)"
    if not lacking:
        return (
            "The active model was built without a treatment-forecast model; retrain it "
            "(`riskfusion train`): the outcomes now hold what a forecast needs."
        )
    return (
        f"No treatment forecast for this cohort{kind}: its outcomes have {'; '.join(lacking)}. "
        "A forecast needs event_time, event and a treatment for every patient "
        "(outcomes.csv, docs/import.md); add them, re-import and retrain."
    )


class ForecastLoader:
    """The active version's forecast model, verified and loaded on first use (thread-safe)."""

    def __init__(self) -> None:
        self._loaded: HazardForecaster | None = None
        self._lock = threading.Lock()

    def load(
        self, store: CohortStore, artifacts_dir: Path, fusion_version: str
    ) -> tuple[HazardForecaster, str]:
        """The forecast model built with ``fusion_version`` and its registry version.

        Raises
        ------
        data.errors.StoreNotBuiltError
            If the fusion version was built without a forecast model.
        data.errors.ArtifactIntegrityError
            If a model file is missing or differs from its registered SHA-256.
        """
        record = forecast_record(store, fusion_version)
        if record is None:
            raise StoreNotBuiltError(no_forecast_message(store))
        with self._lock:
            if self._loaded is None:
                self._loaded = HazardForecaster.load(
                    artifacts_dir / record.artifact_path, expected_sha256=record.sha256
                )
        return self._loaded, record.version


def forecast_record(store: CohortStore, fusion_version: str) -> ModelRecord | None:
    """The forecast model built with ``fusion_version`` (None if absent)."""
    return store.artifact_of(fusion_version, FORECAST_KIND)


def forecast(
    models: LoadedModels,
    forecaster: HazardForecaster,
    forecaster_version: str,
    case: PatientCase,
    overrides: Mapping[str, float] | None = None,
) -> PatientForecast:
    """Cumulative risk over time under each treatment option for one patient.

    A research and demonstration estimate (see :data:`fusion.forecast.patient.FORECAST_NOTE` and
    ``docs/forecast.md``): the model adjusts for the measured confounders only. The curves
    are anchored to the fused risk (or the what-if risk with ``overrides``): the curve under
    the treatment received reaches it at the horizon and the other options are the hazard
    model's treatment effects on top of it. The band is the fused risk's calibrated interval
    carried through the treatment effects, widened by their bootstrap spread.

    Parameters
    ----------
    models : LoadedModels
        The active models.
    forecaster : HazardForecaster
        The version's forecast model.
    forecaster_version : str
        Its registry version.
    case : PatientCase
        The loaded patient.
    overrides : mapping of str to float, optional
        What-if edits of modifiable inputs, validated by
        :func:`fusion.what_if.validate_overrides`. With edits the true curves are not
        shown (``true_risk`` NaN): the ground truth belongs to the recorded patient.

    Returns
    -------
    PatientForecast
        Curves from 0 to the horizon with their band, ARR / NNT against no treatment, the
        best option and whether it is distinguishable (``comparison``), the fused risk the
        curves are anchored to (``anchor_risk``) and (synthetic cohorts) the true curves.

    Raises
    ------
    ValueError
        If an override is unknown, not modifiable or out of range.
    """
    record = case.record
    X = apply_overrides(case.X, overrides) if overrides else case.X
    fused = float(models.model.predict_proba(X)[0, 1])
    interval = None if models.interval_calibration is None else interval_of(models, X)
    risk, lower, upper, members = forecaster.predict_anchored(
        X,
        [record.treatment],
        [fused],
        low=None if interval is None else [interval.low],
        high=None if interval is None else [interval.high],
    )
    band = (
        "band: the fused risk's interval carried through the treatment effects"
        if interval is not None
        else "band: bootstrap spread of the treatment effects only"
    )
    return make_patient_forecast(
        patient_id=record.patient_id,
        model_version=forecaster_version,
        method=f"{forecaster.describe()}; anchored to the fused risk under the treatment "
        f"received ({band})",
        times=forecaster.times_,
        risk=risk[0],
        lower=lower[0],
        upper=upper[0],
        true_risks=None if overrides else record.counterfactual_risks,
        received_treatment=record.treatment,
        comparison=compare_options(members[:, 0, :], band=forecaster.band),
        anchor_risk=fused,
    )


def forecast_proof(record: ModelRecord | None) -> pd.DataFrame | None:
    """Test-split effect recovery of the forecast methods and baselines (None if absent).

    Returns
    -------
    DataFrame or None
        One row per method and contrast: ``method, contrast, pehe, spearman,
        mean_effect, true_mean_effect`` (see :func:`fusion.forecast.proof.effect_metrics`);
        methods ``s_learner`` (served), ``t_learner``, ``treatment_agnostic`` and
        ``naive_unadjusted``. None without a forecast model or ground truth.
    """
    rows = [] if record is None else record.metrics.get("effects", [])
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    numeric = ["pehe", "spearman", "mean_effect", "true_mean_effect"]
    frame[numeric] = frame[numeric].astype(np.float64)
    return frame


def forecast_calibration(
    record: ModelRecord | None,
) -> tuple[pd.DataFrame, Mapping[str, float]] | None:
    """Calibration of the horizon risk under the received treatment (test split).

    Returns
    -------
    tuple (DataFrame, mapping) or None
        Deciles of predicted risk (``bin, n, predicted, observed_km, true_risk``) and the
        errors ``ece_true`` / ``ece_km``; None without a forecast model.
    """
    if record is None:
        return None
    table = pd.DataFrame(record.metrics["calibration"])
    numeric = ["predicted", "observed_km", "true_risk"]
    table[numeric] = table[numeric].astype(np.float64)
    errors = {
        key: float("nan") if record.metrics.get(key) is None else float(record.metrics[key])
        for key in ("ece_true", "ece_km")
    }
    return table, errors


def guided_demo_patients(
    store: CohortStore,
    models: LoadedModels,
    forecaster: HazardForecaster,
    artifacts_dir: Path,
    *,
    n_candidates: int = 20,
) -> tuple[StoryPatient, StoryPatient]:
    """The guided demo's two patients, chosen deterministically from the test split.

    Among the ``n_candidates`` highest-risk test patients (ties by id): first, the
    highest-risk one whose scan shows a lesion (see
    :func:`fusion.service.guided_demo.choose_high_risk`); second, another one whose best
    treatment has the largest model-estimated absolute risk reduction at the forecast horizon
    (see :func:`fusion.service.guided_demo.choose_treatment_benefit`). Costs one top-k query on
    the ``(model_version, risk)`` index, ``n_candidates`` patient look-ups and one batched
    forecast, whatever the cohort size.

    Raises
    ------
    ValueError
        If ``n_candidates < 1`` or the test split has no scored patients.
    """
    if n_candidates < 1:
        raise ValueError(f"n_candidates={n_candidates}; pass an integer >= 1.")
    top = store.top_risks(models.version, split="test", limit=n_candidates)
    if top.empty:
        raise ValueError("The test split has no scored patients; run `riskfusion score`.")
    records = [store.get_patient(str(pid)) for pid in top["patient_id"]]
    top["has_scan"] = [record.image is not None for record in records]
    top["has_lesion"] = [has_lesion(record, artifacts_dir) for record in records]
    first = choose_high_risk(top)
    X = pd.concat([model_inputs(store, models, record)[0] for record in records])
    # Anchored as served: the story shows the same curves as the forecast page.
    curves = forecaster.predict_anchored(
        X, [record.treatment for record in records], models.model.predict_proba(X)[:, 1]
    )[0]
    risk = curves[:, :, -1]
    reference = risk[:, TREATMENTS.index(REFERENCE_TREATMENT)]
    arr = reference - risk.min(axis=1)  # ARR of the best option (lowest risk) vs none
    second = choose_treatment_benefit(top.assign(arr=arr), exclude=first.patient_id)
    return first, second
