"""Pure Plotly builders of the clinical-usefulness figures: decision curves, smooth calibration.

Frames of :mod:`fusion.service.usefulness` in, ``go.Figure`` out, shared by the performance page,
the bias audit page and the exported reports. Group colours are explicit (never red or blue,
which mean "raises"/"lowers" the risk in the SHAP charts), so a figure embedded in an HTML file
keeps them. Must not import streamlit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from fusion.reports.exports import safe_csv
from fusion.reports.figures import with_calibration_diagonal

if TYPE_CHECKING:
    from fusion.service.usefulness import UsefulnessView

__all__ = [
    "GROUP_COLOURS",
    "make_decision_curve_figure",
    "make_smooth_calibration_figure",
    "usefulness_figures",
    "usefulness_tables",
]


GROUP_COLOURS: tuple[str, ...] = (
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
"""One colour per group, cycled: no red, no blue."""


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _band(fig: go.Figure, x: pd.Series, low: pd.Series, high: pd.Series, colour: str) -> None:
    """A shaded band between ``low`` and ``high`` (no legend entry, no hover)."""
    fig.add_trace(
        go.Scatter(
            x=[*x, *x[::-1]],
            y=[*high, *low[::-1]],
            fill="toself",
            fillcolor=_rgba(colour, 0.15),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
        )
    )


def make_decision_curve_figure(decision: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Net benefit of the model per group against treating all and treating none.

    ``decision`` has the columns of :func:`fusion.evaluation.net_benefit.decision_curves_by_group`.
    One group: the model's curve with its band, treat-all with its band, treat-none at 0. Several:
    one curve per group (bands included), without treat-all (it differs by group's prevalence).
    """
    fig = go.Figure()
    groups = list(dict.fromkeys(decision["group"]))
    for index, group in enumerate(groups):
        rows = decision[decision["group"] == group].reset_index(drop=True)
        colour = GROUP_COLOURS[index % len(GROUP_COLOURS)]
        if rows["low"].notna().all():
            _band(fig, rows["threshold"], rows["low"], rows["high"], colour)
        name = "model" if len(groups) == 1 else str(group)
        fig.add_trace(
            go.Scatter(
                x=rows["threshold"],
                y=rows["net_benefit"],
                mode="lines",
                name=name,
                line={"color": colour, "width": 2.5},
                hovertemplate="threshold %{x:.2f}<br>net benefit %{y:.3f}",
            )
        )
        if len(groups) == 1:
            if rows["treat_all_low"].notna().all():
                _band(
                    fig, rows["threshold"], rows["treat_all_low"], rows["treat_all_high"], "#7f7f7f"
                )
            fig.add_trace(
                go.Scatter(
                    x=rows["threshold"],
                    y=rows["treat_all"],
                    mode="lines",
                    name="treat all",
                    line={"color": "#7f7f7f", "dash": "dash"},
                )
            )
    if len(decision):
        fig.add_trace(
            go.Scatter(
                x=[decision["threshold"].min(), decision["threshold"].max()],
                y=[0, 0],
                mode="lines",
                name="treat none",
                line={"color": "black", "dash": "dot", "width": 1},
            )
        )
        top = float(decision[["net_benefit", "treat_all"]].max().max())
        fig.update_yaxes(range=[-0.05 * max(top, 0.01), 1.15 * max(top, 0.01)])
    fig.update_layout(
        title=title or "Decision curve (test split)",
        xaxis_title="Threshold probability",
        yaxis_title="Net benefit",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def make_smooth_calibration_figure(curves: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Smoothed calibration curve of each group with its bootstrap band, over the diagonal.

    ``curves`` has ``group, predicted, observed, low, high`` rows
    (:func:`fusion.evaluation.calibration_stats.calibration_by_group_statistics`).
    """
    fig = with_calibration_diagonal()
    for index, group in enumerate(dict.fromkeys(curves["group"])):
        rows = curves[curves["group"] == group].reset_index(drop=True)
        colour = GROUP_COLOURS[index % len(GROUP_COLOURS)]
        if rows["low"].notna().all():
            _band(fig, rows["predicted"], rows["low"], rows["high"], colour)
        fig.add_trace(
            go.Scatter(
                x=rows["predicted"],
                y=rows["observed"],
                mode="lines",
                name=str(group),
                line={"color": colour, "width": 2.5},
                hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}",
            )
        )
    fig.update_layout(
        title=title or "Smoothed calibration (test split)",
        xaxis_title="Predicted risk",
        yaxis_title="Observed risk (smoothed)",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def usefulness_figures(view: UsefulnessView) -> dict[str, go.Figure]:
    """The two figures of a usefulness view, by title, for an exported report."""
    if view.decision.empty:
        return {}
    scope = "by group" if view.by else "all test patients"
    return {
        f"Decision curve ({scope})": make_decision_curve_figure(view.decision),
        f"Smoothed calibration ({scope})": make_smooth_calibration_figure(view.calibration_curves),
    }


def usefulness_tables(view: UsefulnessView) -> dict[str, str]:
    """The decision curve and the calibration statistics as CSV text, by file-name suffix.

    Numeric columns stay numeric (empty where not computable) so a researcher can analyse them.
    """
    return {
        "decision-curve": safe_csv(view.decision, index=False),
        "calibration": safe_csv(view.calibration, index=True, index_label="group"),
    }
