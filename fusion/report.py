"""Exports of a bias audit: the metrics table as CSV and a self-contained HTML report.

Owns the text formats handed to an ethics board. Suppressed cells carry the marker of
:meth:`fusion.fairness.FairnessReport.table` in both formats. Figures are any objects with
Plotly's ``to_html``; the first one inlines plotly.js so the file opens offline. Streamlit
is never imported here.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import pandas as pd

from fusion.fairness import FairnessReport

__all__ = ["HtmlFigure", "audit_csv", "audit_html"]


class HtmlFigure(Protocol):
    """Anything that renders itself as an HTML fragment, like ``plotly.graph_objects.Figure``."""

    def to_html(self, *, full_html: bool, include_plotlyjs: bool | str) -> str:
        """HTML of the figure."""
        ...


def audit_csv(report: FairnessReport) -> str:
    """The metrics table (one row per group, suppressed cells marked) as CSV text."""
    return report.table().to_csv(index=False)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="")


def audit_html(
    report: FairnessReport,
    *,
    model_version: str,
    created: datetime,
    figures: Mapping[str, HtmlFigure] | None = None,
) -> str:
    """A self-contained HTML report of one audit: settings, summary, metrics table, figures.

    Parameters
    ----------
    report : FairnessReport
        The audit.
    model_version : str
        The model the audit describes.
    created : datetime
        Timestamp printed in the report.
    figures : mapping of str to figure, optional
        Title -> Plotly figure; plotly.js is inlined once, with the first figure.

    Returns
    -------
    str
        One HTML document with no external resources.
    """
    settings = pd.DataFrame(
        {
            "setting": [
                "model version",
                "created",
                "sensitive attributes",
                "patients (test split)",
                "decision threshold",
                "reference group",
                "smallest group shown",
                "bootstrap resamples",
                "random state",
            ],
            "value": [
                model_version,
                created.isoformat(timespec="seconds"),
                " x ".join(report.attributes),
                str(report.n_total),
                f"{report.threshold:.3f}",
                report.reference,
                str(report.min_cell),
                str(report.n_resamples),
                str(report.random_state),
            ],
        }
    )
    summary = report.summary.reset_index(names="disparity").round(3)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Bias audit {html.escape(model_version)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:12px}td,th{padding:2px 6px;border-bottom:1px solid #ddd}</style>",
        "</head><body>",
        f"<h1>Bias audit of {html.escape(model_version)}</h1>",
        "<h2>Settings</h2>",
        _table(settings),
        "<h2>Disparities between shown groups</h2>",
        _table(summary),
        "<h2>Metrics by group (95% bootstrap CIs; differences against the reference)</h2>",
        f"<p>Groups with fewer than {report.min_cell} patients are suppressed, and so is the "
        "next-smallest group when only one is, so that no suppressed size follows from the "
        "total. A flag marks a difference whose CI excludes 0.</p>",
        _table(report.table(as_text=True)),
    ]
    for index, (title, figure) in enumerate((figures or {}).items()):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append("</body></html>")
    return "\n".join(parts)
