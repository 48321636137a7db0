"""Exports of a bias audit: the metrics table as CSV and a self-contained HTML report.

Owns the text formats handed to an ethics board. Suppressed cells carry the marker of
:meth:`fusion.evaluation.fairness.FairnessReport.table` in both formats. The report's figures come
from
:func:`audit_figures` (builders of :mod:`fusion.reports.figures`, the same the dashboard shows);
the first figure inlines plotly.js once, so the file opens offline with no external resource.
Streamlit and the dashboard are never imported here.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from data.synthetic import DEMO_BIAS
from fusion.evaluation.fairness import FairnessReport
from fusion.reports.exports import safe_csv
from fusion.reports.figures import (
    make_disparity_figure,
    make_group_calibration_figure,
    make_group_roc_figure,
    make_reliance_figure,
)

__all__ = [
    "DISPARITY_FIGURES",
    "HtmlFigure",
    "audit_csv",
    "audit_figures",
    "audit_html",
    "comparisons_csv",
    "demo_bias_note",
    "flag_rule",
]

DISPARITY_FIGURES: tuple[str, ...] = ("auroc", "tpr", "fpr", "calibration_in_the_large")
"""Metrics drawn as forest plots in the HTML report."""


class HtmlFigure(Protocol):
    """Anything that renders itself as an HTML fragment, like ``plotly.graph_objects.Figure``."""

    def to_html(self, *, full_html: bool, include_plotlyjs: bool | str) -> str:
        """HTML of the figure."""
        ...


def demo_bias_note(build: Mapping[str, Any]) -> str | None:
    """One sentence on the bias injected into the synthetic demo, or None if not a demo build.

    Parameters
    ----------
    build : mapping
        The build parameters of the model (``RiskService.build_params()``); a demo build has
        ``bias`` (builds from before the switch existed are reported as unknown); a model
        trained on an imported cohort has ``source`` instead.

    Returns
    -------
    str or None

    Examples
    --------
    >>> demo_bias_note({"n_patients": 2000, "bias": False})
    'Synthetic demo built without injected bias (riskfusion demo --no-bias).'
    >>> demo_bias_note({}) is None
    True
    >>> demo_bias_note({"source": ["import:example"]}) is None  # an imported cohort
    True
    """
    if not build or ("source" in build and "bias" not in build):  # not a synthetic demo
        return None
    if "bias" not in build:
        return "Synthetic demo built before the bias switch existed: injected bias unknown."
    if not build["bias"]:
        return "Synthetic demo built without injected bias (riskfusion demo --no-bias)."
    share = f"{DEMO_BIAS.rare_share:.0%}"
    return (
        "Synthetic demo with a deliberately injected bias (docs/data.md): "
        f"{DEMO_BIAS.degraded_site}'s scanner shows lesions at "
        f"{DEMO_BIAS.lesion_contrast:.0%} of their contrast, with "
        f"{DEMO_BIAS.blur_factor:g}x blur and {DEMO_BIAS.noise_factor:g}x noise, and "
        f"{DEMO_BIAS.rare_ethnicity} patients are under-recruited ({share} of the cohort). "
        "Rebuild with `riskfusion demo --rebuild --no-bias` to see it disappear."
    )


def audit_figures(
    report: FairnessReport,
    *,
    roc_by_group: pd.DataFrame | None = None,
    calibration_by_group: pd.DataFrame | None = None,
    reliance: pd.DataFrame | None = None,
    metrics: Sequence[str] = DISPARITY_FIGURES,
) -> dict[str, HtmlFigure]:
    """The figures of the HTML report, titled, in report order.

    Parameters
    ----------
    report : FairnessReport
        The audit (forest plots of ``metrics`` with their CIs; suppressed groups left out).
    roc_by_group, calibration_by_group : DataFrame, optional
        The curves of :func:`fusion.evaluation.groups.group_curves` for the same groups
        (suppressed
        groups and bins already left out).
    reliance : DataFrame, optional
        Mean |SHAP| per modality by group (:func:`fusion.evaluation.groups.modality_reliance`).
    metrics : sequence of str, default=DISPARITY_FIGURES
        Metrics drawn as forest plots.

    Returns
    -------
    dict of str to plotly.graph_objects.Figure
    """
    figures: dict[str, HtmlFigure] = {
        f"Disparity: {metric} by group": make_disparity_figure(report, metric) for metric in metrics
    }
    if roc_by_group is not None:
        figures["ROC by group"] = make_group_roc_figure(roc_by_group)
    if calibration_by_group is not None:
        figures["Calibration by group"] = make_group_calibration_figure(calibration_by_group)
    if reliance is not None:
        figures["Reliance on each modality by group"] = make_reliance_figure(reliance)
    return figures


def audit_csv(report: FairnessReport) -> str:
    """The metrics table as CSV text: one row per group, numbers numeric.

    Suppressed and hidden cells are empty; ``suppressed`` and ``suppressed_reason`` say why
    (:meth:`fusion.evaluation.fairness.FairnessReport.table`).
    """
    return safe_csv(report.table())


def comparisons_csv(report: FairnessReport) -> str:
    """The compact table as CSV text: one row per tested difference, flags first."""
    return safe_csv(report.comparisons())


def flag_rule(report: FairnessReport) -> str:
    """One paragraph stating how the report's flags were decided (pages and reports).

    Examples
    --------
    >>> import pandas as pd
    >>> from fusion.evaluation.fairness import audit
    >>> report = audit([0, 1] * 30, [0.3, 0.7] * 30, pd.DataFrame({"sex": ["F", "M"] * 30}),
    ...                threshold=0.5, n_resamples=20, min_cell=0)
    >>> flag_rule(report).split(":")[0]
    'Differences are group minus reference (F)'
    """
    adjustment = (
        "Holm (the chance of any false flag in this audit is at most alpha)"
        if report.method == "holm"
        else "Benjamini-Hochberg (at most alpha of the flags are expected to be false)"
    )
    return (
        f"Differences are group minus reference ({report.reference}): signed, with "
        f"{1 - report.alpha:.0%} CIs from the paired-bootstrap standard error "
        f"({report.n_resamples} resamples). Each difference is tested (two-sided Wald test on "
        "the bootstrap standard error; prevalence is case mix and is not tested) and the "
        f"p-values of all {report.n_comparisons} comparisons shown are adjusted together by "
        f"{adjustment}. Flagged: adjusted p < {report.alpha:g}. Not flagged and the minimum "
        f"detectable difference (80% power at alpha / {max(report.n_comparisons, 1)}) above "
        f"{report.margin:g}: insufficient evidence (too few patients to tell). Otherwise: no "
        "difference found."
    )


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, na_rep="")


def audit_html(
    report: FairnessReport,
    *,
    model_version: str,
    created: datetime,
    figures: Mapping[str, HtmlFigure] | None = None,
    context: Mapping[str, str] | None = None,
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
        Title -> Plotly figure (e.g. :func:`audit_figures`); plotly.js is inlined once, with
        the first figure, so the file needs no network.
    context : mapping of str to str, optional
        More settings rows, e.g. ``{"cohort": "synthetic demo, injected bias on"}``.

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
                "flag adjustment",
                "alpha",
                "difference that matters (margin)",
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
                "Holm" if report.method == "holm" else "Benjamini-Hochberg",
                f"{report.alpha:g}",
                f"{report.margin:g}",
            ],
        }
    )
    if context:
        extra = pd.DataFrame({"setting": list(context), "value": list(context.values())})
        settings = pd.concat([settings, extra], ignore_index=True)
    summary = report.summary.reset_index(names="disparity").round(3)
    states = report.group_states().round(3)
    comparisons = report.comparisons().round(4)
    nothing = report.nothing_compared
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
        "<h2>Flags</h2>",
        f"<p><strong>{html.escape(nothing)}</strong></p>"
        if nothing is not None
        else f"<p>{html.escape(flag_rule(report))}</p>",
        _table(states),
        "<h2>Differences from the reference, flags first</h2>",
        _table(comparisons),
        "<h2>Disparities between shown groups</h2>",
        "<p>value: the largest gap between any two shown groups (fairlearn's between-groups "
        "difference, no CI); beside it the largest signed difference from the reference "
        "behind it, with its CI and adjusted flag.</p>",
        _table(summary),
        "<h2>Metrics by group (95% bootstrap CIs; differences against the reference)</h2>",
        f"<p>Groups with fewer than {report.min_cell} patients are suppressed, and so are the "
        "groups needed to keep their sizes from following from the total or from the tables "
        "of fewer attributes; calibration bins are suppressed the same way. A shown group's "
        "rate is suppressed where, with the group's n, it would give away a count under "
        f"{report.min_cell} (events, flagged patients or a confusion-matrix cell, 0 included). "
        "Flags as above (adjusted p-value below alpha).</p>",
        '<div style="overflow-x:auto">',
        _table(report.table(as_text=True)),
        "</div>",
    ]
    for index, (title, figure) in enumerate((figures or {}).items()):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append("</body></html>")
    return "\n".join(parts)
