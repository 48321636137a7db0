"""RiskService trust use cases on the tiny demo: occlusion, what-if, trust, top features."""

from __future__ import annotations

import numpy as np
import pytest

from data.vocabulary import MODALITIES
from fusion.service.evidence import fused_scorer
from fusion.service.facade import RiskService
from models.transforms import normalize_scan


def _patient(service: RiskService, split: str = "test") -> str:
    return str(service.search_patients(split=split, limit=1)["patient_id"].iloc[0])


def test_fused_scorer_reproduces_the_patient_risk_from_the_scan(tiny_service) -> None:
    pid = _patient(tiny_service)
    case = tiny_service.load_patient(pid)
    record = case.record
    scorer = fused_scorer(tiny_service.models, case.X, [0, 1])  # a test patient: both nets score it
    raw = np.load(tiny_service.artifacts_dir / record.image.path, allow_pickle=False)
    risk = scorer.risk(normalize_scan(raw.astype(np.float32))[None])[0]
    assert risk == pytest.approx(tiny_service.predict(pid).risk, abs=1e-6)


def test_trust_measured_at_build_time_is_stored_with_the_model(tiny_service) -> None:
    trust = tiny_service.map_trust()
    assert trust is not None
    assert list(trust.summary.index) == ["gradcam", "gradcampp", "occlusion", "random", "centre"]
    assert trust.summary["pointing_game"].between(0, 1).all()
    assert trust.n_scans > 0
    assert (
        trust.n_additivity_rows == (tiny_service.search_patients(split="test", limit=500)).shape[0]
    )
    assert trust.shap_additivity_max_abs < 1e-6


def test_occlusion_map_of_a_patient(tiny_service) -> None:
    maps = tiny_service.image_maps(_patient(tiny_service), "occlusion")
    assert maps.method == "occlusion"
    assert maps.saliency.shape == (32, 32)
    assert 0.0 <= maps.saliency.min() <= maps.saliency.max() <= 1.0


def test_modality_what_if_sets_each_modality_missing(tiny_service) -> None:
    pid = _patient(tiny_service)
    table = tiny_service.modality_what_if(pid)
    assert table["scenario"].tolist() == [
        "all available",
        "without scan",
        "without genomics",
        "without EHR",
    ]
    assert table["risk"].iloc[0] == pytest.approx(tiny_service.predict(pid).risk, abs=1e-9)
    assert table["change"].iloc[0] == 0.0
    assert table["risk"].between(0, 1).all()
    assert np.allclose(table["change"], table["risk"] - table["risk"].iloc[0])


def test_top_features_per_modality_carry_values_and_units(tiny_service) -> None:
    pid = _patient(tiny_service)
    table = tiny_service.top_features(pid, per_modality=2)
    assert list(table.columns) == ["modality", "label", "value", "unit", "shap", "feature"]
    assert set(table["modality"]) <= set(MODALITIES)
    assert table.groupby("modality").size().max() <= 2
    for _, group in table.groupby("modality"):
        magnitudes = group["shap"].abs().to_numpy()
        assert np.all(magnitudes[:-1] >= magnitudes[1:])
    with pytest.raises(ValueError, match="per_modality=0"):
        tiny_service.top_features(pid, per_modality=0)
