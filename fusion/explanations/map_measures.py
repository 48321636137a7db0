"""Measures of one explanation map against a known lesion, and the baseline maps.

Owns the pointing game, the share of map energy inside the lesion, the ROAD-style deletion
drops in fused risk, the random and centre baseline maps, the page's maps of one scan and the
SHAP additivity check. Pure: arrays and models in, numbers out. Must not import the store,
streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.ndimage import gaussian_filter

from fusion.explain import shap_values
from fusion.explanations.occlusion import FusedImageScorer, occlusion_map
from fusion.model import FusionClassifier
from models.foreground import foreground_mask
from models.gradcam import GradCamExplainer

__all__ = [
    "DELETION_FRACTIONS",
    "bound_to_foreground",
    "centre_map",
    "deletion_drops",
    "energy_inside",
    "patient_maps",
    "pointing_hit",
    "random_map",
    "shap_additivity_error",
]

DELETION_FRACTIONS: Final[tuple[float, ...]] = (0.02, 0.05, 0.1, 0.2)
"""Shares of the pixels removed on the deletion curve."""


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


def bound_to_foreground(
    saliency: npt.ArrayLike, foreground: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """The map with everything off the body set to 0, rescaled so its maximum is 1 again.

    Examples
    --------
    >>> bound_to_foreground(np.array([[0.5, 1.0]]), np.array([[True, False]])).tolist()
    [[1.0, 0.0]]
    """
    heat = np.where(np.asarray(foreground, dtype=bool), np.asarray(saliency, np.float64), 0.0)
    peak = float(heat.max(initial=0.0))
    return np.asarray(heat / peak if peak > 0 else heat, dtype=np.float32)


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


class RiskFunction(Protocol):
    """Anything with ``risk(images (N, H, W)) -> (N,)``, e.g. a :class:`FusedImageScorer`."""

    def risk(self, images: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The score of each image."""
        ...


def deletion_drops(
    scorer: RiskFunction,
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
    scorer : RiskFunction
        The patient's fused risk as a function of the scan (or the image score).
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
    """The page's three maps of one scan, each in [0, 1] at scan resolution, on the body.

    Grad-CAM and Grad-CAM++ are averaged over ``explainers`` (one per net that scores the
    patient); the occlusion map comes from :func:`occlusion_map`. Each is then bounded to the
    scan's foreground (:func:`bound_to_foreground`), as the page draws it.
    """
    image = np.asarray(scan, dtype=np.float32)
    body = foreground_mask(image)
    maps: dict[str, npt.NDArray[np.float32]] = {}
    for method in ("gradcam", "gradcampp"):
        mean = np.mean([e.compute(image, method=method) for e in explainers], axis=0)
        maps[method] = bound_to_foreground(mean, body)
    maps["occlusion"] = bound_to_foreground(occlusion_map(scorer, image).saliency, body)
    return maps


def shap_additivity_error(model: FusionClassifier, X: pd.DataFrame) -> float:
    """Largest ``|base + sum(SHAP) - margin|`` over the rows of ``X`` (log-odds)."""
    result = shap_values(model, X)
    return float(np.max(np.abs(result.margin() - model.decision_function(X)), initial=0.0))
