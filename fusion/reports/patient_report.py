"""One patient's explorer page as a self-contained HTML report.

Owns the HTML (inline CSS, no script, no external link: it opens offline and can be archived
or mailed) and the overlay picture (numpy, encoded as PNG by Pillow): the scan with its
saliency overlay and, for synthetic cohorts, the true lesion outline, embedded as base64.
Plotly's image export (kaleido) is not needed. Every text from the store is HTML-escaped.
:func:`case_report` assembles the report of one loaded patient through the service's use cases.
Must not import streamlit.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
from PIL import Image

from data.errors import CohortError, StoreNotBuiltError
from data.vocabulary import DEMO_OUTCOME, MODALITY_LABELS, OutcomeSpec
from fusion.display import (
    feature_label,
    format_feature_value,
    format_risk_interval,
    interval_sentence,
    no_interval_sentence,
    threshold_sentence,
)
from fusion.records import ImageMaps, MapMethod, ModelInfo, PatientExplanation, RiskResult
from fusion.service.cohort_words import cohort_words
from fusion.service.patient_facts import identity_facts

if TYPE_CHECKING:
    from fusion.forecast.patient import PatientForecast
    from fusion.service.facade import RiskService
    from fusion.service.patient_case import PatientCase
    from fusion.uncertainty import RiskInterval

__all__ = ["case_report", "encode_png", "overlay_rgb", "render_patient_report"]

MAP_NAMES = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "occlusion": "Occlusion (fused risk)",
}
# Colour stops of the saliency overlay (0 = transparent end, 1 = most important).
_STOPS = np.array([[0, 0, 4], [120, 28, 109], [237, 105, 37], [252, 255, 164]], dtype=np.float64)
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eee;
text-align:left}th{background:#f6f6f6}.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:flex;height:1.4em;margin:.3em 0 .8em;border:1px solid #ccc}
.bar div{height:100%;color:#fff;font-size:.75em;overflow:hidden;white-space:nowrap;padding-left:3px}
.pos{background:#c0392b}.neg{background:#2e6da4}.big{font-size:1.6em;font-weight:600}
.note{color:#666;font-size:.85em}.flag{color:#c0392b;font-weight:600}
.patient{border:2px solid #222;border-radius:6px;padding:.5em .9em;margin:.5em 0 1em}
.patient h1{margin:0 0 .2em}.patient p{margin:0;font-size:1.1em}
"""


def encode_png(rgb: npt.NDArray[np.uint8]) -> bytes:
    r"""Encode an 8-bit RGB image, shape (H, W, 3), as PNG bytes (Pillow).

    Raises
    ------
    ValueError
        If ``rgb`` is not a uint8 array of shape (H, W, 3).

    Examples
    --------
    >>> encode_png(np.zeros((2, 3, 3), dtype=np.uint8))[:8]
    b'\x89PNG\r\n\x1a\n'
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 array of shape (H, W, 3); got {rgb.dtype} {rgb.shape}.")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_rgb(
    image: npt.NDArray[np.float32],
    saliency: npt.NDArray[np.float32],
    lesion_mask: npt.NDArray[np.uint8] | None = None,
    *,
    opacity: float = 0.45,
    scale: int = 4,
) -> npt.NDArray[np.uint8]:
    """Scan in grey with the saliency blended in colour (weight ``opacity * saliency``).

    Parameters
    ----------
    image, saliency : ndarray of shape (H, W)
        Both in [0, 1].
    lesion_mask : ndarray of shape (H, W), optional
        Its outline is drawn in cyan.
    opacity : float, default=0.45
    scale : int, default=4
        Nearest-neighbour upscaling factor.

    Returns
    -------
    ndarray of uint8, shape (H * scale, W * scale, 3)
    """
    if image.shape != saliency.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and saliency {saliency.shape} must be equal (H, W).")
    grey = np.repeat(np.clip(image, 0, 1)[..., None] * 255.0, 3, axis=2)
    level = np.clip(saliency, 0, 1) * (len(_STOPS) - 1)
    low = np.minimum(np.floor(level).astype(int), len(_STOPS) - 2)
    frac = (level - low)[..., None]
    colour = _STOPS[low] * (1 - frac) + _STOPS[low + 1] * frac
    weight = (opacity * np.clip(saliency, 0, 1))[..., None]
    rgb = grey * (1 - weight) + colour * weight
    if lesion_mask is not None and lesion_mask.any():
        mask = lesion_mask.astype(bool)
        padded = np.pad(mask, 1)
        inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
        rgb[mask & ~inner] = (0, 229, 255)
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _value(value: float, unit: str, feature: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not recorded"
    return format_feature_value(feature, value, unit)


def _table(header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if i in numeric
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _modality_bar(totals: Mapping[str, float]) -> str:
    total = sum(abs(v) for v in totals.values()) or 1.0
    parts = []
    for name, value in totals.items():
        width = 100 * abs(value) / total
        label = f"{MODALITY_LABELS.get(name, name)} {value:+.2f}"
        parts.append(
            f'<div class="{"pos" if value >= 0 else "neg"}" style="width:{width:.2f}%" '
            f'title="{html.escape(label)}">{html.escape(label)}</div>'
        )
    return f'<div class="bar">{"".join(parts)}</div>'


def _forecast_html(forecast: PatientForecast | None) -> str:
    """The treatment-forecast section: each option's horizon risk, band and ARR."""
    if forecast is None:
        return ""
    rows = []
    comparison = forecast.comparison
    effects = forecast.effects
    for name, risk, low, high, arr in zip(
        effects["treatment"].astype(str),
        effects["risk"].to_numpy(np.float64),
        effects["lower"].to_numpy(np.float64),
        effects["upper"].to_numpy(np.float64),
        effects["arr"].to_numpy(np.float64),
        strict=True,
    ):
        notes = []
        if name == forecast.received_treatment:
            notes.append("received")
        if name == forecast.best_treatment and (comparison is None or comparison.distinguishable):
            notes.append("lowest estimated risk")
        rows.append(
            [
                name,
                f"{_pct(risk)} ({_pct(low)} to {_pct(high)})",
                "reference" if name == "none" else f"{100 * arr:+.1f} pts",
                ", ".join(notes),
            ]
        )
    verdict = "" if comparison is None else html.escape(comparison.describe(forecast.horizon))
    return (
        f"<h2>Treatment forecast: risk at {forecast.horizon:g} years under each option</h2>"
        + _table(["option", "risk (band)", "reduction vs none", "note"], rows, {1, 2})
        + f"<p>{verdict}</p>"
        + '<p class="note">Anchored to the fused risk above: the option received reaches it '
        "at the horizon. Model estimate for research and demonstration only, not medical "
        "advice; it assumes no unmeasured confounding of the treatment choice.</p>"
    )


def render_patient_report(
    *,
    result: RiskResult,
    interval: RiskInterval | None,
    explanation: PatientExplanation,
    what_if: pd.DataFrame,
    top_features: pd.DataFrame,
    maps: ImageMaps | None,
    info: ModelInfo,
    opacity: float = 0.45,
    generated_at: datetime | None = None,
    forecast: PatientForecast | None = None,
    no_interval_reason: str = "",
    outcome: OutcomeSpec = DEMO_OUTCOME,
) -> str:
    """The report as one HTML document (inline CSS and a base64 PNG; no external resource).

    Parameters
    ----------
    result : RiskResult
        Risk, threshold, split, outcome and model version.
    interval : RiskInterval or None
        Uncertainty interval of the risk.
    explanation : PatientExplanation
        SHAP attribution (per-modality sums are drawn as one bar).
    what_if : DataFrame
        ``scenario, risk, change`` (:meth:`fusion.service.facade.RiskService.modality_what_if`).
    top_features : DataFrame
        ``modality, label, value, unit, shap``.
    maps : ImageMaps or None
        Scan and saliency (None: the report says the scan is unavailable).
    info : ModelInfo
        Model versions and test AUROC.
    opacity : float, default=0.45
        Overlay opacity.
    generated_at : datetime, optional
        Report time (default: now, UTC).
    forecast : PatientForecast, optional
        The treatment forecast (anchored to ``result.risk``); None leaves the section out.
    no_interval_reason : str, default=""
        Without an interval, why none is shown (``RiskService.interval_reason``).
    outcome : OutcomeSpec, default=DEMO_OUTCOME
        What the risk is the probability of (:func:`fusion.service.cohort_words.cohort_words`).

    Returns
    -------
    str
        A complete ``<!DOCTYPE html>`` document.
    """
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    pid = html.escape(result.patient_id)
    status = threshold_sentence(result.risk, result.threshold)
    if result.flagged:
        status = f'<span class="flag">{html.escape(status)}</span>'
    risk_line = (
        f'<p><span class="big">{_pct(result.risk)}</span> '
        f"{html.escape(outcome.risk_label[0].lower() + outcome.risk_label[1:])}"
    )
    if interval is not None:
        risk_line += (
            f" &middot; {format_risk_interval(interval.low, interval.high)}: "
            f"{html.escape(interval.describe())}. {html.escape(interval_sentence(interval))}"
        )
    elif no_interval_reason:
        risk_line += f" &middot; {html.escape(no_interval_sentence(no_interval_reason))}"
    risk_line += f"</p><p>Risk is {status}.</p>"
    facts = [f"Split: {html.escape(result.split)}"]
    if result.split == "test" and result.label is not None:
        facts.append(f"true outcome: {html.escape(outcome.outcome_text(result.label))}")
    if result.true_risk is not None:
        facts.append(f"synthetic true risk: {_pct(result.true_risk)}")
    totals_rows = [
        [MODALITY_LABELS.get(k, k), f"{v:+.3f}"] for k, v in explanation.modality_totals.items()
    ]
    features = top_features.get("feature", pd.Series([""] * len(top_features)))
    top_rows = [
        [
            MODALITY_LABELS.get(str(m), str(m)),
            feature_label(str(f), str(label)),
            _value(float(v), str(u), str(f)),
            f"{s:+.3f}",
        ]
        for m, f, label, v, u, s in zip(
            top_features["modality"],
            features,
            top_features["label"],
            top_features["value"].to_numpy(np.float64),
            top_features["unit"],
            top_features["shap"].to_numpy(np.float64),
            strict=True,
        )
    ]
    what_if_rows = [
        [str(name), _pct(risk), f"{100 * change:+.1f} pts"]
        for name, risk, change in zip(
            what_if["scenario"],
            what_if["risk"].to_numpy(np.float64),
            what_if["change"].to_numpy(np.float64),
            strict=True,
        )
    ]
    if maps is None:
        image_html = "<p>The scan is not available for this patient.</p>"
    else:
        png = encode_png(overlay_rgb(maps.image, maps.saliency, maps.lesion_mask, opacity=opacity))
        outline = (
            " Cyan: true lesion outline (synthetic ground truth)."
            if (maps.lesion_mask is not None and maps.lesion_mask.any())
            else ""
        )
        image_html = (
            f'<img alt="scan with {html.escape(MAP_NAMES.get(maps.method, maps.method))} overlay" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
            f'<p class="note">{html.escape(MAP_NAMES.get(maps.method, maps.method))} averaged '
            f"over {maps.n_nets} net(s); bright = most important.{outline}</p>"
        )
    use = "synthetic demo data" if result.cohort == "synthetic" else "research use only"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Patient report {pid}</title><style>{_STYLE}</style></head><body>
