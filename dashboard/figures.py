"""Pure Plotly figure builders: records and arrays in, ``go.Figure`` out; no ``st`` here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fusion.fairness import FairnessReport
from fusion.service import ImageMaps, PatientExplanation

__all__ = [
    "MAP_LABELS",
    "MODALITY_COLOURS",
    "format_value",
    "make_beeswarm_figure",
    "make_calibration_figure",
    "make_disparity_figure",
    "make_group_calibration_figure",
    "make_group_roc_figure",
    "make_importance_figure",
    "make_modality_figure",
    "make_overlay_figure",
    "make_pr_figure",
    "make_reliance_figure",
    "make_roc_figure",
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
MAP_LABELS = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "occlusion": "Occlusion (fused risk)",
}
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
        title=f"{name} over the scan (mean of {maps.n_nets} net{'s' if maps.n_nets > 1 else ''})",
        height=460,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


# ---------------------------------------------------------------- issue 4: researcher's views
def make_roc_figure(curves: pd.DataFrame) -> go.Figure:
    """ROC curves of several models (``model, fpr, tpr`` rows) over the chance diagonal."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}
        )
    )
    for model, points in curves.groupby("model", sort=False):
        fig.add_trace(go.Scatter(x=points["fpr"], y=points["tpr"], mode="lines", name=str(model)))
    return _curve_layout(
        fig, "ROC curves (test split)", "False positive rate", "True positive rate"
    )


