"""Pure Plotly figure builders: records and arrays in, ``go.Figure`` out; no ``st`` here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import special

from data.vocabulary import MODALITY_LABELS
from fusion.display import feature_label, format_feature_value
from fusion.records import ImageMaps, PatientExplanation

# The performance and audit figures live in fusion (the HTML report embeds them); re-exported.
from fusion.reports.figures import (
    MODALITY_COLOURS,
    make_calibration_figure,
    make_disparity_figure,
    make_group_calibration_figure,
    make_group_roc_figure,
    make_pr_figure,
    make_reliance_figure,
    make_roc_figure,
)
from fusion.reports.performance_figures import make_beeswarm_figure, make_importance_figure

__all__ = [
    "LOWERS_COLOUR",
    "MAP_LABELS",
    "MODALITY_COLOURS",
    "RAISES_COLOUR",
    "direction_colour",
    "format_value",
    "make_beeswarm_figure",
    "make_calibration_figure",
    "make_disparity_figure",
    "make_forecast_figure",
    "make_group_calibration_figure",
    "make_group_roc_figure",
    "make_importance_figure",
    "make_modality_figure",
    "make_overlay_figure",
    "make_pr_figure",
    "make_reliance_figure",
    "make_roc_figure",
    "make_waterfall_figure",
    "modality_range",
    "waterfall_range",
]

# Transparent where unimportant, so the scan stays readable under the map.
SALIENCY_COLOURSCALE = [
    [0.0, "rgba(0,0,0,0)"],
    [0.25, "rgba(120,28,109,0.25)"],
    [0.5, "rgba(188,55,84,0.6)"],
    [0.75, "rgba(249,142,9,0.85)"],
    [1.0, "rgba(252,255,164,1)"],
]
MAP_LABELS = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "occlusion": "Occlusion (fused risk)",
}


RAISES_COLOUR = "#d62728"
"""Red: a contribution that raises the risk (every direction chart uses it)."""
LOWERS_COLOUR = "#1f77b4"
"""Blue: a contribution that lowers the risk."""
_TEXT_PAD = 0.22  # share of the data span kept free on each side for the value labels


def direction_colour(value: float) -> str:
    """Red when ``value`` raises the risk (> 0), blue when it lowers it (<= 0).

    Examples
    --------
    >>> direction_colour(0.97), direction_colour(-0.2)
    ('#d62728', '#1f77b4')
    """
    return RAISES_COLOUR if value > 0 else LOWERS_COLOUR


def format_value(value: float, unit: str, feature: str = "") -> str:
    """Readable input value: unit and usual decimals, codes as words, ``'missing'`` for NaN.

    See :func:`fusion.display.format_feature_value`; ``feature`` (the column name) turns
    codes into words (``'male'``, ``'current'``, ``'yes'``).
    """
    return format_feature_value(feature, value, unit)


def _padded(low: float, high: float) -> tuple[float, float]:
    low, high = min(low, 0.0), max(high, 0.0)
    pad = _TEXT_PAD * max(high - low, 1e-6)
    return low - pad, high + pad


def _waterfall_points(explanation: PatientExplanation, top_n: int) -> list[float]:
    values = explanation.contributions["shap"].to_numpy(dtype=float)
    head, rest = values[:top_n], values[top_n:]
    steps = [*head.tolist(), *([float(rest.sum())] if len(rest) else [])]
    points = [0.0, explanation.base_value]
    for step in steps:
        points.append(points[-1] + step)
    return points


def waterfall_range(
    explanations: Sequence[PatientExplanation], *, top_n: int = 12
) -> tuple[float, float]:
    """One log-odds axis range that fits the waterfalls of all ``explanations`` and their labels.

    Pass it to :func:`make_waterfall_figure` so that before/after figures share one axis.
    """
    points = [p for e in explanations for p in _waterfall_points(e, top_n)]
    return _padded(min(points), max(points))


def modality_range(explanations: Sequence[PatientExplanation]) -> tuple[float, float]:
    """One log-odds axis range that fits the modality bars of all ``explanations``."""
    totals = [float(v) for e in explanations for v in e.modality_totals.values()]
    return _padded(min(totals, default=0.0), max(totals, default=0.0))


def make_waterfall_figure(
    explanation: PatientExplanation,
    *,
    top_n: int = 12,
    x_range: tuple[float, float] | None = None,
) -> go.Figure:
    """SHAP waterfall of one fused prediction, from the base value to the patient's margin.

    The ``top_n`` largest contributions are shown one by one (with the patient's value in
    words or with its unit); the rest are summed into one bar, so the bars always add up to
    the margin. Red raises the risk, blue lowers it. ``x_range`` fixes the log-odds axis (see
    :func:`waterfall_range`); by default it fits this patient with room for the value labels.
    """
    contributions = explanation.contributions
    top = contributions.head(top_n)
    rest = contributions.iloc[top_n:]
    labels = [
        f"{feature_label(str(row.feature), str(row.label))} = "
        f"{format_feature_value(str(row.feature), row.value, str(row.unit))}"
        for row in top.itertuples()
    ]
    values = top["shap"].tolist()
    if len(rest):
        labels.append(f"{len(rest)} other inputs")
        values.append(float(rest["shap"].sum()))
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
            textposition="outside",
            cliponaxis=False,
            increasing={"marker": {"color": RAISES_COLOUR}},
            decreasing={"marker": {"color": LOWERS_COLOUR}},
            totals={"marker": {"color": "#444444"}},
            connector={"line": {"color": "#bbbbbb", "width": 1}},
            hovertemplate="%{y}: %{x:+.3f} log-odds<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(
        range=list(x_range or waterfall_range([explanation], top_n=top_n)),
        zeroline=True,
        zerolinecolor="#888888",
    )
    fig.update_layout(
        title=(  # two short lines: a long one-line title is cut off in a narrow column
            "Why this risk: SHAP contributions<br>"
            f"<sup>log-odds; base {float(special.expit(explanation.base_value)):.1%} → "
            f"this patient {explanation.risk:.1%}</sup>"
        ),
        xaxis_title="log-odds (red raises risk, blue lowers it)",
        height=140 + 28 * (len(values) + 2),
        margin={"l": 10, "r": 20, "t": 60, "b": 40},
        showlegend=False,
    )
    return fig


def make_modality_figure(
    explanation: PatientExplanation, *, x_range: tuple[float, float] | None = None
) -> go.Figure:
    """One horizontal bar per modality: its summed SHAP contribution in log-odds.

    Coloured by direction as the waterfall is (red raises the risk, blue lowers it); the
    modality is the bar's label, never its colour. ``x_range`` fixes the axis (see
    :func:`modality_range`).
    """
    totals = pd.Series(explanation.modality_totals, dtype=float)
    fig = go.Figure(
        go.Bar(
            x=totals.to_numpy(),
            y=[MODALITY_LABELS.get(str(m), str(m)) for m in totals.index],
            orientation="h",
            marker_color=[direction_colour(float(v)) for v in totals.to_numpy()],
            text=[f"{v:+.2f}" for v in totals.to_numpy()],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:+.3f} log-odds<extra></extra>",
        )
    )
    fig.update_layout(
        title="Contribution per modality<br><sup>sum of SHAP values, log-odds</sup>",
        xaxis_title="log-odds (red raises risk, blue lowers it)",
        height=240,
        margin={"l": 10, "r": 20, "t": 50, "b": 40},
        showlegend=False,
    )
    fig.update_xaxes(
        range=list(x_range or modality_range([explanation])),
        zeroline=True,
        zerolinecolor="#888888",
    )
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
    name = MAP_LABELS.get(maps.method, maps.method)
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
        title=f"{name}<br><sup>over the scan, mean of {maps.n_nets} "
        f"net{'s' if maps.n_nets > 1 else ''}</sup>",
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


# ---------------------------------------------------------------- researcher's views
# Not red or blue: those mean "raises" and "lowers" the risk in the SHAP charts.
TREATMENT_COLOURS = {"none": "#7f7f7f", "standard": "#9467bd", "targeted": "#2ca02c"}
_FALLBACK_COLOURS = ("#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_CURVE_COLUMNS = ("treatment", "time", "risk", "lower", "upper", "true_risk")


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def make_forecast_figure(
    curves: pd.DataFrame,
    *,
    treatments: Sequence[str] | None = None,
    show_bands: bool = True,
    show_truth: bool = False,
    horizon: float | None = None,
    title: str = "Cumulative risk under each treatment (model estimate)",
    y_max: float | None = None,
) -> go.Figure:
    """Risk over time: one line (and optional band, optional true dashed line) per treatment.

    Parameters
    ----------
    curves : DataFrame
        Long form, one row per (treatment, time): ``treatment, time, risk, lower, upper,
        true_risk`` (``true_risk`` NaN when unknown), as in
        ``fusion.forecast.patient.PatientForecast.curves``.
    treatments : sequence of str, optional
        Treatments to draw, in this order; default all, in the order they appear.
    show_bands : bool, default=True
        Shade each treatment's uncertainty band between ``lower`` and ``upper``.
    show_truth : bool, default=False
        Add the true cumulative risk (synthetic cohorts) as a dashed line where known.
    horizon : float, optional
        Draw a dotted vertical line at this time (years).
    title : str
        Figure title.
    y_max : float, optional
        Top of the risk axis (from 0), so that figures to be compared share one axis;
        default: fit the curves.

    Raises
    ------
    ValueError
        If ``curves`` lacks a column or ``treatments`` names one not in ``curves``.
    """
    missing = [c for c in _CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(
            f"Forecast curves lack columns {missing}; pass PatientForecast.curves "
            f"(columns {list(_CURVE_COLUMNS)})."
        )
    available = list(dict.fromkeys(str(t) for t in curves["treatment"]))
    chosen = available if treatments is None else [str(t) for t in treatments]
    unknown = [t for t in chosen if t not in available]
    if unknown:
        raise ValueError(f"Unknown treatments {unknown}; the forecast has {available}.")
    fig = go.Figure()
    for index, treatment in enumerate(chosen):
        colour = TREATMENT_COLOURS.get(treatment, _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)])
        points = curves.loc[curves["treatment"] == treatment].sort_values("time")
        if show_bands:
            fig.add_trace(
                go.Scatter(
                    x=points["time"].tolist(),
                    y=points["upper"].tolist(),
                    mode="lines",
                    line={"width": 0},
                    legendgroup=treatment,
                    showlegend=False,
                    hoverinfo="skip",
                    name=f"{treatment} upper",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=points["time"].tolist(),
                    y=points["lower"].tolist(),
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_rgba(colour, 0.18),
                    legendgroup=treatment,
                    name=f"{treatment} band",
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=points["time"].tolist(),
                y=points["risk"].tolist(),
                mode="lines",
                line={"color": colour, "width": 3},
                legendgroup=treatment,
                name=treatment,
                hovertemplate=f"{treatment}: %{{y:.1%}} at %{{x:.1f}} y<extra></extra>",
            )
        )
        truth = points.dropna(subset=["true_risk"])
        if show_truth and len(truth):
            fig.add_trace(
                go.Scatter(
                    x=truth["time"].tolist(),
                    y=truth["true_risk"].tolist(),
                    mode="lines",
                    line={"color": colour, "width": 2, "dash": "dash"},
                    legendgroup=treatment,
                    name=f"{treatment} (true)",
                    hovertemplate=f"{treatment} true: %{{y:.1%}} at %{{x:.1f}} y<extra></extra>",
                )
            )
    if horizon is not None:
        fig.add_vline(
            x=horizon,
            line={"dash": "dot", "color": "#888888"},
            annotation_text=f"horizon {horizon:g} y",
            annotation_position="top left",
        )
    fig.update_layout(
        title=title,
        xaxis_title="Years from baseline",
        yaxis_title="Cumulative risk of the event",
        yaxis_tickformat=".0%",
        yaxis_rangemode="tozero",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"groupclick": "togglegroup"},
    )
    if y_max is not None:
        fig.update_yaxes(range=[0.0, y_max])
    return fig
