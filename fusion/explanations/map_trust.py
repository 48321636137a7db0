"""How far the explanations can be trusted, measured against the synthetic ground truth.

Owns the checks of the image maps and SHAP values: localisation of each map against the true
lesion masks (pointing game, share of map energy inside the lesion) next to a random and a
centre baseline, faithfulness (drop in fused risk when the map's top pixels are removed, vs
random regions of the same size: a ROAD-style deletion curve), and SHAP additivity. Everything
is pure: arrays and models in, numbers out. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.ndimage import gaussian_filter

from fusion.explain import shap_values
from fusion.explanations.occlusion import FusedImageScorer, occlusion_map
from fusion.model import FusionClassifier
from models.gradcam import GradCamExplainer
from models.nets import RiskCNN
from models.transforms import normalize_scan

__all__ = [
    "BASELINE_MAPS",
    "DELETION_FRACTIONS",
    "MAP_NAMES",
    "MapTrustReport",
    "centre_map",
    "deletion_drops",
    "energy_inside",
    "evaluate_map_trust",
    "evaluate_test_maps",
    "map_trust_sentence",
    "patient_maps",
    "pointing_hit",
    "random_map",
    "rank_maps",
    "shap_additivity_error",
]

MAP_NAMES: Final[tuple[str, ...]] = ("gradcam", "gradcampp", "occlusion")
BASELINE_MAPS: Final[tuple[str, ...]] = ("random", "centre")
DELETION_FRACTIONS: Final[tuple[float, ...]] = (0.02, 0.05, 0.1, 0.2)
MAX_TRUST_SCANS: Final = 20
"""Lesion-positive test scans checked at build time (each costs an occlusion map and 4 deletion
curves; see `riskfusion bench` for the measured time)."""


def pointing_hit(saliency: npt.ArrayLike, mask: npt.ArrayLike) -> bool:
    """Pointing game: whether the map's maximum falls inside the lesion mask.

    A map without any positive value points nowhere and misses.

    Examples
    --------
    >>> mask = np.zeros((4, 4), dtype=np.uint8)
    >>> mask[1, 2] = 1
    >>> heat = np.zeros((4, 4))
    >>> heat[1, 2] = 0.9
    >>> pointing_hit(heat, mask), pointing_hit(np.zeros((4, 4)), mask)
    (True, False)
    """
    heat = np.asarray(saliency, dtype=np.float64)
    if heat.max() <= 0:
        return False
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return bool(np.asarray(mask)[peak] > 0)


def energy_inside(saliency: npt.ArrayLike, mask: npt.ArrayLike) -> float:
    """Share of the map's total value that lies inside the mask (0 for an all-zero map).

    Examples
    --------
    >>> energy_inside(np.array([[1.0, 3.0]]), np.array([[0, 1]]))
    0.75
    """
    heat = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, None)
    total = float(heat.sum())
    return float(heat[np.asarray(mask) > 0].sum() / total) if total > 0 else 0.0


def random_map(shape: tuple[int, int], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A smooth random map in [0, 1] (white noise blurred with sigma = side / 16).

    Blurred, so its top pixels form blobs the size of a lesion rather than scattered pixels:
    the fair "random regions of the same size" baseline.
    """
    noise = gaussian_filter(rng.normal(size=shape), sigma=max(1.0, min(shape) / 16))
    low, high = float(noise.min()), float(noise.max())
    scaled = (noise - low) / (high - low if high > low else 1.0)
    return np.asarray(scaled, dtype=np.float32)


