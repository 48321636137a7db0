"""Tables of a bias audit a researcher can analyse: metrics by group, comparisons, group states.

Owns the frames built from a :class:`fusion.evaluation.fairness.FairnessReport`: the wide metrics
table (:func:`metrics_table`: numeric columns stay numeric, ``n`` an integer, suppressed and
hidden cells empty with a ``suppressed`` flag and a ``suppressed_reason``), the compact long
table of tested differences (:func:`comparisons_table`, flags first) and one state per group
(:func:`group_states`), and the sentence said when nothing could be compared
(:func:`nothing_compared`). Every number here is one the report already shows, hidden where the
report hides it. Imports the report only for typing; no SQL, no streamlit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fusion.evaluation.bootstrap import METRICS
from fusion.evaluation.flags import STATES, TESTED_METRICS

if TYPE_CHECKING:
    from fusion.evaluation.fairness import FairnessReport

__all__ = [
    "COMPARISON_COLUMNS",
    "GROUP_STATE_COLUMNS",
    "comparisons_table",
    "group_states",
    "metrics_table",
    "nothing_compared",
]

COMPARISON_COLUMNS: tuple[str, ...] = (
    "group",
    "n",
    "metric",
    "state",
    "difference",
    "difference_low",
    "difference_high",
    "p_value",
    "p_adjusted",
    "flagged",
    "mdd",
    "value",
    "reference_value",
)
"""Columns of :func:`comparisons_table`, in order."""

GROUP_STATE_COLUMNS: tuple[str, ...] = (
    "group",
    "n",
    "state",
    "flagged_metrics",
    "insufficient_metrics",
    "mdd_min",
    "mdd_max",
)
"""Columns of :func:`group_states`, in order."""

_STATE_ORDER = {"flagged": 0, "insufficient": 1, "no_difference": 2, "not_compared": 3}


def _text(value: object, *, whole: bool = False) -> str:
    """One table cell as text: floats to 3 decimals (or whole), NaN empty, True ``yes``."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if value is pd.NA:
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.0f}" if whole else f"{value:.3f}"
    return str(value)


def _reasons(report: FairnessReport) -> list[str]:
    """Why cells of each group are empty: the whole group, some rates, or nothing."""
    reasons = []
    for label, suppressed in zip(
        report.by_group.index.astype(str), report.by_group["suppressed"], strict=True
    ):
        if suppressed:
            reasons.append(
                f"group suppressed: fewer than {report.min_cell} patients, or hidden so that a "
                "smaller group's size cannot be derived"
            )
            continue
        hidden = [
            m for m in METRICS if m in report.hidden.columns and bool(report.hidden.loc[label, m])
        ]
        paired = [
            m
            for m in METRICS
            if f"diff_{m}" in report.hidden.columns
            and bool(report.hidden.loc[label, f"diff_{m}"])
            and m not in hidden
        ]
        parts = []
        if hidden:
            parts.append(f"rates hidden: {', '.join(hidden)}")
        if paired:
            parts.append(f"differences hidden (the reference's rate is): {', '.join(paired)}")
        reasons.append(
            f"{'; '.join(parts)} (they would give away a count under {report.min_cell})"
            if parts
            else ""
        )
    return reasons


def metrics_table(report: FairnessReport, *, as_text: bool = False) -> pd.DataFrame:
    """The metrics table, one row per group, for export and display.

    Columns: ``group``, ``reference`` (bool), the attributes, ``n`` (integer), ``suppressed``
    (bool), ``suppressed_reason`` (text, empty when nothing is hidden), each metric with its
    CI, then ``diff_<metric>`` with every column of the report's ``difference`` (signed
    difference, CI, p-values, minimum detectable difference, flag, state) and
    ``diff_equalized_odds``.

    Parameters
    ----------
    report : FairnessReport
        The audit.
    as_text : bool, default=False
        False: numeric columns stay numeric and hidden cells are empty (NaN; ``n`` is a nullable
        integer), so the CSV reads straight into an analysis. True: every cell as text (3
        decimals, flags ``yes``) with :attr:`FairnessReport.marker` in hidden cells, for the
        HTML report.

    Returns
    -------
    DataFrame
    """
    diff = report.difference.drop(columns="suppressed").add_prefix("diff_")
    for column in diff.columns:
        if column.endswith("_state"):
            diff[column] = diff[column].map(STATES)
    frame = report.by_group.drop(columns="suppressed").join(diff)
    frame.insert(0, "group", frame.index)
    frame.insert(1, "reference", frame.index == report.reference)
    frame["n"] = frame["n"].round().astype("Int64")
    suppressed = report.by_group["suppressed"].to_numpy(dtype=bool)
    position = int(list(frame.columns).index("n")) + 1
    frame.insert(position, "suppressed", suppressed)
    frame.insert(position + 1, "suppressed_reason", _reasons(report))
    frame = frame.reset_index(drop=True)
    if not as_text:
        return frame
    out = frame.astype(object)
    keep = ("group", "reference", "suppressed", "suppressed_reason", *report.attributes)
    hideable = [c for c in out.columns if c not in keep]
    for column in out.columns:
        if column not in ("suppressed_reason",):
            out[column] = [_text(value, whole=column == "n") for value in out[column]]
    out.loc[suppressed, hideable] = report.marker
    for column in report.hidden.columns:
        if column in out.columns:
            out.loc[report.hidden[column].to_numpy(dtype=bool), column] = report.marker
    return out


def comparisons_table(report: FairnessReport) -> pd.DataFrame:
    """Every tested difference of the shown groups, flags first: the compact table.

    One row per (shown, non-reference group, tested metric): ``group, n, metric, state``
    (words of :data:`fusion.evaluation.flags.STATES`), the signed ``difference`` (group minus
    reference) with its CI (``difference_low``, ``_high``), ``p_value`` (raw, two-sided Wald on the
    bootstrap standard error), ``p_adjusted`` (the report's method, across every row with a
    p-value), ``flagged``, ``mdd`` (minimum detectable difference) and the two ``value`` s
    compared. Hidden cells are NaN ("not compared"). Sorted: flagged, insufficient evidence,
    no difference found, not compared; then by adjusted p-value.

    Returns
    -------
    DataFrame with :data:`COMPARISON_COLUMNS`
    """
    by_group, difference = report.by_group, report.difference
    shown = by_group.index[~by_group["suppressed"].to_numpy(dtype=bool)]
    rows = []
    for label in shown:
        if label == report.reference:
            continue
        for metric in TESTED_METRICS:
            state = str(difference.loc[label, f"{metric}_state"])
            rows.append(
                {
                    "group": label,
                    "n": by_group.loc[label, "n"],
                    "metric": metric,
                    "state": STATES[state],
                    "difference": difference.loc[label, metric],
                    "difference_low": difference.loc[label, f"{metric}_low"],
                    "difference_high": difference.loc[label, f"{metric}_high"],
                    "p_value": difference.loc[label, f"{metric}_p"],
                    "p_adjusted": difference.loc[label, f"{metric}_p_adjusted"],
                    "flagged": bool(difference.loc[label, f"{metric}_flag"]),
                    "mdd": difference.loc[label, f"{metric}_mdd"],
                    "value": by_group.loc[label, metric],
                    "reference_value": by_group.loc[report.reference, metric],
                    "_order": _STATE_ORDER[state],
                }
            )
    if not rows:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    table = pd.DataFrame(rows)
    # A hidden reference value hides the difference too: never show it beside one.
    table.loc[table["difference"].isna(), ["value", "reference_value"]] = np.nan
    table = table.sort_values(["_order", "p_adjusted"], kind="stable", na_position="last")
    table["n"] = table["n"].round().astype("Int64")
    return table.drop(columns="_order").reset_index(drop=True).loc[:, list(COMPARISON_COLUMNS)]


def group_states(report: FairnessReport) -> pd.DataFrame:
    """One state per shown group: flagged, insufficient evidence, no difference found.

    A group is ``flagged`` when any of its comparisons is; else ``insufficient evidence`` when
    any comparison could miss a difference of ``margin`` (its minimum detectable difference is
    larger); else ``no difference found`` when any was compared; else ``not compared``. The
    reference group reads ``reference``. ``mdd_min``/``mdd_max``: the smallest and largest
    minimum detectable difference over its tested metrics.

    Returns
    -------
    DataFrame with :data:`GROUP_STATE_COLUMNS`
    """
    by_group, difference = report.by_group, report.difference
    rows = []
    for label in by_group.index[~by_group["suppressed"].to_numpy(dtype=bool)]:
        states = {m: str(difference.loc[label, f"{m}_state"]) for m in TESTED_METRICS}
        mdd = difference.loc[label, [f"{m}_mdd" for m in TESTED_METRICS]].to_numpy(dtype=float)
        if label == report.reference:
            state = "reference"
        else:
            key = min(states.values(), key=lambda s: _STATE_ORDER[s])
            state = STATES[key]
        finite = mdd[np.isfinite(mdd)]
        rows.append(
            {
                "group": label,
                "n": by_group.loc[label, "n"],
                "state": state,
                "flagged_metrics": ", ".join(m for m, s in states.items() if s == "flagged"),
                "insufficient_metrics": ", ".join(
                    m for m, s in states.items() if s == "insufficient"
                ),
                "mdd_min": float(finite.min()) if len(finite) else np.nan,
                "mdd_max": float(finite.max()) if len(finite) else np.nan,
            }
        )
    table = pd.DataFrame(rows, columns=list(GROUP_STATE_COLUMNS))
    table["n"] = table["n"].round().astype("Int64")
    return table


def nothing_compared(report: FairnessReport) -> str | None:
    """Why no difference of the audit could be tested; None when at least one was.

    With fewer than two groups shown there is nothing to compare, so an audit must say so
    instead of "0 flagged" or a disparity of 0.
    """
    if report.n_comparisons > 0:
        return None
    suppressed = report.by_group["suppressed"].to_numpy(dtype=bool)
    shown = report.by_group.index[~suppressed].tolist()
    attributes = " x ".join(report.attributes)
    if len(report.by_group) < 2:
        return (
            f"Nothing could be compared: every patient of the audit is in one group of "
            f"{attributes} ({shown[0] if shown else report.by_group.index[0]!r}). Audit another "
            "attribute, or record this one for the cohort and re-import."
        )
    if len(shown) < 2:
        return (
            f"Nothing could be compared: only {len(shown)} of {len(report.by_group)} groups of "
            f"{attributes} is shown ({', '.join(map(repr, shown))}); the others have fewer than "
            f"{report.min_cell} patients or are suppressed to protect one that has. Audit fewer "
            "attributes or coarser groups (e.g. wider age bands)."
        )
    if report.n_resamples == 0:
        return (
            "Nothing could be tested: the audit ran without bootstrap resamples, so its "
            "differences have no CI or p-value. Run it with resamples (e.g. 200)."
        )
    return (
        "Nothing could be compared: every difference from the reference is hidden (it would "
        f"give away a count under {report.min_cell}) or could not be estimated."
    )