<div class="patient"><h1>Patient report: {pid}</h1>
<p>{" &middot; ".join(html.escape(fact) for fact in identity_facts(result))}</p></div>
<p class="note">Fusion model {html.escape(info.version)}
(imaging {html.escape(info.imaging_version)}, test AUROC {info.test_auroc:.3f})
&middot; generated {html.escape(when)} &middot; {use}, not for clinical use.</p>
<h2>Risk</h2>{risk_line}<p>{" &middot; ".join(facts)}</p>
<h2>Why: SHAP attribution per modality (log-odds)</h2>
<p>Base value {explanation.base_value:+.3f} + contributions = {explanation.margin:+.3f}
= logit of {_pct(explanation.risk)} (exact TreeSHAP, {html.escape(explanation.source)}).</p>
{_modality_bar(explanation.modality_totals)}
{_table(["modality", "SHAP sum"], totals_rows, {1})}
<h2>Top inputs within each modality</h2>
{_table(["modality", "input", "patient's value", "SHAP"], top_rows, {3})}
<h2>Without one test</h2>
{_table(["scenario", "risk", "change"], what_if_rows, {1, 2})}
<h2>Where: image evidence</h2>
{image_html}
{_forecast_html(forecast)}
</body></html>
"""


def case_report(service: RiskService, case: PatientCase, method: MapMethod = "gradcam") -> str:
    """One loaded patient's report, computed by ``service`` from ``case`` (no second load).

    A patient without a scan file gets a report that says so instead of the overlay. When the
    active version has a forecast model, the report ends with the treatment forecast, anchored
    to the same fused risk.

    Parameters
    ----------
    service : RiskService
        The risk service over the active models.
    case : PatientCase
        The patient, loaded by :meth:`~fusion.service.facade.RiskService.load_patient`.
    method : {"gradcam", "gradcampp", "occlusion"}, default="gradcam"
        The saliency map drawn over the scan.

    Returns
    -------
    str
        A complete ``<!DOCTYPE html>`` document (:func:`render_patient_report`).
    """
    try:
        maps: ImageMaps | None = service.image_maps(case, method)
    except CohortError:
        maps = None
    try:
        forecast: PatientForecast | None = service.forecast(case)
    except StoreNotBuiltError:  # the version was built without a forecast model
        forecast = None
    return render_patient_report(
        result=service.predict(case),
        interval=service.risk_interval(case) if service.interval_calibration else None,
        no_interval_reason=service.interval_reason,
        explanation=service.explain(case),
        what_if=service.modality_what_if(case),
        top_features=service.top_features(case),
        maps=maps,
        info=service.model_info(),
        forecast=forecast,
        outcome=cohort_words(service).outcome,
    )
