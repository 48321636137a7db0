"""Headless patient explanation: what ``riskfusion explain PATIENT_ID --out DIR`` writes.

Owns the file format documented in ``docs/cli.md``: ``explanation.json`` (risk, base value,
margin, per-feature SHAP values with their modality, per-modality sums, model versions) and the
image maps as ``.npy`` arrays (scan resolution, float32 in [0, 1]), plus ``lesion_mask.npy`` on
synthetic cohorts. Arrays are written without pickle. Must not import streamlit.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from data.errors import CohortError
from fusion.records import MAP_METHODS
from fusion.service.cohort_words import cohort_words
from fusion.service.facade import RiskService

__all__ = ["EXPLANATION_FILE", "FORMAT_VERSION", "write_explanation"]

EXPLANATION_FILE: Final = "explanation.json"
FORMAT_VERSION: Final = 1


def _write_npy(path: Path, array: npt.NDArray[Any]) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    path.write_bytes(buffer.getvalue())


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def write_explanation(service: RiskService, patient_id: str, out_dir: Path) -> list[Path]:
    """Write one patient's explanation files into ``out_dir`` (created if needed).

    Parameters
    ----------
    service : RiskService
        The risk service over the active models.
    patient_id : str
        A stored patient.
    out_dir : Path
        Output folder; existing files of the same names are replaced.

    Returns
    -------
    list of Path
        The files written: ``explanation.json``, then ``<method>.npy`` per map (when the patient
        has a scan) and ``lesion_mask.npy`` (synthetic cohorts).

    Raises
    ------
    data.errors.PatientNotFoundError
        If the patient is not stored.
    """
    case = service.load_patient(patient_id)
    result = service.predict(case)
    explanation = service.explain(case)
    info = service.model_info()
    words = cohort_words(service)
    interval = service.risk_interval(case) if service.interval_calibration else None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    maps_written: dict[str, str] = {}
    lesion_file: str | None = None
    n_nets = 0
    for method in MAP_METHODS:
        try:
            maps = service.image_maps(case, method)
        except CohortError:  # no scan stored: the explanation is tabular only
            break
        path = out_dir / f"{method}.npy"
        _write_npy(path, maps.saliency.astype(np.float32))
        written.append(path)
        maps_written[method] = path.name
        n_nets = maps.n_nets
        if maps.lesion_mask is not None and lesion_file is None:
            lesion = out_dir / "lesion_mask.npy"
            _write_npy(lesion, maps.lesion_mask.astype(np.uint8))
            written.append(lesion)
            lesion_file = lesion.name
    table = explanation.contributions
    features = [
        {
            "feature": str(name),
            "label": str(label),
            "modality": str(modality),
            "unit": str(unit),
            "value": _number(float(value)),
            "shap": float(shap),
        }
        for name, label, modality, unit, value, shap in zip(
            table["feature"],
            table["label"],
            table["modality"],
            table["unit"],
            table["value"].to_numpy(dtype=np.float64),
            table["shap"].to_numpy(dtype=np.float64),
            strict=True,
        )
    ]
    document = {
        "format_version": FORMAT_VERSION,
        "patient_id": result.patient_id,
        "model_version": result.model_version,
        "imaging_version": info.imaging_version,
        "risk": result.risk,
        "threshold": result.threshold,
        "flagged": result.flagged,
        "base_value": explanation.base_value,
        "margin": explanation.margin,
        "shap_units": "log-odds",
        "features": features,
        "modalities": list(words.modalities),  # exactly the modalities the cohort has
        "modality_sums": dict(explanation.modality_totals),
        "maps": maps_written,
        "maps_n_nets": n_nets,
        "lesion_mask": lesion_file,
        "split": result.split,
        "label": result.label if result.split == "test" else None,
        "outcome": {
            "name": words.outcome.name,
            "description": words.outcome.description,
            "horizon_years": words.outcome.horizon_years,
        },
        "true_risk": result.true_risk,
        "shap_source": explanation.source,
        "risk_interval": None
        if interval is None
        else {
            "low": interval.low,
            "high": interval.high,
            "level": interval.level,
            "method": interval.method,
            "target": interval.target,
            "claim": interval.describe(),
            "n_calibration": interval.n_calibration,
            "missing": list(interval.missing),
        },
        "risk_interval_reason": service.interval_reason if interval is None else "",
    }
    target = out_dir / EXPLANATION_FILE
    target.write_text(json.dumps(document, indent=2))
    return [target, *written]