def centre_map(shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """A centred Gaussian in [0, 1] (sigma = a quarter of each side): the centre-bias baseline.

    Examples
    --------
    >>> heat = centre_map((5, 5))
    >>> float(heat[2, 2]), bool(heat[0, 0] < heat[1, 1])
    (1.0, True)
    """
    rows = (np.arange(shape[0]) + 0.5 - shape[0] / 2) / (shape[0] / 4)
    cols = (np.arange(shape[1]) + 0.5 - shape[1] / 2) / (shape[1] / 4)
    heat = np.exp(-0.5 * (rows[:, None] ** 2 + cols[None, :] ** 2))
    return np.asarray(heat / heat.max(), dtype=np.float32)


def deletion_drops(
    scorer: FusedImageScorer,
    scan: npt.ArrayLike,
    saliency: npt.ArrayLike,
    fractions: Sequence[float] = DELETION_FRACTIONS,
    *,
    tie_break: npt.ArrayLike | None = None,
    fill: float | None = None,
) -> npt.NDArray[np.float64]:
    """Drop in fused risk when the map's top fraction of pixels is removed, per fraction.

    A ROAD-style deletion check (Rong et al., "A Consistent and Efficient Evaluation Strategy
    for Attribution Methods", ICML 2022, https://arxiv.org/abs/2202.00449), with removal by
    the scan's median rather than noisy linear imputation: a faithful map removes the pixels
    that matter first, so the risk falls faster than when random regions of the same size go.

    Parameters
    ----------
    scorer : FusedImageScorer
        The patient's fused risk as a function of the scan.
    scan : array-like of shape (H, W)
        Normalised scan.
    saliency : array-like of shape (H, W)
        The map; higher = removed first.
    fractions : sequence of float, default=DELETION_FRACTIONS
        Shares of the pixels to remove, each in (0, 1].
    tie_break : array-like of shape (H, W), optional
        Orders pixels of equal saliency (e.g. a random map); raster order otherwise.
    fill : float, optional
        Value of removed pixels; default the scan's median.

    Returns
    -------
    ndarray of shape (len(fractions),)
        ``risk(scan) - risk(scan with the top pixels removed)``.
    """
    image = np.asarray(scan, dtype=np.float32)
    heat = np.asarray(saliency, dtype=np.float64).ravel()
    if heat.shape[0] != image.size:
        raise ValueError(f"saliency has {heat.shape[0]} pixels; the scan has {image.size}.")
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad:
        raise ValueError(f"fractions {bad} are outside (0, 1]; pass shares such as 0.05.")
    secondary = (
        np.zeros_like(heat) if tie_break is None else np.asarray(tie_break, np.float64).ravel()
    )
    order = np.lexsort((-secondary, -heat))  # highest saliency first
    value = float(np.median(image)) if fill is None else float(fill)
    batch = np.repeat(image[None], len(fractions) + 1, axis=0).reshape(len(fractions) + 1, -1)
    for index, fraction in enumerate(fractions, start=1):
        batch[index, order[: max(1, round(fraction * image.size))]] = value
    risks = scorer.risk(batch.reshape(-1, *image.shape))
    return np.asarray(risks[0] - risks[1:], dtype=np.float64)


def patient_maps(
    scorer: FusedImageScorer,
    explainers: Sequence[GradCamExplainer],
    scan: npt.ArrayLike,
) -> dict[str, npt.NDArray[np.float32]]:
    """The page's three maps of one scan, each in [0, 1] at scan resolution.

    Grad-CAM and Grad-CAM++ are averaged over ``explainers`` (one per net that scores the
    patient) and rescaled to [0, 1]; the occlusion map comes from :func:`occlusion_map`.
    """
    image = np.asarray(scan, dtype=np.float32)
    maps: dict[str, npt.NDArray[np.float32]] = {}
    for method in ("gradcam", "gradcampp"):
        mean = np.mean([e.compute(image, method=method) for e in explainers], axis=0)
        span = float(mean.max() - mean.min())
        maps[method] = ((mean - mean.min()) / span if span > 0 else np.zeros_like(mean)).astype(
            np.float32
        )
    maps["occlusion"] = occlusion_map(scorer, image).saliency
    return maps


def shap_additivity_error(model: FusionClassifier, X: pd.DataFrame) -> float:
    """Largest ``|base + sum(SHAP) - margin|`` over the rows of ``X`` (log-odds)."""
    result = shap_values(model, X)
    return float(np.max(np.abs(result.margin() - model.decision_function(X)), initial=0.0))


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
