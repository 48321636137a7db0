"""Building the forecast model of a fusion version: fit, measure, save, register.

Owns the build stage that fits the served S-learner and the compared T-learner on the training
split, measures them on the test split (:mod:`fusion.forecast.proof`), saves the served model
and registers it in the store as ``<fusion version>-forecast``. Must not import streamlit or
the dashboard.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.store import CohortStore
from data.vocabulary import TREATMENTS
from fusion.forecast.hazard import HazardForecaster
from fusion.forecast.learners import ForecastMethod
from fusion.forecast.proof import (
    calibration_errors,
    calibration_table,
    effect_metrics,
    effect_proof,
)
from fusion.forecast.survival import FloatArray, treatment_codes

__all__ = ["BUILD_METHODS", "FORECAST_KIND", "FORECAST_SUFFIX", "build_forecast"]

logger = logging.getLogger(__name__)

FORECAST_KIND: Final[str] = "forecast"
"""Registry kind of forecast models."""
FORECAST_SUFFIX: Final[str] = "-forecast"
"""Registry version of the forecast model of fusion version ``v``: ``v + FORECAST_SUFFIX``."""
BUILD_METHODS: Final[tuple[ForecastMethod, ...]] = ("s_learner", "t_learner")
"""Methods the build fits: the served S-learner and the compared T-learner."""


def _jsonable(value: Any) -> Any:
    """NaN -> None recursively (PostgreSQL's JSON type rejects NaN)."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def build_forecast(
    store: CohortStore,
    fusion_version: str,
    X: pd.DataFrame,
    outcomes: pd.DataFrame,
    truth: pd.DataFrame | None,
    folder: Path,
    artifacts_dir: Path,
    *,
    n_bootstrap: int = 12,
    build: Mapping[str, Any] | None = None,
    random_state: int = 0,
    anchor_risk: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, save and register the forecast model of one fusion version.

    Fits the S-learner (persisted, served) and the T-learner (compared only) on the training
    split with early stopping on the validation split, then measures on the test split the
    effect recovery (:func:`effect_proof`, synthetic truth only) and the calibration of the
    horizon risk under the received treatment (:func:`calibration_table`). With
    ``anchor_risk`` the served estimate is measured as it is served: anchored to the fused
    risk (:meth:`HazardForecaster.predict_anchored`, method ``s_learner``), with the
    unanchored hazard model as ``s_learner_unanchored``.

    Parameters
    ----------
    store : CohortStore
        Where the model is registered as ``<fusion_version>-forecast`` (kind ``forecast``).
    fusion_version : str
        The fusion model version this forecast belongs to.
    X : DataFrame of shape (n_patients, n_features)
        Fused inputs of every patient, indexed by ``patient_id``.
    outcomes : DataFrame of shape (n_patients, ...)
        Row-aligned with ``X``: ``split, treatment, event_time, event``.
    truth : DataFrame, optional
        Synthetic ground truth: ``patient_id`` and ``true_risk_<treatment>`` per treatment.
    folder : Path
        Output folder of the model files.
    artifacts_dir : Path
        The artifacts root (the registered path is relative to it).
    n_bootstrap : int, default=12
        Bootstrap members of each model.
    build : mapping, optional
        Build identity, stored with the model.
    random_state : int, default=0
        Seed.
    anchor_risk : array-like of shape (n_patients,), optional
        The fused model's risk of every row of ``X`` (what the served curves are anchored to).

    Returns
    -------
    dict
        The registered metrics (JSON-safe): ``anchored`` (bool), ``effects`` (rows of
        :func:`effect_metrics`),
        ``calibration`` (rows of :func:`calibration_table`), ``ece_true``, ``ece_km``,
        ``fit_seconds`` per method, ``n_train``, ``n_test``.
    """
    split = outcomes["split"].to_numpy().astype(str)
    masks = {name: split == name for name in ("train", "val", "test")}

    def part(name: str) -> tuple[pd.DataFrame, FloatArray, FloatArray, npt.NDArray[Any]]:
        rows = masks[name]
        return (
            X.loc[rows],
            outcomes.loc[rows, "event_time"].to_numpy(np.float64),
            outcomes.loc[rows, "event"].to_numpy(np.float64),
            outcomes.loc[rows, "treatment"].to_numpy().astype(str),
        )

    train, val, test = part("train"), part("val"), part("test")
    models: dict[str, HazardForecaster] = {}
    seconds: dict[str, float] = {}
    for method in BUILD_METHODS:
        start = time.perf_counter()
        try:
            models[method] = HazardForecaster(
                method=method, n_bootstrap=n_bootstrap, random_state=random_state
            ).fit(*train, validation=val)
        except ValueError as err:
            if method == "s_learner":
                raise
            # Small cohorts: an arm without events cannot have its own model; compare without.
            warnings.warn(f"Forecast alternative {method!r} skipped: {err}", stacklevel=2)
            continue
        seconds[method] = round(time.perf_counter() - start, 2)
    main = models["s_learner"]

    X_test, time_test, event_test, treatment_test = test
    anchored: FloatArray | None = None
    if anchor_risk is None:
        risk_test = main.predict_risk(X_test)
    else:
        fused = np.asarray(anchor_risk, dtype=np.float64)
        if fused.shape != (len(X),):
            raise ValueError(
                f"anchor_risk has shape {fused.shape}; pass the fused risk of every row of X, "
                f"shape ({len(X)},)."
            )
        anchored = main.predict_anchored(X_test, treatment_test, fused[masks["test"]])[0]
        risk_test = np.asarray(anchored[:, :, -1], dtype=np.float64)
    received = risk_test[np.arange(len(X_test)), treatment_codes(treatment_test)]
    true_received: FloatArray | None = None
    effects: list[dict[Any, Any]] = []
    if truth is not None:
        columns = [f"true_risk_{t}" for t in TREATMENTS]
        true_test = truth.set_index("patient_id").loc[X_test.index, columns].to_numpy(np.float64)
        true_received = true_test[np.arange(len(X_test)), treatment_codes(treatment_test)]
        proof = effect_proof(
            models,
            X_test,
            true_test,
            train_time=train[1],
            train_event=train[2],
            train_treatment=train[3],
        )
        if anchored is not None:
            proof["method"] = proof["method"].replace("s_learner", "s_learner_unanchored")
            served = pd.DataFrame(effect_metrics(risk_test, true_test, method="s_learner"))
            proof = pd.concat([served, proof], ignore_index=True)
        effects = proof.to_dict("records")
    table = calibration_table(received, time_test, event_test, true_risk=true_received)
    metrics = _jsonable(
        {
            "method": main.describe(),
            "alternative": (models["t_learner"].describe() if "t_learner" in models else None),
            "horizon": main.horizon,
            "anchored": anchored is not None,
            "effects": effects,
            "calibration": table.to_dict("records"),
            **calibration_errors(table),
            "fit_seconds": seconds,
            "n_train": int(masks["train"].sum()),
            "n_test": int(masks["test"].sum()),
        }
    )
    sha = main.save(folder)
    store.register_artifact(
        f"{fusion_version}{FORECAST_SUFFIX}",
        FORECAST_KIND,
        str(folder.relative_to(artifacts_dir)),
        sha,
        metrics=metrics,
        params=_jsonable(
            {"build": dict(build or {}), **main.get_params(), "n_rounds": main.n_rounds_}
        ),
        parent_version=fusion_version,
    )
    logger.info(
        "forecast: %s fitted in %.1f s (alternative %s s); test ECE vs truth %s",
        main.describe(),
        seconds["s_learner"],
        seconds.get("t_learner"),
        metrics["ece_true"],
    )
    return dict(metrics)
