from __future__ import annotations

import base64
import json
from pathlib import Path
from unittest.mock import patch

import numpy as np
from streamlit.testing.v1 import AppTest

from data.errors import StoreNotBuiltError
from fusion.display import format_risk_interval

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _open() -> AppTest:
    """A new session on the explorer, with the first listed patient chosen by the user."""
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="explorer.patient")
    assert select.value is None  # nothing opens by itself
    select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_page_shows_risk_shap_and_gradcam(patched_service) -> None:
    at = _open()
    assert at.title[0].value == "Patient explorer"
    labels = [metric.label for metric in at.metric]
    assert "Fused risk (5-year event)" in labels
    assert "Model test AUROC" in labels
    charts = _charts(at)
    assert len(charts) == 3
    trace_types = [[trace["type"] for trace in chart["data"]] for chart in charts]
    assert trace_types[0] == ["waterfall"]
    assert trace_types[1] == ["bar"]
    assert trace_types[2][:2] == ["heatmap", "heatmap"]


def test_risk_metric_matches_the_service(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    risk = patched_service.predict(pid).risk
    shown = next(m.value for m in at.metric if m.label == "Fused risk (5-year event)")
    assert shown == f"{risk:.1%}"


def test_widgets_drive_the_overlay(patched_service) -> None:
    at = _open()
    at.slider(key="explorer.opacity").set_value(0.8).run()
    at.radio(key="explorer.method").set_value("Grad-CAM++").run()
    at.toggle(key="explorer.lesion").set_value(True).run()
    assert not at.exception
    overlay = _charts(at)[2]
    assert overlay["data"][1]["opacity"] == 0.8
    assert "Grad-CAM++" in overlay["layout"]["title"]["text"]
    # Synthetic ground truth: the lesion outline is drawn when the patient has a lesion.
    pid = at.selectbox(key="explorer.patient").value
    has_lesion = patched_service.image_maps(pid).lesion_mask.any()
    assert (len(overlay["data"]) == 3) == bool(has_lesion)


def test_choosing_another_patient_updates_the_page(patched_service) -> None:
    at = _open()
    select = at.selectbox(key="explorer.patient")
    other = select.options[1]
    pid = other.split(" ")[0]
    select.set_value(pid).run()
    assert not at.exception
    assert at.selectbox(key="explorer.patient").value == pid


def test_search_with_no_match_says_so(patched_service) -> None:
    at = _open()
    at.text_input(key="explorer.query").set_value("ZZZ").run()
    assert not at.exception
    assert any("No patient id starts with 'ZZZ'" in info.value for info in at.info)


def test_unbuilt_store_shows_how_to_build() -> None:
    error = StoreNotBuiltError("No active 'fusion' model; run `riskfusion demo --no-serve`.")
    with patch("dashboard.resources.get_risk_service", side_effect=error):
        at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "riskfusion demo" in at.error[0].value


def test_occlusion_map_is_a_choice_of_the_map_switch(patched_service) -> None:
    at = _open()
    at.radio(key="explorer.method").set_value("Occlusion (fused risk)").run()
    assert not at.exception
    overlay = _charts(at)[2]
    assert "Occlusion (fused risk)" in overlay["layout"]["title"]["text"]
    pid = at.selectbox(key="explorer.patient").value
    expected = patched_service.image_maps(pid, "occlusion").saliency
    encoded = overlay["data"][1]["z"]  # plotly's typed-array encoding
    shown = np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
    np.testing.assert_allclose(shown.reshape(expected.shape), expected, atol=1e-6)


def test_what_if_top_features_and_trust_tables(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    what_if, top = (df.value for df in at.dataframe[:2])  # in page order
    assert what_if["Scenario"].tolist() == [
        "All available",
        "Without scan",
        "Without genomics",
        "Without EHR",
    ]
    risks = patched_service.modality_what_if(pid)["risk"]
    assert what_if["Risk"].tolist() == [f"{r:.1%}" for r in risks]
    assert list(top.columns) == ["Modality", "Input", "Patient's value", "SHAP (log-odds)"]
    assert len(top) == len(patched_service.top_features(pid, per_modality=3))
    # The trust expander reads the measurements stored with the model at build time.
    trust = patched_service.map_trust()
    assert trust is not None
    assert at.expander[0].label == "How much can these maps be trusted?"
    summary = at.dataframe[2].value  # after the what-if and top-feature tables
    assert summary["Map"].tolist() == [
        "Grad-CAM",
        "Grad-CAM++",
        "Occlusion (fused risk)",
        "Random map (baseline)",
        "Centre (baseline)",
    ]
    assert summary["Pointing game"].tolist() == [f"{v:.0%}" for v in trust.summary["pointing_game"]]
    assert any("SHAP additivity" in caption.value for caption in at.caption)


# ---------------------------------------------------------------- interval, what-if,
# similar patients, report export


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_risk_interval_is_shown_next_to_the_risk(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    interval = patched_service.risk_interval(pid)
    labels = [m.label for m in at.metric]
    label = f"Risk interval ({interval.level:.0%})"
    assert labels[:3] == ["Fused risk (5-year event)", label, "Screening threshold"]
    assert _metric(at, label) == format_risk_interval(interval.low, interval.high)
    assert any("contains the synthetic true risk" in c.value for c in at.caption)


def test_stored_explanation_is_read_and_what_if_toggles_compute_live(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    assert any("stored for this model version" in c.value for c in at.caption)
    assert "What-if risk" not in [m.label for m in at.metric]
    at.toggle(key="explorer.available.imaging").set_value(False).run()
    at.toggle(key="explorer.available.genomics").set_value(False).run()
    assert not at.exception
    expected = patched_service.explain_without(pid, ["imaging", "genomics"])
    assert _metric(at, "What-if risk") == f"{expected.risk:.1%}"
    assert any("computed live without imaging, genomics" in c.value for c in at.caption)
    waterfall = _charts(at)[0]
    assert f"{expected.risk:.1%}" in json.dumps(waterfall["layout"]["title"])
    at.toggle(key="explorer.available.imaging").set_value(True).run()
    at.toggle(key="explorer.available.genomics").set_value(True).run()
    assert "What-if risk" not in [m.label for m in at.metric]


def test_clicking_a_similar_patient_opens_it(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    similar = patched_service.similar_patients(pid, k=5)
    buttons = [b for b in at.button if b.key and b.key.startswith("explorer.similar.")]
    assert [b.label.split(" · ")[0] for b in buttons] == similar["patient_id"].tolist()
    target = similar["patient_id"].iloc[2]  # may be a training patient, not on the test page
    at.button(key="explorer.similar.2").click().run()
    assert not at.exception
    assert at.selectbox(key="explorer.patient").value == target
    assert _metric(at, "Fused risk (5-year event)") == f"{patched_service.predict(target).risk:.1%}"


def test_report_button_exports_the_page_as_html(patched_service) -> None:
    from fusion.reports import patient_report

    with patch(
        "fusion.reports.patient_report.render_patient_report",
        wraps=patient_report.render_patient_report,
    ) as spy:
        at = _open()
    pid = at.selectbox(key="explorer.patient").value
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["Download patient report (HTML)"]
    assert buttons[0].proto.url.endswith(".html")
    html = patient_report.render_patient_report(**spy.call_args.kwargs)  # what the page sent
    assert html.startswith("<!DOCTYPE html>")
    assert pid in html
    assert "data:image/png;base64," in html
    assert spy.call_args.kwargs["result"].patient_id == pid
