"""Aggregate views for the researcher role: no chart shows one patient's values.

Per-patient values are summarised in groups of at least ``min_cell`` patients.

Owns :func:`binned_shap` (the researcher's form of the SHAP beeswarm). Pure pandas; must not
import streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["VALUE_BINS", "binned_shap"]

VALUE_BINS = ("lowest fifth", "second fifth", "middle fifth", "fourth fifth", "highest fifth")


def binned_shap(beeswarm: pd.DataFrame, *, min_cell: int) -> pd.DataFrame:
    """Mean SHAP per feature and value fifth; fifths with fewer than ``min_cell`` patients hidden.

    Parameters
    ----------
    beeswarm : DataFrame
        One row per (patient, feature): ``label, modality, shap, value_rank`` (the value's rank
        within its feature in [0, 1]; NaN for a missing value), as in
        :attr:`fusion.performance.ShapSummary.beeswarm`.
    min_cell : int
        Smallest number of patients a shown bin may hold.

    Returns
    -------
    DataFrame
        One row per (feature, bin) in the input's feature order: ``label, modality, bin``
        (one of :data:`VALUE_BINS` or ``"missing"``), ``position`` (0-4, 5 for missing),
        ``n``, ``mean_shap`` (NaN where suppressed) and ``suppressed``. ``n`` is NaN where
        suppressed, so neither a mean nor a count of a small bin is shown.

    Examples
    --------
    >>> rows = pd.DataFrame({"label": "age", "modality": "ehr", "shap": np.linspace(-1, 1, 100),
    ...                      "value_rank": np.linspace(0.01, 1, 100)})
    >>> table = binned_shap(rows, min_cell=11)
    >>> table["n"].tolist(), table["mean_shap"].round(2).tolist()
    ([20.0, 20.0, 20.0, 20.0, 20.0], [-0.81, -0.4, 0.0, 0.4, 0.81])
    >>> binned_shap(rows.head(30), min_cell=11)["suppressed"].tolist()
    [False, True]
    """
    columns = ["label", "modality", "bin", "position", "n", "mean_shap", "suppressed"]
    if beeswarm.empty:
        return pd.DataFrame(columns=columns)
    rank = beeswarm["value_rank"].to_numpy(dtype=float)
    position = np.where(np.isnan(rank), 5, np.clip(np.ceil(rank * 5) - 1, 0, 4)).astype(int)
    frame = beeswarm.assign(position=position)
    grouped = frame.groupby(["label", "position"], sort=False)
    out = grouped.agg(
        modality=("modality", "first"), n=("shap", "size"), mean_shap=("shap", "mean")
    ).reset_index()
    order = {label: i for i, label in enumerate(dict.fromkeys(beeswarm["label"]))}
    out = out.sort_values(
        ["label", "position"], key=lambda s: s.map(order) if s.name == "label" else s
    )
    out["bin"] = [VALUE_BINS[p] if p < 5 else "missing" for p in out["position"]]
    out["suppressed"] = out["n"] < min_cell
    out["n"] = out["n"].astype(float)
    out.loc[out["suppressed"], ["n", "mean_shap"]] = np.nan
    return out.loc[:, columns].reset_index(drop=True)
