from __future__ import annotations

import shutil

import numpy as np
import pytest

from data.errors import ArtifactIntegrityError, CohortError, PatientNotFoundError
from data.store import CohortStore, make_engine
from data.vocabulary import MODALITIES
from fusion.service.facade import RiskService


def _patient(service: RiskService, split: str = "test") -> str:
    return str(service.search_patients(split=split, limit=1)["patient_id"].iloc[0])


def test_live_risk_equals_the_stored_prediction(tiny_service: RiskService) -> None:
    for split in ("train", "test"):
        pid = _patient(tiny_service, split)
        result = tiny_service.predict(pid)
        stored = tiny_service.store.get_prediction(pid, result.model_version)
        assert result.risk == pytest.approx(stored, abs=1e-9)
        assert result.split == split
        assert result.true_risk is not None


def test_explanation_is_additive_and_complete(tiny_service: RiskService) -> None:
    pid = _patient(tiny_service)
    explanation = tiny_service.explain(pid)
    contributions = explanation.contributions
    # Every input of the modalities the risk uses (the modality-value rule may drop some).
    used = [
        name
        for name, modality in zip(
            tiny_service.features.names, tiny_service.features.modalities, strict=True
        )
        if modality not in tiny_service.models.unused_modalities
    ]
    assert len(contributions) == len(used)
    margin = explanation.base_value + contributions["shap"].sum()
    assert margin == pytest.approx(explanation.margin, abs=1e-9)
    risk = 1 / (1 + np.exp(-margin))
    assert risk == pytest.approx(tiny_service.predict(pid).risk, abs=1e-6)
    assert set(explanation.modality_totals) == set(MODALITIES) - set(
        tiny_service.models.unused_modalities
    )
    assert sum(explanation.modality_totals.values()) == pytest.approx(contributions["shap"].sum())
    # Sorted by absolute contribution.
    magnitudes = contributions["shap"].abs().to_numpy()
    assert np.all(magnitudes[:-1] >= magnitudes[1:])


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "occlusion"])
def test_image_maps_have_the_scan_shape_and_unit_range(tiny_service, method) -> None:
    pid = _patient(tiny_service)
    maps = tiny_service.image_maps(pid, method)
    assert maps.image.shape == maps.saliency.shape == (32, 32)
    assert maps.saliency.min() >= 0.0
    assert maps.saliency.max() <= 1.0
    assert maps.image.min() >= 0.0
    assert maps.image.max() <= 1.0
    assert maps.lesion_mask is not None
    assert maps.lesion_mask.shape == (32, 32)
    assert maps.n_nets == 2  # a test patient: both fold nets scored it


def test_unknown_method_and_patient_are_clear_errors(tiny_service: RiskService) -> None:
    with pytest.raises(ValueError, match="Unknown map method 'lime'"):
        tiny_service.image_maps(_patient(tiny_service), "lime")  # type: ignore[arg-type]
    with pytest.raises(PatientNotFoundError, match="'NOPE'"):
        tiny_service.predict("NOPE")


def test_missing_scan_file_is_a_clear_error(tiny_demo, tmp_path) -> None:
    settings, _ = tiny_demo
    copy = tmp_path / "home"
    shutil.copytree(settings.artifacts_dir, copy)
    store = CohortStore(make_engine(f"sqlite:///{copy / 'riskfusion.db'}"))
    service = RiskService(store, copy)
    pid = str(service.search_patients(split="test", limit=1)["patient_id"].iloc[0])
    (copy / "scans" / f"{pid}.npy").unlink()
    with pytest.raises(CohortError, match=r"Scan file .* is missing"):
        service.image_maps(pid)


def test_tampered_fusion_model_is_refused_before_loading(tiny_demo, tmp_path) -> None:
    settings, _ = tiny_demo
    copy = tmp_path / "home"
    shutil.copytree(settings.artifacts_dir, copy)
    store = CohortStore(make_engine(f"sqlite:///{copy / 'riskfusion.db'}"))
    model_file = copy / store.active_model("fusion").artifact_path
    model_file.write_text(model_file.read_text()[:200])  # truncated
    with pytest.raises(ArtifactIntegrityError, match="does not match its registered SHA-256"):
        RiskService(store, copy)
