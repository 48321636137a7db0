"""Trust in the imaging maps of one imaging model version, measured at train time.

Owns :class:`ImagingMapTrust` (stored in the imaging version's registry metrics under
``map_trust``) and :func:`evaluate_imaging_maps`, which measures on test scans, for Grad-CAM
and Grad-CAM++ next to a random and a centre baseline:

* **localisation** (where lesion masks exist): pointing game and share of the map inside the
  lesion;
* **faithfulness**: ROAD-style deletion (:func:`fusion.explanations.map_measures.deletion_drops`)
  of the map's top pixels vs random regions of the same size, as the drop of the image score
  (the nets' standardised logit, which is what the map explains);
* **anatomy**: share of the map's mass on the scan's foreground
  (:func:`models.foreground.foreground_mask`), measured on the map *before* it is bounded to the
  foreground for display;
* **patient specificity**: mean pairwise correlation of the maps of different patients (the
  failure it catches: one map for everybody, 0.996 on a real cohort);
* **model randomisation** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018,
  https://arxiv.org/abs/1810.03292): Spearman correlation between the map of the trained nets
  and of the same architecture with freshly initialised weights; a map that does not change
  does not explain the trained model.

Library: pytorch-grad-cam's metrics need torchvision and Quantus pulls opencv-python,
scikit-image and matplotlib (checked with ``pip download``); captum has no pointing game,
ROAD or randomisation check. The measures are therefore short numpy functions here and in
``map_measures`` (``docs/models.md``). Must not import streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy.stats import spearmanr

from fusion.explanations.map_measures import (
    DELETION_FRACTIONS,
    bound_to_foreground,
    centre_map,
    deletion_drops,
    energy_inside,
    pointing_hit,
    random_map,
)
from models.embed import embed
from models.foreground import foreground_mask
from models.gradcam import GradCamExplainer
from models.nets import GRADCAM_TARGET, RiskCNN
from models.transforms import normalize_scan

__all__ = [
    "IMAGING_MAPS",
    "MAX_IMAGING_TRUST_SCANS",
    "MAX_RANDOMISATION_CORRELATION",
    "MAX_SPECIFICITY_CORRELATION",
    "MIN_FOREGROUND_SHARE",
    "ImagingMapTrust",
    "evaluate_imaging_maps",
    "evaluate_test_imaging_maps",
    "imaging_map_trust",
    "randomised_copy",
]

IMAGING_MAPS: Final[tuple[str, ...]] = ("gradcam", "gradcampp")
BASELINES: Final[tuple[str, ...]] = ("random", "centre")
MAX_IMAGING_TRUST_SCANS: Final = 60
"""Test scans checked at train time (Grad-CAM costs milliseconds per scan and net)."""
MIN_FOREGROUND_SHARE: Final = 0.9
"""A map keeps at least this share of its mass on the body."""
MAX_SPECIFICITY_CORRELATION: Final = 0.5
"""Maps of different patients correlate less than this on average (1 = one map for all)."""
MAX_RANDOMISATION_CORRELATION: Final = 0.5
"""Maps of the trained and of randomly initialised nets correlate less than this."""
RANDOM_WEIGHTS_SEED: Final = 10_000

ScoreFunction = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
"""``score(images (N, H, W)) -> (N,)``: the quantity the map explains."""


@dataclass(frozen=True, slots=True)
class ImagingMapTrust:
    """Trust figures of the imaging maps of one imaging model version.

    Attributes
    ----------
    n_scans : int
        Test scans the maps were measured on.
    n_lesion_scans : int
        Of those, scans with a non-empty lesion mask (0 without masks: no localisation).
    target_layer : str
        The layer Grad-CAM explains.
    auroc, auroc_low, auroc_high : float
        The imaging nets' out-of-fold AUROC on the training split and its 95% CI.
    summary : DataFrame
        Index: ``gradcam``, ``gradcampp``, ``random``, ``centre``; columns ``pointing_game``,
        ``lesion_share`` (NaN without masks), ``foreground_share``, ``specificity`` (mean
        pairwise correlation between patients), ``deletion_drop`` (mean drop of the image
        score over the deletion fractions), ``randomisation_correlation`` (NaN for baselines).
    """

    n_scans: int
    n_lesion_scans: int
    target_layer: str
    auroc: float
    auroc_low: float
    auroc_high: float
    summary: pd.DataFrame

    @property
    def informative(self) -> bool:
        """Whether the imaging model beats chance: its AUROC CI lies above 0.5."""
        return bool(np.isfinite(self.auroc_low) and self.auroc_low > 0.5)

    def checks(self, method: str = "gradcam") -> dict[str, bool]:
        """Pass/fail of the map's targets (a check without a measurement is left out).

        Examples
        --------
        >>> summary = pd.DataFrame({"pointing_game": [0.9, 0.25], "foreground_share": [0.95, 1],
        ...     "specificity": [0.2, 1.0], "randomisation_correlation": [0.1, np.nan],
        ...     "deletion_drop": [0.5, 0.0], "lesion_share": [0.4, 0.1]},
        ...     index=["gradcam", "centre"]).reindex(["gradcam", "random", "centre"])
        >>> trust = ImagingMapTrust(20, 10, "features.block3", 0.7, 0.65, 0.75, summary)
        >>> trust.checks()
        {'beats_centre_prior': True, 'on_foreground': True, 'patient_specific': True, \
'changes_with_random_weights': True}
        """
        value = self.value
        result: dict[str, bool] = {}
        hit, centre = value(method, "pointing_game"), value("centre", "pointing_game")
        if np.isfinite(hit) and np.isfinite(centre):
            result["beats_centre_prior"] = bool(hit > centre)
        drop, random_drop = value(method, "deletion_drop"), value("random", "deletion_drop")
        if np.isfinite(drop) and np.isfinite(random_drop):
            result["beats_random_deletion"] = bool(drop > random_drop)
        share = value(method, "foreground_share")
        if np.isfinite(share):
            result["on_foreground"] = bool(share >= MIN_FOREGROUND_SHARE)
        specificity = value(method, "specificity")
        if np.isfinite(specificity):
            result["patient_specific"] = bool(specificity < MAX_SPECIFICITY_CORRELATION)
        randomised = value(method, "randomisation_correlation")
        if np.isfinite(randomised):
            result["changes_with_random_weights"] = bool(randomised < MAX_RANDOMISATION_CORRELATION)
        return result

    def value(self, name: str, column: str) -> float:
        """One figure as a float; NaN when the map or the measurement is absent."""
        if name not in self.summary.index or column not in self.summary.columns:
            return float("nan")
        return float(np.asarray(self.summary.loc[name, column], dtype=np.float64))

    def to_metrics(self) -> dict[str, Any]:
        """JSON-ready form, as stored under the imaging version's ``map_trust`` metric."""
        fields = {k: v for k, v in asdict(self).items() if k != "summary"}
        return {
            **{k: (_finite(v) if isinstance(v, float) else v) for k, v in fields.items()},
            "summary": {
                str(name): {str(k): _finite(v) for k, v in row.items()}
                for name, row in self.summary.iterrows()
            },
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> ImagingMapTrust:
        """Inverse of :meth:`to_metrics`."""
        summary = pd.DataFrame.from_dict(dict(metrics["summary"]), orient="index").astype(float)

        def number(key: str) -> float:
            value = metrics.get(key)
            return float("nan") if value is None else float(value)

        return cls(
            n_scans=int(metrics["n_scans"]),
            n_lesion_scans=int(metrics["n_lesion_scans"]),
            target_layer=str(metrics["target_layer"]),
            auroc=number("auroc"),
            auroc_low=number("auroc_low"),
            auroc_high=number("auroc_high"),
            summary=summary,
        )


class _HasImagingRecord(Protocol):
    @property
    def models(self) -> Any: ...


def imaging_map_trust(service: _HasImagingRecord) -> ImagingMapTrust | None:
    """The active imaging version's stored trust figures (``RiskService.imaging_map_trust``).

    None when the version was trained before the check existed or has no 2D test scans.
    """
    metrics = service.models.imaging_record.metrics.get("map_trust")
    return None if metrics is None else ImagingMapTrust.from_metrics(metrics)


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if np.isfinite(number) else None


def randomised_copy(net: RiskCNN, random_state: int) -> RiskCNN:
    """The same architecture with freshly initialised weights (the randomisation check).

    The global torch random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        spec = asdict(net.spec)
        return RiskCNN(**spec).eval()


class _ScoreAdapter:
    """Wraps a score function as the ``risk(images)`` that ``deletion_drops`` calls."""

    def __init__(self, score: ScoreFunction) -> None:
        self._score = score

    def risk(self, images: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self._score(np.asarray(images, dtype=np.float32))


def image_score_function(
    nets: Sequence[RiskCNN], scaling: Mapping[str, Sequence[float]]
) -> ScoreFunction:
    """The standardised image score (mean over the nets), as ``fusion.features`` computes it."""

    def score(images: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        total = np.zeros(len(images), dtype=np.float64)
        for k, net in enumerate(nets):
            mean, sd = (float(v) for v in scaling[str(k)])
            total += (embed(net, images)[1].astype(np.float64) - mean) / sd
        return total / len(nets)

    return score


def _mean_pairwise_correlation(maps: Sequence[npt.NDArray[np.float32]]) -> float:
    flat = np.stack([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    flat = flat[flat.std(axis=1) > 0]
    if len(flat) < 2:
        return float("nan")
    corr = np.corrcoef(flat)
    upper = corr[np.triu_indices(len(flat), k=1)]
    return float(np.mean(upper))


def _mean_map(explainers: Sequence[GradCamExplainer], scan: npt.NDArray[np.float32], method: str):  # type: ignore[no-untyped-def]
    mean = np.mean([e.compute(scan, method=method) for e in explainers], axis=0)  # type: ignore[arg-type]
    peak = float(mean.max())
    return (mean / peak if peak > 0 else mean).astype(np.float32)


def evaluate_imaging_maps(
    nets: Sequence[RiskCNN],
    scaling: Mapping[str, Sequence[float]],
    scans: npt.ArrayLike,
    masks: Sequence[npt.NDArray[np.uint8] | None],
    *,
    auroc: tuple[float, float, float] = (float("nan"),) * 3,
    target_layer: str = GRADCAM_TARGET,
    fractions: Sequence[float] = DELETION_FRACTIONS,
    random_state: int = 0,
) -> ImagingMapTrust:
    """Measure the imaging maps' trust figures on scans the nets did not train on.

    Parameters
    ----------
    nets : sequence of RiskCNN
        The fold nets; each map is their mean (as on the page for a test patient).
    scaling : mapping of fold (str) to ``[mean, sd]``
        The imaging record's logit standardisation.
    scans : array-like of shape (n, H, W)
        Normalised test scans.
    masks : sequence of (H, W) arrays or None
        True lesion masks (None or empty: no lesion; localisation uses the others).
    auroc : (auroc, low, high), optional
        The imaging model's out-of-fold AUROC and CI, stored with the figures.
    target_layer : str, default=GRADCAM_TARGET
        The layer Grad-CAM explains.
    fractions : sequence of float, default=DELETION_FRACTIONS
        Deletion fractions.
    random_state : int, default=0
        Seed of the random baseline maps.

    Returns
    -------
    ImagingMapTrust

    Raises
    ------
    ValueError
        If scans and masks differ in number or there are no scans.
    """
    images = np.asarray(scans, dtype=np.float32)
    if images.ndim != 3 or len(images) == 0 or len(images) != len(masks):
        raise ValueError(
            f"Got scans of shape {images.shape} and {len(masks)} masks; pass n >= 1 scans "
            "(n, H, W) and one mask (or None) per scan."
        )
    rng = np.random.default_rng(random_state)
    explainers = [GradCamExplainer(net, target_layer=target_layer) for net in nets]
    randomised = [
        GradCamExplainer(randomised_copy(net, RANDOM_WEIGHTS_SEED + k), target_layer=target_layer)
        for k, net in enumerate(nets)
    ]
    scorer = _ScoreAdapter(image_score_function(nets, scaling))
    names = (*IMAGING_MAPS, *BASELINES)
    shown: dict[str, list[npt.NDArray[np.float32]]] = {name: [] for name in names}
    hits: dict[str, list[float]] = {name: [] for name in names}
    inside: dict[str, list[float]] = {name: [] for name in names}
    on_body: dict[str, list[float]] = {name: [] for name in names}
    drops: dict[str, list[float]] = {name: [] for name in (*IMAGING_MAPS, "random")}
    random_corr: dict[str, list[float]] = {name: [] for name in IMAGING_MAPS}
    for scan, mask in zip(images, masks, strict=True):
        body = foreground_mask(scan)
        noise = random_map(scan.shape, rng)  # type: ignore[arg-type]
        maps = {
            **{m: _mean_map(explainers, scan, m) for m in IMAGING_MAPS},
            "random": noise,
            "centre": centre_map(scan.shape),  # type: ignore[arg-type]
        }
        lesion = mask is not None and bool(np.asarray(mask).any())
        for name, heat in maps.items():
            on_body[name].append(energy_inside(heat, body))
            shown[name].append(heat)  # unbounded: a shared body mask is not specificity
            displayed = bound_to_foreground(heat, body)
            if lesion and mask is not None:
                hits[name].append(float(pointing_hit(displayed, mask)))
                inside[name].append(energy_inside(displayed, mask))
            if name in drops:
                curve = deletion_drops(scorer, scan, displayed, fractions, tie_break=noise)
                drops[name].append(float(np.mean(curve)))
        for method in IMAGING_MAPS:
            random_heat = _mean_map(randomised, scan, method)
            rho = spearmanr(maps[method].ravel(), random_heat.ravel()).statistic
            random_corr[method].append(float(rho) if np.isfinite(rho) else 0.0)

    def mean(values: Sequence[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    summary = pd.DataFrame(
        {
            "pointing_game": [mean(hits[n]) for n in names],
            "lesion_share": [mean(inside[n]) for n in names],
            "foreground_share": [mean(on_body[n]) for n in names],
            "specificity": [_mean_pairwise_correlation(shown[n]) for n in names],
            "deletion_drop": [mean(drops.get(n, [])) for n in names],
            "randomisation_correlation": [mean(random_corr.get(n, [])) for n in names],
        },
        index=pd.Index(names, name="map"),
    )
    return ImagingMapTrust(
        n_scans=len(images),
        n_lesion_scans=len(hits["gradcam"]),
        target_layer=target_layer,
        auroc=float(auroc[0]),
        auroc_low=float(auroc[1]),
        auroc_high=float(auroc[2]),
        summary=summary,
    )


def evaluate_test_imaging_maps(
    nets: Sequence[RiskCNN],
    scaling: Mapping[str, Sequence[float]],
    images: pd.DataFrame,
    test_ids: Sequence[str],
    artifacts_dir: Path,
    *,
    auroc: tuple[float, float, float],
    max_scans: int = MAX_IMAGING_TRUST_SCANS,
    random_state: int = 0,
) -> ImagingMapTrust | None:
    """The train-time check: :func:`evaluate_imaging_maps` on the first test scans by id.

    Parameters
    ----------
    nets, scaling
        The fold nets and the imaging record's logit standardisation.
    images : DataFrame
        The store's image index (``patient_id, path, mask_path``).
    test_ids : sequence of str
        Test-split patients.
    artifacts_dir : Path
        Where scan and mask files live.
    auroc : (auroc, low, high)
        The nets' out-of-fold AUROC and CI.
    max_scans : int, default=MAX_IMAGING_TRUST_SCANS
        At most this many scans, to bound train time.
    random_state : int, default=0
        Seed of the random baselines.

    Returns
    -------
    ImagingMapTrust or None
        None when no test patient has a 2D scan.
    """
    rows = images.loc[images["patient_id"].isin(list(test_ids))].sort_values("patient_id")
    rows = rows.head(max_scans)
    scans: list[npt.NDArray[np.float32]] = []
    masks: list[npt.NDArray[np.uint8] | None] = []
    for row in rows.itertuples():
        raw = np.load(artifacts_dir / str(row.path), allow_pickle=False)
        if raw.ndim != 2:
            continue
        scans.append(normalize_scan(raw.astype(np.float32)))
        mask_path = getattr(row, "mask_path", None)
        masks.append(
            None
            if mask_path is None or pd.isna(mask_path)
            else np.load(artifacts_dir / str(mask_path), allow_pickle=False).astype(np.uint8)
        )
    if not scans:
        return None
    return evaluate_imaging_maps(
        nets, scaling, np.stack(scans), masks, auroc=auroc, random_state=random_state
    )
