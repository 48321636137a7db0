"""The worst slices of the active model: found on the validation split, confirmed on the test split.

Owns the use case behind the bias audit's "Worst slices" section and ``riskfusion audit
--slices``: the slice columns (the audit attributes, each modality's availability and the most
important model inputs in tertiles, with bin edges from the validation split), the two splits'
predictions, and :func:`fusion.evaluation.slices.find_slices` at the viewer's suppression floor.
Must not import streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fusion.admin.access import Identity
from fusion.evaluation.flags import FlagMethod
from fusion.evaluation.groups import AUDIT_ATTRIBUTES, add_age_band
from fusion.evaluation.slices import bin_inputs, find_slices

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["TOP_INPUTS", "SliceView", "worst_slices"]

RESEARCHER_HIDDEN: tuple[str, ...] = ("n", "n_discovery", "tpr", "tpr_rest", "fpr", "fpr_rest")
"""Slice columns a researcher does not see: with the shown totals they give back counts."""

TOP_INPUTS = 6
"""Model inputs (by mean |SHAP| over the test split) binned into tertiles for the search."""


@dataclass(frozen=True)
class SliceView:
    """The slice search of one view: the table and what it was run with."""

    table: pd.DataFrame
    columns: tuple[str, ...]
    n_discovery: int
    n_confirmation: int
    min_cell: int
    adjustment: FlagMethod
    alpha: float

    def note(self) -> str:
        """How to read the table, for the page and the report."""
        method = "Holm" if self.adjustment == "holm" else "Benjamini-Hochberg"
        return (
            f"Searched {self.n_discovery} validation patients with SliceLine for the slices whose "
            f"outcomes depart most from their risks (slices of at least {self.min_cell} "
            f"patients, up to two conditions), then tested each once on the "
            f"{self.n_confirmation} test patients (observed vs expected events); p-values "
            f"{method}-adjusted across the slices tested, confirmed below {self.alpha}. AUROC, "
            "TPR and FPR inside and outside a slice are shown, not tested: they differ by case "
            "mix alone."
        )


def _slice_frame(service: RiskService, split: str, inputs: list[str]) -> pd.DataFrame:
    """One split's predictions with attributes, modality availability and input values."""
    store, version = service.store, service.model_info().version
    frame = add_age_band(store.split_predictions([version], split))
    values = store.load_patient_frame(split=split).set_index("patient_id")
    features = service.models.features
    # An input that is also an attribute (age) is read once, from the attributes.
    extra = [name for name in inputs if name not in frame.columns]
    frame = frame.join(values.reindex(columns=extra), on="patient_id")
    for modality in dict.fromkeys(features.modalities):
        if modality == "demographics":
            continue
        names = [
            n
            for n, m in zip(features.names, features.modalities, strict=True)
            if m == modality and n in values
        ]
        if names:
            present = values[names].notna().any(axis=1)
            frame[f"has_{modality}"] = (
                frame["patient_id"].map(present).map({True: "yes", False: "no"}).fillna("no")
            )
    return frame


def worst_slices(
    service: RiskService,
    *,
    identity: Identity | None = None,
    min_cell: int | None = None,
    adjustment: FlagMethod = "holm",
    alpha: float = 0.05,
    k: int = 10,
) -> SliceView:
    """Search the validation split for the worst-calibrated slices and test them on the test split.

    Parameters
    ----------
    service : RiskService
        The active version.
    identity : Identity, optional
        The viewer (None: trusted caller at the configured floor).
    min_cell : int, optional
        A requested floor (raised only, unless admin); also the smallest slice searched.
    adjustment : {"holm", "bh"}, default="holm"
        Multiplicity adjustment over the slices tested.
    alpha : float, default=0.05
        Level of the adjusted test.
    k : int, default=10
        Slices kept by the search.
    """
    floor = max(service.min_cell_for(identity, min_cell, view="slices"), 1)
    summary = service.test_shap()
    numeric = [
        str(name) for name in summary.features["feature"] if name in service.models.features.names
    ][:TOP_INPUTS]
    raw_discovery = _slice_frame(service, "val", numeric)
    raw_confirmation = _slice_frame(service, "test", numeric)
    # Bin edges from the discovery split only: the test split plays no part in the search.
    binned = bin_inputs(raw_discovery, numeric, edges_from=raw_discovery)
    discovery = raw_discovery.drop(columns=numeric).join(binned)
    confirmation = raw_confirmation.drop(columns=numeric).join(
        bin_inputs(raw_confirmation, numeric, edges_from=raw_discovery)
    )
    candidates = [
        *AUDIT_ATTRIBUTES,
        *(c for c in discovery.columns if str(c).startswith("has_")),
        *binned.columns,
    ]
    columns = [
        c
        for c in candidates
        if c in confirmation.columns and discovery[c].nunique(dropna=False) > 1
    ]
    table = find_slices(
        discovery,
        confirmation,
        columns,
        threshold=service.model_info().threshold,
        min_size=floor,
        k=k,
        alpha=alpha,
        adjustment=adjustment,
    )
    if identity is not None and identity.role == "researcher":
        # A slice's size, and its sensitivity and FPR with those outside it and the split's own,
        # solve for its cells (two slices differing by one condition give a small group by
        # subtraction): researchers see the slice, its test and its AUROCs only.
        table = table.astype({column: float for column in RESEARCHER_HIDDEN})
        table.loc[:, list(RESEARCHER_HIDDEN)] = np.nan
    return SliceView(
        table=table,
        columns=tuple(columns),
        n_discovery=len(discovery),
        n_confirmation=len(confirmation),
        min_cell=floor,
        adjustment=adjustment,
        alpha=alpha,
    )
