"""The map panel beside its imaging trust figures, and the words when the imaging model is no
better than chance (issue 16)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest.mock import patch

from streamlit.testing.v1 import AppTest

from fusion.explanations.imaging_trust import ImagingMapTrust
from fusion.explanations.imaging_words import NOT_INFORMATIVE_TITLE, not_informative_sentence

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="explorer.patient")
    select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    return at


def _overlays(at: AppTest) -> list[dict]:
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [c for c in charts if [t["type"] for t in c["data"]][:2] == ["heatmap", "heatmap"]]


def test_uninformative_imaging_model_draws_no_map(patched_service) -> None:
    # The tiny demo's own record, measured when its imaging nets were trained: 2 epochs on 72
    # scans of 32 px are no better than chance (the fixture otherwise shows an informative one).
    chance = ImagingMapTrust.from_metrics(
        patched_service.models.imaging_record.metrics["map_trust"]
    )
    assert not chance.informative
    with patch.object(patched_service, "imaging_map_trust", return_value=chance):
        at = _open()
    assert not_informative_sentence(chance) in [info.value for info in at.info]
    assert NOT_INFORMATIVE_TITLE in not_informative_sentence(chance)
    assert not _overlays(at)
    # No map switch: there is no map to switch.
    assert "explorer.method" not in [radio.key for radio in at.get("radio")]


def test_informative_model_shows_the_map_with_its_trust_figures(patched_service) -> None:
    stored = patched_service.imaging_map_trust()
    better = dataclasses.replace(stored, auroc=0.8, auroc_low=0.7, auroc_high=0.9)
    with patch.object(patched_service, "imaging_map_trust", return_value=better):
        at = _open()
        at.radio(key="explorer.method").set_value("Grad-CAM").run()
    assert not at.exception
    assert len(_overlays(at)) == 1
    assert any(c.value.startswith("Imaging-map trust") for c in at.caption)
    assert NOT_INFORMATIVE_TITLE not in " ".join(info.value for info in at.info)
    table = next(df.value for df in at.dataframe if "On the body" in df.value.columns)
    assert table["Map"].tolist()[:2] == ["Grad-CAM", "Grad-CAM++"]
