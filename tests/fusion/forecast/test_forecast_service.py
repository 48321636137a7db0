"""The forecast through the service and the CLI, on the session's tiny demo build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data.vocabulary import HORIZON_YEARS, TREATMENTS
from fusion.cli import main
from fusion.forecast.patient import FORECAST_NOTE
from fusion.reports.patient_report import case_report


def test_service_forecast_on_the_built_store(tiny_service) -> None:
    patient_id = tiny_service.search_patients(split="test", limit=1)["patient_id"].iloc[0]
    record = tiny_service.patient(patient_id)
    forecast = tiny_service.forecast(patient_id)
    assert forecast.patient_id == patient_id
    assert forecast.model_version.endswith("-forecast")
    assert forecast.received_treatment == record.treatment
    assert forecast.horizon == HORIZON_YEARS
    curves = forecast.curves
    assert set(curves["treatment"]) == set(TREATMENTS)
    for _, curve in curves.groupby("treatment"):
        assert curve["time"].iloc[0] == 0.0
        assert np.all(np.diff(curve["risk"].to_numpy()) >= 0.0)
        assert np.all(curve["lower"] <= curve["risk"])
        assert np.all(curve["risk"] <= curve["upper"])
    effects = forecast.effects.set_index("treatment")
    assert effects.loc["none", "arr"] == 0.0
    assert forecast.best_treatment == effects["risk"].idxmin()
    for name in TREATMENTS:  # synthetic: the truth is shown
        assert effects.loc[name, "true_risk"] == pytest.approx(record.counterfactual_risks[name])


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def test_one_patient_one_risk_on_every_screen(tiny_service) -> None:
    """Explorer, forecast, guided demo and HTML report show one risk per patient."""
    test_ids = tiny_service.search_patients(split="test", limit=1000)["patient_id"].tolist()
    assert len(test_ids) == tiny_service.count_patients("test") > 0
    worst = 0.0
    for patient_id in test_ids:
        fused = tiny_service.predict(patient_id).risk
        forecast = tiny_service.forecast(patient_id)
        effects = forecast.effects.set_index("treatment")
        received = effects.loc[forecast.received_treatment, "risk"]
        curve = forecast.curves.query("treatment == @forecast.received_treatment")
        assert curve["risk"].iloc[-1] == received
        worst = max(worst, abs(received - fused))
        assert forecast.anchor_risk == pytest.approx(fused, abs=1e-12)
        report = case_report(tiny_service, tiny_service.load_patient(patient_id))
        assert f'<span class="big">{_percent(fused)}</span> fused risk' in report
        assert f'<td>{forecast.received_treatment}</td><td class="num">{_percent(received)} (' in (
            report
        )
    assert worst <= 0.005
    # The guided demo shows these same two services' numbers for its story patients.
    for story in tiny_service.guided_demo_patients():
        forecast = tiny_service.forecast(story.patient_id)
        received = forecast.effects.set_index("treatment").loc[forecast.received_treatment]
        assert received["risk"] == pytest.approx(
            tiny_service.predict(story.patient_id).risk, abs=0.005
        )


def test_what_if_forecast_reaches_the_what_if_risk(tiny_service) -> None:
    patient_id = tiny_service.search_patients(split="test", limit=1)["patient_id"].iloc[0]
    overrides = {"smoking": 0, "systolic_bp": 120}
    after = tiny_service.what_if(patient_id, overrides).after.risk
    forecast = tiny_service.forecast(patient_id, overrides=overrides)
    effects = forecast.effects.set_index("treatment")
    assert effects.loc[forecast.received_treatment, "risk"] == pytest.approx(after, abs=0.005)


def test_service_forecast_with_overrides(tiny_service) -> None:
    patient_id = tiny_service.search_patients(split="test", limit=1)["patient_id"].iloc[0]
    edited = tiny_service.forecast(patient_id, overrides={"smoking": 0, "systolic_bp": 120})
    assert edited.curves["true_risk"].isna().all()  # truth belongs to the recorded patient
    with pytest.raises(ValueError, match="Unknown override 'shoe_size'"):
        tiny_service.forecast(patient_id, overrides={"shoe_size": 42})
    with pytest.raises(ValueError, match="not modifiable"):
        tiny_service.forecast(patient_id, overrides={"age": 40})


def test_service_forecast_proof_and_calibration(tiny_service) -> None:
    proof = tiny_service.forecast_proof()
    assert proof is not None
    assert {"s_learner", "treatment_agnostic", "naive_unadjusted"} <= set(proof["method"])
    assert set(proof["contrast"]) == {"standard vs none", "targeted vs none"}
    assert np.isfinite(proof["pehe"]).all()
    calibration = tiny_service.forecast_calibration()
    assert calibration is not None
    table, errors = calibration
    assert table["n"].sum() == tiny_service.count_patients("test")
    assert 0.0 <= errors["ece_true"] <= 1.0


def test_cli_forecast_writes_the_documented_json(home_env, tiny_service, tmp_path) -> None:
    patient_id = tiny_service.search_patients(split="test", limit=1)["patient_id"].iloc[0]
    out = tmp_path / "forecast.json"
    assert main(["forecast", patient_id, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["patient_id"] == patient_id
    assert document["horizon_years"] == HORIZON_YEARS
    assert document["note"] == FORECAST_NOTE
    assert "not medical advice" in document["note"]
    assert document["ground_truth"] is True
    assert document["best_treatment"] in TREATMENTS
    assert isinstance(document["best_treatment_distinguishable"], bool)
    assert document["anchor_risk"] == pytest.approx(tiny_service.predict(patient_id).risk)
    assert [t["treatment"] for t in document["treatments"]] == list(TREATMENTS)
    for entry in document["treatments"]:
        n = len(entry["times"])
        assert n == 11
        assert entry["times"][-1] == HORIZON_YEARS
        for key in ("risk", "lower", "upper", "true_risk"):
            assert len(entry[key]) == n
        assert entry["risk_at_horizon"] == entry["risk"][-1]
        assert entry["true_risk_at_horizon"] == pytest.approx(entry["true_risk"][-1])
    none = document["treatments"][0]
    assert none["arr"] == 0.0
    assert none["nnt"] is None
    assert not (tmp_path / "forecast.json.partial").exists()


def test_cli_forecast_of_an_unknown_patient_fails_cleanly(home_env, tmp_path, caplog) -> None:
    out = tmp_path / "forecast.json"
    assert main(["forecast", "P9999999", "--out", str(out)]) == 2
    assert "P9999999" in caplog.text
    assert not out.exists()
