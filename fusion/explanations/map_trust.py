"""How far the explanations of a model version can be trusted, against the synthetic truth.

Owns the :class:`MapTrustReport` stored with each fusion model version, its measurement on
lesion-positive test scans (localisation of each map against the true lesion masks next to a
random and a centre baseline, faithfulness as a ROAD-style deletion curve, SHAP additivity; the
measures themselves are in :mod:`fusion.explanations.map_measures`), the ranking of the maps by
it and its sentence for the page. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fusion.explanations.map_measures import (
    DELETION_FRACTIONS,
    centre_map,
    deletion_drops,
    energy_inside,
    patient_maps,
    pointing_hit,
    random_map,
    shap_additivity_error,
)
from fusion.explanations.occlusion import FusedImageScorer
from fusion.model import FusionClassifier
from models.gradcam import GradCamExplainer
from models.nets import RiskCNN
from models.transforms import normalize_scan

__all__ = [
    "BASELINE_MAPS",
    "MAP_NAMES",
    "MAX_TRUST_SCANS",
    "MapTrustReport",
    "evaluate_map_trust",
    "evaluate_test_maps",
    "map_trust_sentence",
    "rank_maps",
]

MAP_NAMES: Final[tuple[str, ...]] = ("gradcam", "gradcampp", "occlusion")
BASELINE_MAPS: Final[tuple[str, ...]] = ("random", "centre")
MAX_TRUST_SCANS: Final = 20
"""Lesion-positive test scans checked at build time (each costs an occlusion map and 4 deletion
curves; see `riskfusion bench` for the measured time)."""


@dataclass(frozen=True, slots=True)
class MapTrustReport:
    """Measured trust in the explanations (stored in the fusion model's registry metrics).

    Attributes
    ----------
    n_scans : int
        Lesion-positive scans the maps were checked on.
    summary : DataFrame
        Index: map (``gradcam``, ``gradcampp``, ``occlusion``, ``random``, ``centre``);
        columns ``pointing_game`` (hit rate), ``energy_inside`` (mean share of map inside the
        lesion) and ``mean_risk_drop`` (mean over the deletion fractions; NaN for ``centre``).
    deletion : DataFrame
        Index: fraction of pixels removed; columns: maps and ``random``; mean drop in fused risk.
    shap_additivity_max_abs : float
        Largest additivity error of the SHAP values (log-odds) over the checked rows.
    n_additivity_rows : int
        Rows checked for additivity.
    """

    n_scans: int
    summary: pd.DataFrame
    deletion: pd.DataFrame
    shap_additivity_max_abs: float
    n_additivity_rows: int

    def to_metrics(self) -> dict[str, Any]:
        """JSON-ready form, as stored under the fusion model's ``map_trust`` metric."""
        return {
            "n_scans": self.n_scans,
            "summary": {
                str(name): {k: _finite(v) for k, v in row.items()}
                for name, row in self.summary.iterrows()
            },
            "deletion": {
                f"{fraction:g}": {k: _finite(v) for k, v in row.items()}
                for fraction, row in self.deletion.iterrows()
            },
            "shap_additivity_max_abs": self.shap_additivity_max_abs,
            "n_additivity_rows": self.n_additivity_rows,
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> MapTrustReport:
        """Inverse of :meth:`to_metrics`."""
        summary = pd.DataFrame.from_dict(dict(metrics["summary"]), orient="index").astype(float)
        deletion = pd.DataFrame.from_dict(dict(metrics["deletion"]), orient="index").astype(float)
        deletion.index = deletion.index.astype(float)
        return cls(
            n_scans=int(metrics["n_scans"]),
            summary=summary,
            deletion=deletion,
            shap_additivity_max_abs=float(metrics["shap_additivity_max_abs"]),
            n_additivity_rows=int(metrics["n_additivity_rows"]),
        )


def rank_maps(report: MapTrustReport | None) -> tuple[str, ...]:
    """The maps of :data:`MAP_NAMES`, best first by the stored trust measurements.

    Ranked by the pointing game (share of lesion-positive test scans whose map peak lies in
    the lesion), then by the mean drop in fused risk when the map's top pixels are removed
    (faithfulness), then by the energy inside the lesion; a missing measurement ranks last.
    The first is the map to show by default. Without a report (model built without the trust
    check) the order is :data:`MAP_NAMES`.

    Parameters
    ----------
    report : MapTrustReport or None
        The model version's stored measurements
        (:meth:`fusion.service.facade.RiskService.map_trust`).

    Returns
    -------
    tuple of str
        Every name of :data:`MAP_NAMES`, best first; ties keep :data:`MAP_NAMES` order.

    Examples
    --------
    >>> summary = pd.DataFrame(
    ...     {"pointing_game": [0.0, 0.05, 0.6, 0.05], "energy_inside": [0.1, 0.1, 0.4, 0.1],
    ...      "mean_risk_drop": [0.01, 0.01, 0.03, 0.0]},
    ...     index=["gradcam", "gradcampp", "occlusion", "random"])
    >>> report = MapTrustReport(20, summary, pd.DataFrame(), 0.0, 10)
    >>> rank_maps(report)
    ('occlusion', 'gradcampp', 'gradcam')
    >>> rank_maps(None)
    ('gradcam', 'gradcampp', 'occlusion')
    """
    if report is None:
        return MAP_NAMES
    columns = ("pointing_game", "mean_risk_drop", "energy_inside")

    def key(name: str) -> tuple[float, ...]:
        values = [_summary_value(report.summary, name, c) for c in columns]
        return tuple(-v if np.isfinite(v) else np.inf for v in values)

    return tuple(sorted(MAP_NAMES, key=key))


def map_trust_sentence(report: MapTrustReport | None, method: str) -> str:
    """One sentence with a map's stored trust figures next to the random baseline.

    Examples
    --------
    >>> summary = pd.DataFrame(
    ...     {"pointing_game": [0.6, 0.05], "energy_inside": [0.4, 0.1],
    ...      "mean_risk_drop": [0.031, 0.004]}, index=["occlusion", "random"])
    >>> print(map_trust_sentence(MapTrustReport(20, summary, pd.DataFrame(), 0.0, 10),
    ...                          "occlusion"))  # doctest: +NORMALIZE_WHITESPACE
    Trust, measured on 20 lesion-positive test scans: the map's peak lies in the true lesion
    on 60% of them (a random map: 5%); removing its top pixels lowers the fused risk by 3.1
    points on average (random regions: 0.4).
    """
    if report is None or method not in report.summary.index:
        return (
            "No trust measurement for this map: the model was built without the trust check; "
            "rebuild the demo to measure it."
        )
    summary = report.summary
    hit = _summary_value(summary, method, "pointing_game")
    drop = _summary_value(summary, method, "mean_risk_drop")
    random_hit = _summary_value(summary, "random", "pointing_game")
    random_drop = _summary_value(summary, "random", "mean_risk_drop")
    parts = [f"Trust, measured on {report.n_scans} lesion-positive test scans: "]
    parts.append(f"the map's peak lies in the true lesion on {hit:.0%} of them")
    if np.isfinite(random_hit):
        parts.append(f" (a random map: {random_hit:.0%})")
    if np.isfinite(drop):
        parts.append(
            f"; removing its top pixels lowers the fused risk by {100 * drop:.1f} points on average"
        )
        if np.isfinite(random_drop):
            parts.append(f" (random regions: {100 * random_drop:.1f})")
    parts.append(".")
    if np.isfinite(random_hit) and hit <= random_hit:
        parts.append(" It points at the lesion no better than a random map.")
    return "".join(parts)


def _summary_value(summary: pd.DataFrame, name: str, column: str) -> float:
    """One trust figure as a float, NaN when the map or the measurement is absent."""
    if name not in summary.index or column not in summary.columns:
        return float("nan")
    return float(np.asarray(summary.loc[name, column], dtype=np.float64))


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if np.isfinite(number) else None


def evaluate_map_trust(
    model: FusionClassifier,
    scorers: Sequence[FusedImageScorer],
    explainers: Sequence[Sequence[GradCamExplainer]],
    scans: npt.ArrayLike,
    masks: npt.ArrayLike,
    *,
    additivity_X: pd.DataFrame,
    fractions: Sequence[float] = DELETION_FRACTIONS,
    random_state: int = 0,
) -> MapTrustReport:
    """Localisation and faithfulness of every map on lesion-positive scans, plus additivity.

    Parameters
    ----------
    model : FusionClassifier
        The fusion model (checked for SHAP additivity on ``additivity_X``).
    scorers : sequence of FusedImageScorer
        One per scan: the patient's fused risk as a function of the scan.
    explainers : sequence of sequences of GradCamExplainer
        One list per scan: the explainers of the nets that score the patient.
    scans : array-like of shape (n, H, W)
        Normalised scans.
    masks : array-like of shape (n, H, W)
        True lesion masks (each with at least one lesion pixel).
    additivity_X : DataFrame of shape (n_rows, n_features)
        Rows on which SHAP additivity is checked (e.g. the whole test split).
    fractions : sequence of float, default=DELETION_FRACTIONS
        Deletion fractions of the ROAD-style curve.
    random_state : int, default=0
        Seed of the random baseline maps.

    Returns
    -------
    MapTrustReport

    Raises
    ------
    ValueError
        If the inputs disagree in length or a mask is empty.
    """
    images = np.asarray(scans, dtype=np.float32)
    lesions = np.asarray(masks)
    if not len(scorers) == len(explainers) == len(images) == len(lesions):
        raise ValueError(
            f"Got {len(scorers)} scorers, {len(explainers)} explainer lists, {len(images)} scans "
            f"and {len(lesions)} masks; pass one of each per patient."
        )
    if len(images) and not lesions.reshape(len(lesions), -1).any(axis=1).all():
        raise ValueError("Every mask must contain a lesion; pass lesion-positive scans only.")
    rng = np.random.default_rng(random_state)
    names = (*MAP_NAMES, *BASELINE_MAPS)
    hits: dict[str, list[float]] = {name: [] for name in names}
    inside: dict[str, list[float]] = {name: [] for name in names}
    drops: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in (*MAP_NAMES, "random")}
    for scorer, nets, scan, mask in zip(scorers, explainers, images, lesions, strict=True):
        noise = random_map(scan.shape, rng)  # type: ignore[arg-type]
        maps = {
            **patient_maps(scorer, nets, scan),
            "random": noise,
            "centre": centre_map(scan.shape),  # type: ignore[arg-type]
        }
        for name, heat in maps.items():
            hits[name].append(float(pointing_hit(heat, mask)))
            inside[name].append(energy_inside(heat, mask))
            if name in drops:
                drops[name].append(deletion_drops(scorer, scan, heat, fractions, tie_break=noise))
    curve = pd.DataFrame(
        {
            name: np.mean(values, axis=0) if values else np.full(len(fractions), np.nan)
            for name, values in drops.items()
        },
        index=pd.Index(list(fractions), name="fraction"),
    )
    summary = pd.DataFrame(
        {
            "pointing_game": [float(np.mean(hits[n])) if hits[n] else np.nan for n in names],
            "energy_inside": [float(np.mean(inside[n])) if inside[n] else np.nan for n in names],
            "mean_risk_drop": [
                float(curve[n].mean()) if n in curve.columns else np.nan for n in names
            ],
        },
        index=pd.Index(names, name="map"),
    )
    return MapTrustReport(
        n_scans=len(images),
        summary=summary,
        deletion=curve,
        shap_additivity_max_abs=shap_additivity_error(model, additivity_X),
        n_additivity_rows=len(additivity_X),
    )


def evaluate_test_maps(
    model: FusionClassifier,
    X_test: pd.DataFrame,
    images: pd.DataFrame,
    artifacts_dir: Path,
    nets: Sequence[RiskCNN],
    logit_scaling: Mapping[str, Sequence[float]],
    *,
    max_scans: int = MAX_TRUST_SCANS,
    random_state: int = 0,
) -> MapTrustReport:
    """The build-time trust check: maps on lesion-positive test scans, additivity on the split.

    Test patients are scored by every fold net, so every scorer and Grad-CAM uses all nets.

    Parameters
    ----------
    model : FusionClassifier
        The fusion model.
    X_test : DataFrame of shape (n_test, n_features)
        Test-split inputs, indexed by ``patient_id``.
    images : DataFrame
        The store's image index (``patient_id, path, mask_path``).
    artifacts_dir : Path
        Where scan and mask files live.
    nets : sequence of RiskCNN
        All fold nets.
    logit_scaling : mapping of fold (str) to ``[mean, sd]``
        The imaging record's standardisation.
    max_scans : int, default=MAX_TRUST_SCANS
        At most this many lesion-positive scans (the first by patient id), to bound build time.
    random_state : int, default=0
        Seed of the random baselines.
    """
    rows = images.loc[images["patient_id"].isin(X_test.index) & images["mask_path"].notna()]
    rows = rows.sort_values("patient_id")
    explainers = [GradCamExplainer(net) for net in nets]
    folds = list(range(len(nets)))
    chosen: list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.uint8]]] = []
    for row in rows.itertuples():
        mask = np.load(artifacts_dir / str(row.mask_path), allow_pickle=False).astype(np.uint8)
        if mask.any():
            raw = np.load(artifacts_dir / str(row.path), allow_pickle=False)
            chosen.append((str(row.patient_id), normalize_scan(raw.astype(np.float32)), mask))
        if len(chosen) >= max_scans:
            break
    scorers = [
        FusedImageScorer.from_folds(model, X_test.loc[[pid]], nets, logit_scaling, folds)
        for pid, _, _ in chosen
    ]
    shape = (0, 1, 1)
    return evaluate_map_trust(
        model,
        scorers,
        [explainers] * len(chosen),
        np.stack([scan for _, scan, _ in chosen]) if chosen else np.zeros(shape, np.float32),
        np.stack([mask for _, _, mask in chosen]) if chosen else np.zeros(shape, np.uint8),
        additivity_X=X_test,
        random_state=random_state,
    )
