"""The performance page's figures: curves, calibration, SHAP importance and the beeswarm.

Owns :func:`performance_figures` (every chart the performance page draws, by chart key, from a
:class:`fusion.evaluation.performance.PerformanceReport` and a
:class:`fusion.evaluation.importance.ShapSummary`) and the two SHAP builders the audit export
does not need. In ``fusion`` so that ``riskfusion bench`` can measure what the page sends to
the browser; ``dashboard.figures`` re-exports the builders. Must not import streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from data.vocabulary import MODALITY_LABELS
from fusion.evaluation.importance import MAX_BEESWARM_POINTS, ShapSummary, sample_beeswarm
from fusion.evaluation.performance import PerformanceReport
from fusion.reports.figures import (
    MODALITY_COLOURS,
    VALUE_RANK_COLORBAR,
    make_calibration_figure,
    make_pr_figure,
    make_roc_figure,
    make_shap_bins_figure,
)

__all__ = [
    "make_beeswarm_figure",
    "make_importance_figure",
    "performance_figures",
]


def performance_figures(
    report: PerformanceReport, shap: ShapSummary, *, per_patient: bool
) -> dict[str, go.Figure]:
    """Every figure of the performance page, keyed ``roc, pr, calibration, importance, beeswarm``.

    Parameters
    ----------
    report : PerformanceReport
        The page's report (a researcher's already drawn through the allowed cuts).
    shap : ShapSummary
        Global SHAP importance of the test split.
    per_patient : bool
        Draw the beeswarm (one dot per sampled patient: an admin) rather than the mean SHAP
        per value bin (a researcher).

    Returns
    -------
    dict of str to go.Figure
        In the page's order.
    """
    events = report.confusion.loc[report.confusion.index[-2], "total"]
    prevalence = (
        float(report.pr["precision"].iloc[0]) if len(report.pr) else float(events / report.n)
    )
    return {
        "roc": make_roc_figure(report.curves),
        "pr": make_pr_figure(report.pr, prevalence=prevalence),
        "calibration": make_calibration_figure(report.calibration),
        "importance": make_importance_figure(shap.modalities),
        "beeswarm": (
            make_beeswarm_figure(shap.beeswarm, n_patients=shap.n_patients)
            if per_patient
            else make_shap_bins_figure(shap.aggregates_only().bins)
        ),
    }


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
        title="Global importance per modality<br><sup>mean |SHAP|, test split</sup>",
        xaxis_title="mean |SHAP| per patient (log-odds)",
        yaxis={"autorange": "reversed"},
        height=300,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def make_beeswarm_figure(beeswarm: pd.DataFrame, *, n_patients: int | None = None) -> go.Figure:
    """SHAP beeswarm of the top features: one dot per patient, colour = the value's rank.

    At most :data:`fusion.evaluation.importance.MAX_BEESWARM_POINTS` dots per feature
    (:func:`fusion.evaluation.importance.sample_beeswarm`); the title says when a sample of
    the ``n_patients`` (default: the rows of one feature) is shown.
    """
    fig = go.Figure()
    labels = list(beeswarm["label"].unique())
    rows_per_feature = int(beeswarm["label"].value_counts().max()) if labels else 0
    total = n_patients or rows_per_feature
    beeswarm = sample_beeswarm(beeswarm)
    shown = min(rows_per_feature, MAX_BEESWARM_POINTS)
    title = "SHAP beeswarm of the top inputs (test split)"
    if shown < total:
        title += f"<br><sup>{shown:,} of {total:,} patients, a sample stratified by value</sup>"
    rng = np.random.default_rng(0)  # vertical jitter only, fixed for stable figures
    # Single precision (7 digits, far below a pixel and the hover's 3): plotly sends numeric
    # arrays as binary, half the bytes of double precision.
    for position, label in enumerate(labels):
        rows = beeswarm.loc[beeswarm["label"] == label]
        fig.add_trace(
            go.Scatter(
                x=rows["shap"].to_numpy(dtype=np.float32),
                y=(position + rng.uniform(-0.3, 0.3, len(rows))).astype(np.float32),
                mode="markers",
                name=label,
                showlegend=False,
                marker={
                    "size": 5,
                    "color": rows["value_rank"].to_numpy(dtype=np.float32),
                    "colorscale": "Viridis",
                    "cmin": 0,
                    "cmax": 1,
                    "showscale": position == 0,
                    "colorbar": VALUE_RANK_COLORBAR,
                },
                customdata=rows["value"].to_numpy(dtype=np.float32),
                hovertemplate=f"{label}<br>value %{{customdata:.3g}}<br>SHAP %{{x:.3f}}",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="SHAP value (log-odds)",
        yaxis={"tickvals": list(range(len(labels))), "ticktext": labels, "autorange": "reversed"},
        height=max(300, 60 + 36 * len(labels)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig
