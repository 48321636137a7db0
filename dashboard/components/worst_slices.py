"""The "Worst slices" section of the bias audit page."""

from __future__ import annotations

import streamlit as st

from dashboard.resources import get_worst_slices
from data.store import DataStamp
from fusion.admin.access import Identity
from fusion.display import readable_table
from fusion.service.facade import RiskService

__all__ = ["SLICE_LABELS", "render_worst_slices"]

SLICE_LABELS = {
    "slice": "Slice",
    "n": "Test patients",
    "observed_expected": "Observed/expected",
    "p_value": "p (raw)",
    "p_adjusted": "p (adjusted)",
    "confirmed": "Confirmed",
    "auroc": "AUROC in slice",
    "auroc_rest": "AUROC elsewhere",
    "tpr": "Sensitivity in slice",
    "tpr_rest": "Sensitivity elsewhere",
    "fpr": "FPR in slice",
    "fpr_rest": "FPR elsewhere",
}
"""Readable names of the slice table's shown columns, in order."""


def render_worst_slices(
    service: RiskService,
    stamp: DataStamp,
    *,
    min_cell: int | None,
    identity: Identity,
    key: str,
) -> None:
    """Search (cached per stamp, floor, user and adjustment) and show the confirmed slices first."""
    st.subheader("Worst slices, found for you")
    method = st.radio(
        "Multiplicity adjustment",
        ("holm", "bh"),
        format_func=lambda m: "Holm (default)" if m == "holm" else "Benjamini-Hochberg",
        horizontal=True,
        key=f"{key}.adjustment",
        help="Holm keeps the chance of any false slice under 5%; Benjamini-Hochberg keeps the "
        "expected share of false slices among the confirmed under 5%.",
    )
    view = get_worst_slices(service, stamp, min_cell, identity, method)
    st.caption(view.note())
    if view.table.empty:
        st.info(
            "No slice large enough to test: every candidate has fewer than "
            f"{view.min_cell} test patients, events or non-events."
        )
        return
    table = view.table.sort_values(["confirmed", "p_adjusted"], ascending=[False, True])
    columns = [c for c in SLICE_LABELS if not table[c].isna().all() or c in ("slice", "confirmed")]
    shown = readable_table(
        table.loc[:, columns],
        labels=SLICE_LABELS,
        percent=["tpr", "tpr_rest", "fpr", "fpr_rest"],
    )
    st.dataframe(shown, key=f"{key}.table", hide_index=True)
    confirmed = int(view.table["confirmed"].sum())
    st.caption(
        f"{confirmed} of {len(view.table)} slices tested confirmed."
        if confirmed
        else f"None of the {len(view.table)} slices tested is confirmed: no group departs from "
        "the model's overall calibration beyond chance."
    )
