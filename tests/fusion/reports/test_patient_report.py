"""Patient report: a valid PNG encoder, a faithful overlay, and HTML with no external resource."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fusion.records import ImageMaps, ModelInfo, PatientExplanation, RiskResult
from fusion.reports.patient_report import encode_png, overlay_rgb, render_patient_report
from fusion.uncertainty import RiskInterval


def _decode_png(data: bytes) -> np.ndarray:
    """The pixels of a PNG file, read back with Pillow (8-bit RGB)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        return np.asarray(image)


def test_png_round_trips_pixels() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode_png(encode_png(rgb)), rgb)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        encode_png(np.zeros((5, 7), np.uint8))


def test_overlay_keeps_the_scan_where_the_map_is_zero_and_outlines_the_lesion() -> None:
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    saliency = np.zeros((8, 8), np.float32)
    saliency[0, 0] = 1.0
    mask = np.zeros((8, 8), np.uint8)
    mask[3:6, 3:6] = 1
    rgb = overlay_rgb(image, saliency, mask, opacity=0.5, scale=1)
    grey = np.rint(image * 255).astype(np.uint8)
    assert (rgb[7, 7] == grey[7, 7]).all()  # no saliency, no lesion: the scan itself
    assert not (rgb[0, 0] == grey[0, 0]).all()  # saliency blends colour in
    assert (rgb[3, 3] == (0, 229, 255)).all()  # outline
    assert (rgb[4, 4] == grey[4, 4]).all()  # lesion interior stays visible
    assert overlay_rgb(image, saliency, scale=3).shape == (24, 24, 3)


def _report(maps: ImageMaps | None, *, result: RiskResult | None = None) -> str:
    contributions = pd.DataFrame(
        {
            "feature": ["sbp", "image_score"],
            "label": ["Systolic <BP>", "Scan score"],
            "unit": ["mmHg", ""],
            "modality": ["ehr", "imaging"],
            "value": [142.0, float("nan")],
            "shap": [0.4, -0.1],
        }
    )
    return render_patient_report(
        result=result or RiskResult("P<1>", 0.31, "fusion-v1", 0.25, "test", 1, 0.28, 0.3),
        interval=RiskInterval(0.22, 0.41, 0.9, "cross_conformal_logit", "true_risk", 400),
        explanation=PatientExplanation(
            0.31, -1.1, -0.8, contributions, {"demographics": 0.0, "ehr": 0.4, "imaging": -0.1}
        ),
        what_if=pd.DataFrame(
            {
                "scenario": ["all available", "without scan"],
                "risk": [0.31, 0.35],
                "change": [0, 0.04],
            }
        ),
        top_features=contributions.loc[:, ["modality", "label", "value", "unit", "shap"]],
        maps=maps,
        info=ModelInfo("fusion-v1", "imaging-v1", "2026", 0.8, (0.7, 0.9), {}, {}, 0.25, 2),
        generated_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    )


def test_report_is_self_contained_and_carries_the_page() -> None:
    image = np.random.default_rng(0).uniform(size=(16, 16)).astype(np.float32)
    maps = ImageMaps(image, image[::-1].copy(), np.eye(16, dtype=np.uint8), "occlusion", 2)
    text = _report(maps)
    assert text.startswith("<!DOCTYPE html>")
    # Self-contained: no external source, link, script or stylesheet import.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", text)
    assert "<script" not in text
    assert "@import" not in text
    assert "url(" not in text
    for fragment in (
        "31.0%",
        "22% to 41%",
        "above the model&#x27;s screening threshold of 25%",
        "fusion-v1",
        "2026-11-29T12:00:00+00:00",
        "142 mmHg",
        "not recorded",
        "true outcome: event",
        "Occlusion (fused risk)",
    ):
        assert fragment in text, fragment
    assert "P&lt;1&gt;" in text
    assert "Systolic &lt;BP&gt;" in text
    assert "<BP>" not in text
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', text).group(1))
    assert _decode_png(png).shape == (64, 64, 3)


def test_report_without_a_scan_says_so() -> None:
    text = _report(None)
    assert "not available" in text
    assert "data:image/png" not in text
