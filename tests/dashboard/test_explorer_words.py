"""Patient explorer: threshold wording, the interval sentence, the default map, readable tables."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from dashboard.figures import LOWERS_COLOUR, MAP_LABELS, RAISES_COLOUR
from fusion.display import format_risk_interval, interval_sentence, threshold_sentence
from fusion.explanations.map_trust import rank_maps

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _open() -> AppTest:
    """A new session on the explorer, with the first listed patient chosen by the user."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="explorer.patient")
    select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    return at


def _numbers(values: list | dict) -> list[float]:
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_risk_words_interval_and_default_map(patched_service) -> None:
    at = _open()
    pid = at.selectbox(key="explorer.patient").value
    result = patched_service.predict(pid)
    interval = patched_service.risk_interval(pid)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Risk interval ({interval.level:.0%})"] == format_risk_interval(
        interval.low, interval.high
    )
    assert "Screening threshold" in metrics
    assert "Decision threshold" not in metrics
    text = " ".join(m.value for m in at.markdown)
    assert threshold_sentence(result.risk, result.threshold) in text
    assert "high risk" not in text
    assert interval_sentence(interval) in [c.value for c in at.caption]
    # The map opens on the one the stored trust metrics rank best, with its trust figure.
    best = rank_maps(patched_service.map_trust())[0]
    assert at.radio(key="explorer.method").value == MAP_LABELS[best]
    assert any("lesion-positive test scans" in c.value for c in at.caption)


def test_modality_chart_colours_by_direction(patched_service) -> None:
    at = _open()
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    bars = next(c for c in charts if c["layout"]["title"]["text"].startswith("Contribution"))
    trace = bars["data"][0]
    expected = [RAISES_COLOUR if v > 0 else LOWERS_COLOUR for v in _numbers(trace["x"])]
    assert trace["marker"]["color"] == expected


def test_tables_have_readable_column_names(patched_service) -> None:
    at = _open()
    assert len(at.dataframe) >= 2
    for table in at.dataframe:
        columns = [str(c) for c in table.value.columns]
        assert not any("_" in c for c in columns), columns