def make_pr_figure(pr: pd.DataFrame, *, prevalence: float) -> go.Figure:
    """Precision-recall curve (``recall, precision``) with the prevalence as the chance line."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[prevalence, prevalence],
            mode="lines",
            name=f"chance (prevalence {prevalence:.1%})",
            line={"dash": "dot", "color": "grey"},
        )
    )
    fig.add_trace(go.Scatter(x=pr["recall"], y=pr["precision"], mode="lines", name="fusion"))
    return _curve_layout(
        fig, "Precision-recall (test split)", "Recall (sensitivity)", "Precision (PPV)"
    )


def make_calibration_figure(calibration: pd.DataFrame, *, name: str = "fusion") -> go.Figure:
    """Reliability diagram: observed event rate against mean risk per bin (marker size ~ n)."""
    fig = _with_calibration_diagonal()
    sizes = 6 + 24 * np.sqrt(calibration["n"] / max(int(calibration["n"].max()), 1))
    fig.add_trace(
        go.Scatter(
            x=calibration["mean_risk"],
            y=calibration["observed"],
            mode="lines+markers",
            marker={"size": sizes},
            name=name,
            customdata=calibration["n"],
            hovertemplate="mean risk %{x:.2f}<br>observed %{y:.2f}<br>n %{customdata}",
        )
    )
    return _calibration_layout(fig, "Calibration (test split)")


def make_disparity_figure(report: FairnessReport, metric: str) -> go.Figure:
    """Forest plot of one metric per shown group with its 95% CI; the reference is a line.

    Suppressed groups are left out (their values are never drawn); flagged differences
    (CI of the difference excludes 0) are red.
    """
    if metric not in report.difference.columns:
        raise ValueError(f"Unknown metric {metric!r}; choose one of the report's metrics.")
    shown = report.by_group.loc[~report.by_group["suppressed"]]
    flags = report.difference.loc[shown.index, f"{metric}_flag"]
    fig = go.Figure(
        go.Scatter(
            x=shown[metric],
            y=list(shown.index),
            mode="markers",
            marker={"size": 10, "color": np.where(flags, "#d62728", "#1f77b4").tolist()},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (shown[f"{metric}_high"] - shown[metric]).tolist(),
                "arrayminus": (shown[metric] - shown[f"{metric}_low"]).tolist(),
            },
            name=metric,
        )
    )
    reference = report.by_group.loc[report.reference, metric]
    if not pd.isna(reference):
        fig.add_vline(x=float(reference), line_dash="dot", line_color="grey")
    hidden = int(report.by_group["suppressed"].sum())
    fig.update_layout(
        title=f"{metric} by group (95% CI; reference {report.reference}"
        + (f"; {hidden} suppressed" if hidden else "")
        + ")",
        xaxis_title=metric,
        height=max(260, 60 + 34 * len(shown)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        yaxis={"autorange": "reversed"},
    )
    return fig


def make_importance_figure(modalities: pd.Series) -> go.Figure:
    """Global importance: mean |SHAP| (log-odds) summed per modality, one bar each."""
    names = [str(m) for m in modalities.index]
    fig = go.Figure(
        go.Bar(
            x=modalities.tolist(),
            y=[MODALITY_LABELS.get(m, m) for m in names],
            orientation="h",
            marker_color=[MODALITY_COLOURS.get(m, "#7f7f7f") for m in names],
        )
    )
    fig.update_layout(
        title="Global importance per modality (mean |SHAP|, test split)",
        xaxis_title="mean |SHAP| summed over the modality's inputs (log-odds)",
        yaxis={"autorange": "reversed"},
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def make_beeswarm_figure(beeswarm: pd.DataFrame) -> go.Figure:
    """SHAP beeswarm of the top features: one dot per patient, colour = the value's rank."""
    fig = go.Figure()
    labels = list(dict.fromkeys(beeswarm["label"]))
    rng = np.random.default_rng(0)  # vertical jitter only, fixed for stable figures
    for position, label in enumerate(labels):
        rows = beeswarm.loc[beeswarm["label"] == label]
        fig.add_trace(
            go.Scatter(
                x=rows["shap"],
                y=position + rng.uniform(-0.3, 0.3, len(rows)),
                mode="markers",
                name=label,
                showlegend=False,
                marker={
                    "size": 5,
                    "color": rows["value_rank"],
                    "colorscale": "RdBu_r",
                    "cmin": 0,
                    "cmax": 1,
                    "showscale": position == 0,
                    "colorbar": {
                        "title": "value (rank)",
                        "tickvals": [0, 1],
                        "ticktext": ["low", "high"],
                    },
                },
                customdata=rows["value"],
                hovertemplate=f"{label}<br>value %{{customdata:.3g}}<br>SHAP %{{x:.3f}}",
            )
        )
    fig.update_layout(
        title="SHAP beeswarm of the top inputs (test split)",
        xaxis_title="SHAP value (log-odds)",
        yaxis={"tickvals": list(range(len(labels))), "ticktext": labels, "autorange": "reversed"},
        height=max(300, 60 + 36 * len(labels)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def make_reliance_figure(reliance: pd.DataFrame) -> go.Figure:
    """Mean |SHAP| per modality by group (grouped bars); suppressed groups are left out."""
    shown = reliance.loc[~reliance["suppressed"]]
    fig = go.Figure()
    for modality in [c for c in reliance.columns if c in MODALITY_COLOURS]:
        fig.add_trace(
            go.Bar(
                x=list(shown.index),
                y=shown[modality].tolist(),
                name=MODALITY_LABELS.get(modality, modality),
                marker_color=MODALITY_COLOURS[modality],
            )
        )
    fig.update_layout(
        title="Reliance on each modality by group (mean |SHAP|)",
        barmode="group",
        yaxis_title="mean |SHAP| (log-odds)",
        height=360,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def make_group_roc_figure(roc: pd.DataFrame) -> go.Figure:
    """ROC curve of each shown group (``group, fpr, tpr`` rows)."""
    fig = make_roc_figure(roc.rename(columns={"group": "model"}))
    fig.update_layout(title="ROC by group (test split)")
    return fig


def make_group_calibration_figure(calibration: pd.DataFrame) -> go.Figure:
    """Reliability curve of each shown group (bins of at least the smallest cell size)."""
    fig = _with_calibration_diagonal()
    for group, bins in calibration.groupby("group", sort=False):
        fig.add_trace(
            go.Scatter(
                x=bins["mean_risk"].tolist(),
                y=bins["observed"].tolist(),
                mode="lines+markers",
                name=str(group),
            )
        )
    return _calibration_layout(fig, "Calibration by group (test split)")


def _curve_layout(
    fig: go.Figure, title: str, x_title: str, y_title: str, *, unit_square: bool = False
) -> go.Figure:
    """Shared layout of the curve plots (ROC, PR, calibration); optionally on [0, 1]^2."""
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    if unit_square:
        fig.update_layout(xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig


def _with_calibration_diagonal() -> go.Figure:
    """A new figure holding the dotted line of perfect calibration."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfect calibration",
            line={"dash": "dot", "color": "grey"},
        )
    )
    return fig


def _calibration_layout(fig: go.Figure, title: str) -> go.Figure:
    """Calibration plots: predicted vs observed risk on the unit square."""
    return _curve_layout(fig, title, "Mean predicted risk", "Observed event rate", unit_square=True)
