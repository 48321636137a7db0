"""Global TreeSHAP importance of the fusion model over a split, for the performance page.

Owns :class:`ShapSummary` (importance per feature and modality, beeswarm rows and the
aggregate value bins a researcher sees, small bins suppressed) and :func:`sample_beeswarm`, the
fixed-size beeswarm a browser can draw whatever the split's size. Takes SHAP values computed
elsewhere (:mod:`fusion.explain`); must not import shap, SQL or streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.evaluation.suppression import suppress_cells

__all__ = [
    "MAX_BEESWARM_POINTS",
    "ShapSummary",
    "sample_beeswarm",
    "summarise_shap",
]


MAX_BEESWARM_POINTS = 2_000
"""Most beeswarm dots per input: a larger split is shown by a sample stratified by value."""


@dataclass(frozen=True, slots=True)
class ShapSummary:
    """Global TreeSHAP importance of the fusion model over the test split (log-odds).

    Attributes
    ----------
    features : DataFrame
        ``feature, label, modality, mean_abs_shap`` sorted by importance, descending.
    modalities : Series
        Mean |SHAP| summed over each modality's features, indexed by modality.
    beeswarm : DataFrame
        The ``top_n`` features, one row per (patient, feature): ``label, modality, shap,
        value, value_rank`` (the value's rank within its feature in [0, 1], for colour); at
        most :data:`MAX_BEESWARM_POINTS` patients per feature (:func:`sample_beeswarm`).
    per_patient : DataFrame
        |SHAP| summed per modality for each test patient (index ``patient_id``).
    bins : DataFrame
        The aggregate beeswarm for roles that see aggregates only: the ``top_n`` features,
        one row per value bin (quintiles of the value's rank; fewer for features with few
        distinct values): ``label, modality, bin, n, mean_shap, value_rank, suppressed``.
        Bins under ``min_cell`` patients (and a complement) hold NaN; computed from every
        patient, not from the beeswarm's sample.
    n_patients : int
        Patients in the split (the beeswarm shows a sample of them when there are more than
        :data:`MAX_BEESWARM_POINTS`).
    """

    features: pd.DataFrame
    modalities: pd.Series
    beeswarm: pd.DataFrame
    per_patient: pd.DataFrame
    bins: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_patients: int = 0

    def aggregates_only(self) -> ShapSummary:
        """The summary without any per-patient row (``beeswarm`` and ``per_patient`` empty).

        What a researcher's page receives: importance and :attr:`bins` only.
        """
        return ShapSummary(
            features=self.features,
            modalities=self.modalities,
            beeswarm=self.beeswarm.iloc[0:0],
            per_patient=self.per_patient.iloc[0:0],
            bins=self.bins,
            n_patients=self.n_patients,
        )


def sample_beeswarm(
    beeswarm: pd.DataFrame, *, max_points: int = MAX_BEESWARM_POINTS, random_state: int = 0
) -> pd.DataFrame:
    """At most ``max_points`` rows per feature, a sample stratified by the value's rank.

    Each feature's rows are ordered by ``value_rank`` (ties in random order, missing values
    last) and cut into ``max_points`` strata of equal size; one row is drawn from each, so
    every value quantile keeps its share and the picture keeps its shape. Features with
    ``max_points`` rows or fewer are kept whole.

    Parameters
    ----------
    beeswarm : DataFrame
        ``label, modality, shap, value, value_rank`` rows (:attr:`ShapSummary.beeswarm`).
    max_points : int, default=MAX_BEESWARM_POINTS
        Most rows per ``label``.
    random_state : int, default=0
        Seed of the draw (the same split gives the same picture).

    Returns
    -------
    DataFrame
        The kept rows, features in their order, index reset.

    Examples
    --------
    >>> swarm = pd.DataFrame({"label": ["age"] * 10, "shap": range(10),
    ...                       "value_rank": [i / 10 for i in range(10)]})
    >>> len(sample_beeswarm(swarm, max_points=4))
    4
    """
    if max_points < 1:
        raise ValueError(f"max_points={max_points}; pass 1 or more.")
    if beeswarm.empty:
        return beeswarm
    groups = beeswarm.groupby("label", sort=False).indices
    if max(len(positions) for positions in groups.values()) <= max_points:
        return beeswarm
    rng = np.random.default_rng(random_state)
    ranks = beeswarm["value_rank"].to_numpy(dtype=np.float64)
    kept = []
    for label in beeswarm["label"].unique():
        positions = groups[label]
        if len(positions) <= max_points:
            kept.append(positions)
            continue
        shuffled = rng.permutation(len(positions))
        by_value = shuffled[np.argsort(ranks[positions][shuffled], kind="stable")]
        edges = np.linspace(0, len(positions), max_points + 1).astype(np.int64)
        draw = edges[:-1] + np.floor(rng.random(max_points) * np.diff(edges)).astype(np.int64)
        kept.append(np.sort(positions[by_value[draw]]))
    return beeswarm.iloc[np.concatenate(kept)].reset_index(drop=True)


def summarise_shap(
    values: npt.NDArray[np.float64],
    X: pd.DataFrame,
    *,
    labels: Sequence[str],
    modalities: Sequence[str],
    order: Sequence[str],
    top_n: int = 10,
    min_cell: int = 11,
    n_value_bins: int = 5,
) -> ShapSummary:
    """Global importance (mean |SHAP| per feature and per modality) and beeswarm data.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_features)
        SHAP values of the rows of ``X``.
    X : DataFrame of shape (n_samples, n_features)
        Model inputs, indexed by ``patient_id``.
    labels, modalities : sequence of str, length n_features
        Readable name and modality of each feature.
    order : sequence of str
        Modalities in display order.
    top_n : int, default=10
        Features in the beeswarm.
    min_cell : int, default=11
        Smallest value bin shown in :attr:`ShapSummary.bins`.
    n_value_bins : int, default=5
        Value bins per feature in :attr:`ShapSummary.bins` (by the value's rank).

    Returns
    -------
    ShapSummary
    """
    magnitude = np.abs(values)
    features = pd.DataFrame(
        {
            "feature": list(X.columns),
            "label": list(labels),
            "modality": list(modalities),
            "mean_abs_shap": magnitude.mean(axis=0) if len(X) else np.zeros(X.shape[1]),
        }
    ).sort_values("mean_abs_shap", ascending=False, kind="stable")
    by_modality = features.groupby("modality")["mean_abs_shap"].sum().reindex(list(order))
    per_patient = pd.DataFrame(
        {m: magnitude[:, np.asarray(modalities) == m].sum(axis=1) for m in order},
        index=X.index,
    )
    rows = []
    for _, feature in features.head(top_n).iterrows():
        column = X.columns.get_loc(feature["feature"])
        ranks = X[feature["feature"]].rank(pct=True)
        rows.append(
            pd.DataFrame(
                {
                    "label": feature["label"],
                    "modality": feature["modality"],
                    "shap": values[:, column],
                    "value": X[feature["feature"]].to_numpy(),
                    "value_rank": ranks.to_numpy(),
                }
            )
        )
    beeswarm = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return ShapSummary(
        features=features.reset_index(drop=True),
        modalities=by_modality.fillna(0.0),
        beeswarm=sample_beeswarm(beeswarm),
        per_patient=per_patient,
        bins=_value_bins(beeswarm, min_cell=min_cell, n_bins=n_value_bins),
        n_patients=len(X),
    )


def _value_bins(beeswarm: pd.DataFrame, *, min_cell: int, n_bins: int) -> pd.DataFrame:
    """Mean SHAP per (feature, value-rank bin), small bins and a complement hidden."""
    columns = ["label", "modality", "bin", "n", "mean_shap", "value_rank", "suppressed"]
    if beeswarm.empty:
        return pd.DataFrame(columns=columns)
    # Quintiles of the value's rank; a missing value has a bin of its own (-1).
    frame = beeswarm.assign(
        bin=np.minimum(np.floor(beeswarm["value_rank"] * n_bins), n_bins - 1)
        .fillna(-1)
        .astype(np.int64)
    )
    grouped = frame.groupby(["label", "bin"], sort=False)
    table = grouped.agg(
        modality=("modality", "first"),
        n=("shap", "size"),
        mean_shap=("shap", "mean"),
        value_rank=("value_rank", "mean"),
    ).reset_index()
    table["n"] = table["n"].astype(np.float64)
    # Each feature's bins add up to the split's size: one line per feature.
    hidden = np.zeros(len(table), dtype=bool)
    for label in table["label"].unique():
        rows = (table["label"] == label).to_numpy()
        sizes = pd.Series(table.loc[rows, "n"].to_numpy())
        hidden[rows] = suppress_cells(sizes, min_cell)
    table.loc[hidden, ["n", "mean_shap", "value_rank"]] = np.nan
    table["suppressed"] = hidden
    order = {label: position for position, label in enumerate(beeswarm["label"].unique())}
    table = table.assign(_order=table["label"].map(order)).sort_values(["_order", "bin"])
    return table.reindex(columns=columns).reset_index(drop=True)
