"""The foreground (body) of a scan: the region an explanation map may highlight.

Owns :func:`otsu_threshold` and :func:`foreground_mask`: Otsu's threshold on the intensities,
the largest connected bright region, its holes filled (dark organs inside the body are
anatomy, not background) and a small margin added (the 8x-upsampled maps blur over the edge).
Works on any modality whose body is brighter than its background (CT, MR, the demo's scans)
and on 2D images or 3D volumes. scikit-image is not a dependency, so Otsu is a 256-bin numpy
histogram (the same rule as ``skimage.filters.threshold_otsu``). This module knows numpy and
scipy only: it must not import pandas, SQL, streamlit, ``fusion`` or ``dashboard``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["FOREGROUND_MARGIN", "foreground_mask", "otsu_threshold"]

FOREGROUND_MARGIN: Final = 1.0 / 64
"""Margin added around the body, as a share of the image side (2 px at 128 px)."""

_BINS: Final = 256


def otsu_threshold(image: npt.ArrayLike) -> float:
    """Otsu's threshold: the cut that maximises the between-class variance of the intensities.

    Otsu, "A Threshold Selection Method from Gray-Level Histograms", IEEE Trans. Systems, Man
    and Cybernetics 9(1), 1979. Pixels strictly above the returned value are foreground.

    Parameters
    ----------
    image : array-like
        Intensities (any shape); must be finite.

    Returns
    -------
    float
        The threshold; the image's minimum for a constant image.

    Raises
    ------
    ValueError
        If the image is empty or holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.r_[np.zeros(50), np.full(50, 10.0)]
    >>> 0.0 < otsu_threshold(image) < 10.0
    True
    """
    values = np.asarray(image, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("image is empty; pass at least one pixel.")
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or infinite values; clean the scan first.")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=_BINS, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)[:-1].astype(np.float64)
    weight_above = values.size - weight_below
    sum_below = np.cumsum(counts * centres)[:-1]
    mean_below = sum_below / np.maximum(weight_below, 1.0)
    mean_above = (float((counts * centres).sum()) - sum_below) / np.maximum(weight_above, 1.0)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


def foreground_mask(
    image: npt.ArrayLike, *, margin: float = FOREGROUND_MARGIN
) -> npt.NDArray[np.bool_]:
    """The body of a scan: Otsu foreground, largest component, holes filled, plus a margin.

    Parameters
    ----------
    image : array-like of shape (H, W) or (D, H, W)
        One scan, raw or normalised (Otsu is unchanged by a positive gain and an offset).
    margin : float, default=FOREGROUND_MARGIN
        Dilation as a share of the smallest side (rounded to whole pixels; 0 for none).

    Returns
    -------
    numpy.ndarray of bool, same shape as ``image``
        True on the body. A constant image (no contrast to split) is all True: nothing can
        be ruled out as background.

    Raises
    ------
    ValueError
        If the image is not 2D or 3D, is empty, or holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((32, 32)); image[8:24, 8:24] = 5.0; image[14:18, 14:18] = 0.0
    >>> mask = foreground_mask(image, margin=0)
    >>> int(mask.sum()), bool(mask[15, 15]), bool(mask[0, 0])
    (256, True, False)
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"image has shape {array.shape}; pass one scan (H, W) or one volume (D, H, W)."
        )
    threshold = otsu_threshold(array)
    bright = array > threshold
    if not bright.any() or bright.all():
        return np.ones(array.shape, dtype=bool)
    labels, count = ndimage.label(bright)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        bright = labels == 1 + int(np.argmax(sizes))
    body = ndimage.binary_fill_holes(bright)
    pixels = round(margin * min(array.shape))
    if pixels > 0:
        body = ndimage.binary_dilation(body, iterations=pixels)
    return np.asarray(body, dtype=bool)
