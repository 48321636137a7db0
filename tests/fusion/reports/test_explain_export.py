"""``riskfusion explain PATIENT_ID --out DIR`` on the tiny real demo: the documented files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data.vocabulary import MODALITIES
from fusion.cli import main


def test_explain_writes_the_documented_files(home_env, tiny_service, tmp_path) -> None:
    pid = str(tiny_service.search_patients(split="test", limit=1)["patient_id"].iloc[0])
    out = tmp_path / "explained"
    assert main(["explain", pid, "--out", str(out)]) == 0
    document = json.loads((out / "explanation.json").read_text())
    assert document["patient_id"] == pid
    assert document["model_version"] == tiny_service.model_info().version
    assert document["risk"] == pytest.approx(tiny_service.predict(pid).risk, abs=1e-12)
    shap_sum = sum(feature["shap"] for feature in document["features"])
    assert document["base_value"] + shap_sum == pytest.approx(document["margin"], abs=1e-6)
    assert 1 / (1 + np.exp(-document["margin"])) == pytest.approx(document["risk"], abs=1e-9)
    assert {f["modality"] for f in document["features"]} <= set(MODALITIES)
    # The modalities the risk uses: the modality-value rule may drop some (they move nothing).
    unused = set(tiny_service.models.unused_modalities)
    assert set(document["modality_sums"]) == set(MODALITIES) - unused
    assert len(document["features"]) == sum(
        modality not in unused for modality in tiny_service.features.modalities
    )
    for method in ("gradcam", "gradcampp", "occlusion"):
        heat = np.load(out / f"{method}.npy", allow_pickle=False)
        assert document["maps"][method] == f"{method}.npy"
        assert heat.shape == (32, 32)
        assert heat.dtype == np.float32
        assert 0.0 <= heat.min() <= heat.max() <= 1.0
    mask = np.load(out / "lesion_mask.npy", allow_pickle=False)
    assert mask.shape == (32, 32)
    assert set(np.unique(mask)) <= {0, 1}
    assert document["lesion_mask"] == "lesion_mask.npy"
    interval = tiny_service.risk_interval(pid)
    assert document["risk_interval"]["low"] == pytest.approx(interval.low, abs=1e-12)
    assert document["risk_interval"]["high"] == pytest.approx(interval.high, abs=1e-12)
    assert document["risk_interval"]["method"] == "cross_conformal_logit"
    assert document["risk_interval"]["target"] == "true_risk"
    assert document["risk_interval"]["claim"] == interval.describe()
    assert document["shap_source"] == "store"


def test_explain_an_unknown_patient_fails_with_status_2(home_env, tmp_path, caplog) -> None:
    assert main(["explain", "NOPE", "--out", str(tmp_path / "x")]) == 2
    assert "NOPE" in caplog.text
