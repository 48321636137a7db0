"""Pure Plotly builders of the researcher's figures, shared by the dashboard and the reports.

Owns the performance and bias-audit figures (ROC, PR, calibration, disparity forest plot,
reliance by group, ROC and calibration by group): records and DataFrames in, ``go.Figure``
out. They live in ``fusion`` (not ``dashboard``) because :mod:`fusion.reports.audit_report` embeds
them in
the HTML report of ``riskfusion audit``, which must not import the dashboard;
``dashboard.figures`` re-exports them. Must not import streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from data.vocabulary import MODALITY_LABELS
from fusion.evaluation.fairness import FairnessReport

__all__ = [
    "MODALITY_COLOURS",
    "VALUE_RANK_COLORBAR",
    "make_calibration_figure",
    "make_disparity_figure",
    "make_group_calibration_figure",
    "make_group_roc_figure",
    "make_pr_figure",
    "make_reliance_figure",
    "make_roc_figure",
    "make_shap_bins_figure",
    "with_calibration_diagonal",
]

# Never red or blue: those mean "raises" and "lowers" the risk in every SHAP chart.
MODALITY_COLOURS: dict[str, str] = {
    "demographics": "#8c6d31",
    "ehr": "#9467bd",
    "genomics": "#2ca02c",
    "imaging": "#ff7f0e",
}


VALUE_RANK_COLORBAR = {"title": "value (rank)", "tickvals": [0, 1], "ticktext": ["low", "high"]}
"""Colour bar of an input's value rank (0 = lowest, 1 = highest) in the SHAP value charts."""


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


def make_shap_bins_figure(bins: pd.DataFrame) -> go.Figure:
    """Aggregate beeswarm: mean SHAP per value bin of each top input (no patient drawn).

    ``bins`` has ``label, bin, n, mean_shap, value_rank, suppressed`` rows (as
    :attr:`fusion.evaluation.importance.ShapSummary.bins`); one dot per shown bin, coloured by the
    bin's
    mean value rank (low to high), sized by its patients; suppressed bins are left out and
    counted in the title.
    """
    fig = go.Figure()
    hidden = (
        bins["suppressed"].to_numpy(dtype=bool)
        if "suppressed" in bins
        else np.zeros(len(bins), dtype=bool)
    )
    shown = bins.loc[~hidden]
    labels = list(dict.fromkeys(bins["label"])) if "label" in bins else []
    largest = float(shown["n"].max()) if len(shown) else 1.0
    for position, label in enumerate(labels):
        rows = shown.loc[shown["label"] == label]
        fig.add_trace(
            go.Scatter(
                x=rows["mean_shap"].tolist(),
                y=[position] * len(rows),
                mode="markers",
                name=label,
                showlegend=False,
                marker={
                    "size": (6 + 14 * np.sqrt(rows["n"] / max(largest, 1.0))).tolist(),
                    "color": rows["value_rank"].tolist(),
                    # Not red/blue: those mean "raises" / "lowers" the risk in the SHAP charts.
                    "colorscale": "Viridis",
                    "cmin": 0,
                    "cmax": 1,
                    "showscale": position == 0,
                    "colorbar": VALUE_RANK_COLORBAR,
                },
                customdata=rows["n"].tolist(),
                hovertemplate=f"{label}<br>mean SHAP %{{x:.3f}}<br>n %{{customdata:.0f}}",
            )
        )
    title = "Mean SHAP by value quintile of the top inputs (test split)"
    if hidden.any():
        title += f"<br><sup>{int(hidden.sum())} small bin(s) suppressed</sup>"
    fig.update_layout(
        title=title,
        xaxis_title="mean SHAP value (log-odds)",
        yaxis={"tickvals": list(range(len(labels))), "ticktext": labels, "autorange": "reversed"},
        height=max(300, 60 + 36 * len(labels)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def make_calibration_figure(calibration: pd.DataFrame, *, name: str = "fusion") -> go.Figure:
    """Reliability diagram: observed event rate against mean risk per bin (marker size ~ n).

    Bins marked ``suppressed`` (small cells) are left out and counted in the title.
    """
    fig = with_calibration_diagonal()
    hidden = (
        calibration["suppressed"].to_numpy(dtype=bool)
        if "suppressed" in calibration
        else np.zeros(len(calibration), dtype=bool)
    )
    shown = calibration.loc[~hidden]
    sizes = 6 + 24 * np.sqrt(shown["n"] / max(float(shown["n"].max()) if len(shown) else 1, 1))
    fig.add_trace(
        go.Scatter(
            x=shown["mean_risk"],
            y=shown["observed"],
            mode="lines+markers",
            marker={"size": sizes},
            name=name,
            customdata=shown["n"],
            hovertemplate="mean risk %{x:.2f}<br>observed %{y:.2f}<br>n %{customdata}",
        )
    )
    title = "Calibration (test split)"
    if hidden.any():
        title += f"<br><sup>{int(hidden.sum())} small bin(s) suppressed</sup>"
    return _calibration_layout(fig, title)


def make_disparity_figure(report: FairnessReport, metric: str) -> go.Figure:
    """Forest plot of one metric per shown group with its 95% CI; the reference is a line.

    Suppressed groups are left out (their values are never drawn); flagged differences
    (adjusted p-value below the report's alpha, :mod:`fusion.evaluation.flags`) are red.
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
    reference = float(
        report.by_group[metric].to_numpy(dtype=np.float64)[
            report.by_group.index.get_loc(report.reference)
        ]
    )
    if not np.isnan(reference):
        fig.add_vline(x=reference, line_dash="dot", line_color="grey")
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
    """Reliability curve of each shown group; suppressed bins are left out and counted.

    ``calibration`` has ``group, mean_risk, observed, n`` rows and optionally ``suppressed``
    (as :func:`fusion.evaluation.groups.calibration_by_group` returns them). The title says how
    many
    bins are hidden, and the hover shows each plotted bin's ``n``.
    """
    fig = with_calibration_diagonal()
    hidden = (
        calibration["suppressed"].to_numpy(dtype=bool)
        if "suppressed" in calibration
        else np.zeros(len(calibration), dtype=bool)
    )
    for group, bins in calibration.loc[~hidden].groupby("group", sort=False):
        fig.add_trace(
            go.Scatter(
                x=bins["mean_risk"].tolist(),
                y=bins["observed"].tolist(),
                mode="lines+markers",
                name=str(group),
                customdata=bins["n"].tolist(),
                hovertemplate="mean risk %{x:.2f}<br>observed %{y:.2f}<br>n %{customdata}",
            )
        )
    title = "Calibration by group (test split)"
    if hidden.any():
        title += f"<br><sup>{int(hidden.sum())} small bin(s) suppressed</sup>"
    return _calibration_layout(fig, title)


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


def with_calibration_diagonal() -> go.Figure:
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
