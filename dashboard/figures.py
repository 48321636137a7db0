"""Pure Plotly figure builders: records and arrays in, ``go.Figure`` out; no ``st`` here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fusion.service import ImageMaps, PatientExplanation

__all__ = [
    "MODALITY_COLOURS",
    "format_value",
    "make_modality_figure",
    "make_overlay_figure",
    "make_waterfall_figure",
]

MODALITY_COLOURS = {
    "demographics": "#8c6d31",
    "ehr": "#1f77b4",
    "genomics": "#2ca02c",
    "imaging": "#d62728",
}
# Transparent where unimportant, so the scan stays readable under the map.
SALIENCY_COLOURSCALE = [
    [0.0, "rgba(0,0,0,0)"],
    [0.25, "rgba(120,28,109,0.25)"],
    [0.5, "rgba(188,55,84,0.6)"],
    [0.75, "rgba(249,142,9,0.85)"],
    [1.0, "rgba(252,255,164,1)"],
]
MODALITY_LABELS = {
    "demographics": "Demographics",
    "ehr": "EHR",
    "genomics": "Genomics",
    "imaging": "Imaging",
}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def format_value(value: float, unit: str) -> str:
    """Readable input value: ``'7.2 %'``, ``'missing'`` for NaN, integers without decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    return f"{text} {unit}".strip() if unit and unit != "logit" else text


def make_waterfall_figure(explanation: PatientExplanation, *, top_n: int = 12) -> go.Figure:
    """SHAP waterfall of one fused prediction, from the base value to the patient's margin.

    The ``top_n`` largest contributions are shown one by one (with the patient's value and
    unit); the rest are summed into one bar, so the bars always add up to the margin.
    """
    contributions = explanation.contributions
    top = contributions.head(top_n)
    rest = contributions.iloc[top_n:]
    labels = [f"{row.label} = {format_value(row.value, row.unit)}" for row in top.itertuples()]
    values = top["shap"].tolist()
    colours = [MODALITY_COLOURS.get(m, "#7f7f7f") for m in top["modality"]]
    if len(rest):
        labels.append(f"{len(rest)} other inputs")
        values.append(float(rest["shap"].sum()))
        colours.append("#7f7f7f")
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=["Base value (average patient)", *labels, "This patient"],
            x=[explanation.base_value, *values, 0.0],
            measure=["absolute", *(["relative"] * len(values)), "total"],
            base=0,
            text=[
                f"{explanation.base_value:+.2f}",
                *[f"{v:+.2f}" for v in values],
                f"{explanation.margin:+.2f}",
            ],
            textposition="auto",
            cliponaxis=False,
            increasing={"marker": {"color": "#d62728"}},
            decreasing={"marker": {"color": "#1f77b4"}},
            totals={"marker": {"color": "#444444"}},
            connector={"line": {"color": "#bbbbbb", "width": 1}},
            hovertemplate="%{y}: %{x:+.3f} log-odds<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=(
            f"Why this risk: SHAP contributions in log-odds "
            f"(base {_sigmoid(explanation.base_value):.1%} → patient {explanation.risk:.1%})"
        ),
        xaxis_title="log-odds of the event (red raises risk, blue lowers it)",
        height=140 + 28 * (len(values) + 2),
        margin={"l": 10, "r": 50, "t": 60, "b": 40},
        showlegend=False,
    )
    return fig


def make_modality_figure(explanation: PatientExplanation) -> go.Figure:
    """One horizontal bar per modality: its summed SHAP contribution in log-odds."""
    totals = pd.Series(explanation.modality_totals)
    fig = go.Figure(
        go.Bar(
            x=totals.to_numpy(),
            y=[MODALITY_LABELS.get(str(m), str(m)) for m in totals.index],
            orientation="h",
            marker_color=[MODALITY_COLOURS.get(str(m), "#7f7f7f") for m in totals.index],
            text=[f"{v:+.2f}" for v in totals.to_numpy()],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.3f} log-odds<extra></extra>",
        )
    )
    fig.update_layout(
        title="Contribution per modality (sum of SHAP values)",
        xaxis_title="log-odds",
        height=240,
        margin={"l": 10, "r": 50, "t": 50, "b": 40},
    )
    fig.update_xaxes(zeroline=True, zerolinecolor="#888888")
    fig.update_yaxes(autorange="reversed")
    return fig


def make_overlay_figure(
    maps: ImageMaps, *, opacity: float = 0.45, show_lesion: bool = False
) -> go.Figure:
    """The scan in grey with the saliency map over it, a colour bar and an optional lesion line.

    Parameters
    ----------
    maps : ImageMaps
        Scan (display-scaled to [0, 1]) and saliency in [0, 1] (1 = most important).
    opacity : float, default=0.45
        Opacity of the saliency layer, 0 (scan only) to 1.
    show_lesion : bool, default=False
        Draw the true lesion outline (synthetic cohorts) when a mask is available.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity={opacity} must be within [0, 1].")
    name = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++"}.get(maps.method, maps.method)
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=maps.image,
            colorscale="gray",
            showscale=False,
            hoverinfo="skip",
            name="scan",
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=maps.saliency,
            colorscale=SALIENCY_COLOURSCALE,
            zmin=0.0,
            zmax=1.0,
            opacity=opacity,
            colorbar={"title": {"text": "importance"}, "thickness": 14},
            hovertemplate="x %{x}, y %{y}: importance %{z:.2f}<extra></extra>",
            name=name,
        )
    )
    if show_lesion and maps.lesion_mask is not None and maps.lesion_mask.any():
        fig.add_trace(
            go.Contour(
                z=maps.lesion_mask.astype(np.float32),
                contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "lines"},
                line={"color": "#00e5ff", "width": 2},
                showscale=False,
                hoverinfo="skip",
                name="true lesion",
            )
        )
    width = maps.image.shape[1]
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(
        visible=False, autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain"
    )
    fig.update_layout(
        title=f"{name} over the scan (mean of {maps.n_nets} net{'s' if maps.n_nets > 1 else ''})",
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig
