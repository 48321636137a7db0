"""AppTests of the treatment forecast page (curves, toggles, what-if) and the guided demo."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.components.forecast_view import best_option_summary, effects_table
from dashboard.figures import LOWERS_COLOUR, MAP_LABELS, RAISES_COLOUR, make_forecast_figure
from fusion.explanations.map_trust import rank_maps
from fusion.forecast.patient import FORECAST_NOTE, compare_options, make_patient_forecast
from fusion.service.guided_demo import STORY

APP = str(Path(__file__).resolve().parents[2] / "app.py")
RISK = "Fused risk (5-year event)"


def _page(name: str) -> AppTest:
    """A new session on page ``name``; on the forecast page the user chooses the first patient."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"dashboard/pages/{name}.py").run()
    assert not at.exception, at.exception
    if name == "forecast":
        select = at.selectbox(key="forecast.patient")
        assert select.value is None  # nothing opens by itself
        select.set_value(select.options[0].split(" ")[0]).run()
        assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _numbers(values: list | dict) -> list[float]:
    """Plotly JSON numbers: a plain list, or a typed array (``{"dtype", "bdata"}``)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def _table(at: AppTest, first_column: str) -> pd.DataFrame:
    """The one shown table whose first column is ``first_column`` (tables carry no key)."""
    tables = [t.value for t in at.dataframe if t.value.columns[0] == first_column]
    assert len(tables) == 1, [list(t.value.columns) for t in at.dataframe]
    return tables[0]


def _names(chart: dict) -> list[str]:
    return [trace.get("name", "") for trace in chart["data"]]


# ---------------------------------------------------------------- figure builder (no Streamlit)
def _curves(with_truth: bool = True) -> pd.DataFrame:
    times = np.linspace(0.0, 5.0, 6)
    rows = []
    for treatment, scale in (("none", 0.3), ("standard", 0.2), ("targeted", 0.1)):
        risk = scale * times / 5.0
        truth = risk + 0.01 if with_truth else np.full_like(risk, np.nan)
        rows.append(
            pd.DataFrame(
                {
                    "treatment": treatment,
                    "time": times,
                    "risk": risk,
                    "lower": risk * 0.8,
                    "upper": risk * 1.2,
                    "true_risk": truth,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_forecast_figure_draws_a_line_and_band_per_treatment() -> None:
    fig = make_forecast_figure(_curves(), horizon=5.0)
    names = [trace.name for trace in fig.data]
    assert names == [
        f"{t} {part}" if part else t
        for t in ("none", "standard", "targeted")
        for part in ("upper", "band", "")
    ]
    band = fig.data[1]
    assert band.fill == "tonexty"
    assert list(band.y) == pytest.approx(list(_curves().query("treatment == 'none'")["lower"]))
    assert fig.layout.shapes[0].x0 == 5.0  # the horizon line


def test_forecast_figure_options_and_errors() -> None:
    fig = make_forecast_figure(
        _curves(), treatments=["targeted"], show_bands=False, show_truth=True
    )
    assert [t.name for t in fig.data] == ["targeted", "targeted (true)"]
    assert fig.data[1].line.dash == "dash"
    no_truth = make_forecast_figure(_curves(with_truth=False), show_bands=False, show_truth=True)
    assert [t.name for t in no_truth.data] == ["none", "standard", "targeted"]
    with pytest.raises(ValueError, match=r"Unknown treatments \['surgery'\]; the forecast has"):
        make_forecast_figure(_curves(), treatments=["surgery"])
    with pytest.raises(ValueError, match=r"lack columns \['true_risk'\]"):
        make_forecast_figure(_curves().drop(columns="true_risk"))


# ---------------------------------------------------------------- forecast page
def test_forecast_page_shows_curves_effects_and_caveats(patched_service) -> None:
    at = _page("forecast")
    assert at.title[0].value == "Treatment forecast"
    pid = at.selectbox(key="forecast.patient").value
    forecast = patched_service.forecast(pid)
    chart = _charts(at)[0]
    treatments = forecast.effects["treatment"].tolist()
    lines = [name for name in _names(chart) if name in treatments]
    assert lines == treatments
    none_line = next(t for t in chart["data"] if t.get("name") == "none")
    expected = forecast.curves.query("treatment == 'none'").sort_values("time")["risk"]
    assert none_line["y"] == pytest.approx(expected.tolist())
    effects = _table(at, "treatment")
    assert effects["treatment"].tolist() == treatments
    assert any(
        FORECAST_NOTE in info.value and forecast.best_treatment in info.value for info in at.info
    )
    assert any("Confounding assumption" in md.value for md in at.markdown)
    assert any(forecast.method in caption.value for caption in at.caption)
    fused = f"fused risk ({patched_service.predict(pid).risk:.1%})"
    assert any(fused in caption.value for caption in at.caption)  # one risk, said once
    received = effects.set_index("treatment").loc[forecast.received_treatment, "risk"]
    assert received.startswith(f"{patched_service.predict(pid).risk:.1%} (")
    assert not any("a few points" in caption.value for caption in at.caption)
    assert at.expander[0].label.startswith("How good are these forecasts?")


def test_treatment_band_and_truth_toggles_change_the_figure(patched_service) -> None:
    at = _page("forecast")
    at.multiselect(key="forecast.treatments").set_value(["none", "targeted"]).run()
    assert not at.exception
    names = _names(_charts(at)[0])
    assert [n for n in names if " " not in n] == ["none", "targeted"]
    assert "standard" not in names
    assert "none band" in names
    at.toggle(key="forecast.bands").set_value(False).run()
    names = _names(_charts(at)[0])
    assert not any(name.endswith(("band", "upper")) for name in names)
    at.toggle(key="forecast.truth").set_value(True).run()
    assert not at.exception
    truth = [t for t in _charts(at)[0]["data"] if t.get("name", "").endswith("(true)")]
    assert [t["name"] for t in truth] == ["none (true)", "targeted (true)"]
    assert all(t["line"]["dash"] == "dash" for t in truth)
    assert "true risk" in _table(at, "treatment").columns


def test_what_if_edit_recomputes_risk_shap_and_forecast(patched_service) -> None:
    at = _page("forecast")
    pid = at.selectbox(key="forecast.patient").value
    assert not [m for m in at.metric if m.label == RISK]  # nothing compared before Apply
    at.number_input(key=f"forecast.what_if.{pid}.systolic_bp").set_value(200.0)
    at.selectbox(key=f"forecast.what_if.{pid}.smoking").set_value(2.0)
    at.button(key="forecast.what_if.apply").click().run()
    assert not at.exception, at.exception
    assert not at.error
    expected = patched_service.what_if(pid, {"systolic_bp": 200.0, "smoking": 2.0})
    shown = [m.value for m in at.metric if m.label == RISK]
    assert shown == [f"{expected.before.risk:.1%}", f"{expected.after.risk:.1%}"]
    changes = _table(at, "Edited input")
    assert changes["Edited input"].tolist() == ["Systolic BP", "Smoking status"]
    assert changes["After"].tolist() == ["200 mmHg", "current"]
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert "Forecast before the edits (model estimate)" in titles
    assert "Forecast after the edits (model estimate)" in titles
    after = _charts(at)[titles.index("Forecast after the edits (model estimate)")]
    forecast = patched_service.forecast(pid, overrides={"systolic_bp": 200.0, "smoking": 2.0})
    none_after = next(t for t in after["data"] if t.get("name") == "none")
    expected_none = forecast.curves.query("treatment == 'none'").sort_values("time")["risk"]
    assert none_after["y"] == pytest.approx(expected_none.tolist())
    modality = [c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Contribution")]
    assert [_numbers(c["data"][0]["x"]) for c in modality] == [
        pytest.approx(list(expected.before.modality_totals.values())),
        pytest.approx(list(expected.after.modality_totals.values())),
    ]
    # Reset restores the recorded values and removes the comparison.
    at.button(key="forecast.what_if.reset").click().run()
    assert not [m for m in at.metric if m.label == RISK]
    recorded = patched_service.load_patient(pid).X["systolic_bp"].iloc[0]
    value = at.number_input(key=f"forecast.what_if.{pid}.systolic_bp").value
    assert (value is None and np.isnan(recorded)) or value == pytest.approx(recorded)


@pytest.mark.parametrize(
    ("feature", "value", "message"),
    [
        ("bmi", 80.0, "BMI 80 kg/m² is outside the plausible range 15 to 60 kg/m²"),
        ("hba1c", 16.0, "HbA1c 16 % is outside the plausible range 4 to 15 %"),
    ],
)
def test_invalid_what_if_edit_shows_the_message(patched_service, feature, value, message) -> None:
    at = _page("forecast")
    pid = at.selectbox(key="forecast.patient").value
    at.number_input(key=f"forecast.what_if.{pid}.{feature}").set_value(value)
    at.button(key="forecast.what_if.apply").click().run()
    assert not at.exception
    assert [e.value for e in at.error]
    assert message in at.error[0].value
    assert not [m for m in at.metric if m.label == RISK]


def test_non_modifiable_inputs_are_read_only(patched_service) -> None:
    at = _page("forecast")
    pid = at.selectbox(key="forecast.patient").value
    keys = {widget.key for widget in at.number_input}
    assert f"forecast.what_if.{pid}.bmi" in keys
    assert not any(key.endswith((".age", ".sex_male", ".snp_004")) for key in keys)
    fixed = _table(at, "Input")
    assert {"Age", "Sex", "SNP 004"} <= set(fixed["Input"])
    assert "BMI" not in set(fixed["Input"])


@pytest.mark.parametrize(
    ("members", "value", "note"),
    [
        # 0.4 points apart with overlapping bands: no headline winner.
        (
            [[0.30, 0.256, 0.250], [0.32, 0.266, 0.270], [0.31, 0.272, 0.262]],
            "Not distinguishable",
            "lowest estimate, not distinguishable",
        ),
        (
            [[0.30, 0.29, 0.25], [0.32, 0.31, 0.27], [0.31, 0.30, 0.26]],
            "targeted",
            "lowest estimated risk",
        ),
    ],
)
def test_best_option_headline_says_when_options_cannot_be_told_apart(members, value, note) -> None:
    horizon = np.asarray(members).mean(axis=0)
    risk = np.outer(horizon, np.linspace(0.0, 1.0, 3))
    forecast = make_patient_forecast(
        patient_id="P1",
        model_version="v-forecast",
        method="m",
        times=np.linspace(0.0, 5.0, 3),
        risk=risk,
        lower=risk * 0.8,
        upper=risk * 1.2,
        received_treatment="standard",
        comparison=compare_options(np.asarray(members)),
    )
    shown, sentence = best_option_summary(forecast)
    assert shown == value
    assert "targeted" in sentence
    notes = effects_table(forecast, show_truth=False).set_index("treatment")["note"]
    assert notes["targeted"] == note


# ---------------------------------------------------------------- guided demo
def test_guided_demo_walks_through_every_step_and_back(patched_service) -> None:
    at = _page("guided_demo")
    assert at.title[0].value == "Guided demo"
    first, second = patched_service.guided_demo_patients()
    expected_ids = {"high_risk": first.patient_id, "treatment_benefit": second.patient_id}
    assert at.button(key="guided.back").disabled
    for index, step in enumerate(STORY):
        assert at.header[0].value == step.title
        header = f"#### Patient {expected_ids[step.role]}\n"  # the patient header names it
        assert any(md.value.startswith(header) for md in at.markdown)
        assert f"Step {index + 1} of {len(STORY)}" in at.get("progress")[0].proto.text
        charts = _charts(at)
        if step.kind == "risk":
            risk = patched_service.predict(first.patient_id).risk
            assert [m.value for m in at.metric if m.label == RISK] == [f"{risk:.1%}"]
            assert any("model's screening threshold of" in m.value for m in at.markdown)
            assert not any("high risk" in m.value for m in at.markdown)
        elif step.kind == "why":
            assert [c["data"][0]["type"] for c in charts] == ["bar", "waterfall"]
            bars = charts[0]["data"][0]
            assert [RAISES_COLOUR if v > 0 else LOWERS_COLOUR for v in _numbers(bars["x"])] == bars[
                "marker"
            ]["color"]
        elif step.kind == "where":
            assert [t["type"] for t in charts[0]["data"]][:2] == ["heatmap", "heatmap"]
            best = MAP_LABELS[rank_maps(patched_service.map_trust())[0]]
            assert charts[0]["layout"]["title"]["text"].startswith(best)
            assert any("lesion-positive test scans" in c.value for c in at.caption)
            assert any(t.get("name") == "true lesion" for t in charts[0]["data"])
        elif step.kind == "treatment":
            assert "targeted" in _names(charts[0])
            shown = _table(at, "treatment").set_index("treatment")["risk"]
            received = patched_service.patient(second.patient_id).treatment
            fused = patched_service.predict(second.patient_id).risk
            assert shown[received].startswith(f"{fused:.1%} (")  # the same risk as step 1's kind
        else:
            keys = {widget.key for widget in at.selectbox}
            assert f"guided.what_if.{first.patient_id}.smoking" in keys
        if index < len(STORY) - 1:
            at.button(key="guided.next").click().run()
            assert not at.exception, at.exception
    assert at.button(key="guided.next").disabled
    at.selectbox(key=f"guided.what_if.{first.patient_id}.smoking").set_value(0.0)
    at.button(key="guided.what_if.apply").click().run()
    assert not at.exception
    assert len([m for m in at.metric if m.label == RISK]) == 2
    for step in reversed(STORY[:-1]):
        at.button(key="guided.back").click().run()
        assert not at.exception
        assert at.header[0].value == step.title
    assert at.button(key="guided.back").disabled
