"""Intensity normalisation and training augmentation for 2D scans.

Owns :func:`normalize_scan` (per-image robust scaling applied before training, embedding and
Grad-CAM), :func:`make_train_transforms` (the MONAI augmentation pipeline for one ``(C, H, W)``
image) and :func:`augment_batch`, its batched torch twin that :func:`models.train.train` uses.

Why two augmentation paths: MONAI array transforms work one sample at a time, which cost more
than the train step itself, while :func:`augment_batch` is one ``affine_grid``/``grid_sample``
call for the whole batch (measured in ``docs/models.md``). Both draw from the same ranges (the
module constants). This module knows numpy, torch and MONAI only: it must not
import pandas, SQL, streamlit, ``fusion`` or ``dashboard``.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from monai.transforms.compose import Compose
from monai.transforms.intensity.array import (
    RandGaussianNoise,
    RandScaleIntensity,
    RandShiftIntensity,
)
from monai.transforms.spatial.array import RandFlip, RandRotate, RandZoom
from monai.transforms.utility.array import EnsureType

__all__ = [
    "FLIP_PROB",
    "NOISE_PROB",
    "NOISE_STD",
    "ROTATE_DEGREES",
    "SCALE_FACTOR",
    "SHIFT_OFFSET",
    "ZOOM_RANGE",
    "augment_batch",
    "make_train_transforms",
    "normalize_scan",
]

FLIP_PROB: Final = 0.5
"""Probability of flipping each spatial axis."""

ROTATE_DEGREES: Final = 15.0
"""Rotations are drawn uniformly from ``[-ROTATE_DEGREES, ROTATE_DEGREES]``."""

ZOOM_RANGE: Final = (0.9, 1.1)
"""Zoom factors are drawn uniformly from this range (1.1 magnifies)."""

SCALE_FACTOR: Final = 0.1
"""Intensities are multiplied by ``1 + u``, ``u`` uniform in ``[-SCALE_FACTOR, SCALE_FACTOR]``."""

SHIFT_OFFSET: Final = 0.1
"""An offset uniform in ``[-SHIFT_OFFSET, SHIFT_OFFSET]`` is added to the intensities."""

NOISE_PROB: Final = 0.5
"""Probability of adding Gaussian noise."""

NOISE_STD: Final = 0.05
"""Upper bound on the standard deviation of the added Gaussian noise."""

CLIP: Final = 10.0
"""Normalised intensities are clipped to ``[-CLIP, CLIP]``."""

_IQR_PER_SIGMA: Final = 1.3489795003921634
"""Interquartile range of a unit Gaussian."""

_P1_P99_PER_SIGMA: Final = 4.6526957480816815
"""Spread between the 1st and 99th percentiles of a unit Gaussian."""


def normalize_scan(images: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Scale each image robustly so that scanner gain and offset no longer matter.

    For every image separately, ``(x - median) / (IQR / 1.349)``, clipped to ``[-10, 10]``:
    Gaussian intensities end up with zero median and unit variance. Percentiles move with any
    gain ``a > 0`` and offset ``b``, so ``normalize_scan(a * x + b) == normalize_scan(x)`` up to
    rounding, which removes gain and offset differences between sites. The quartiles barely move
    when a small bright lesion is present, so the lesion keeps its contrast and its presence does
    not leak into the scale of the whole image (it would with a min-max or 99th-percentile
    scale). When the IQR is 0 (more than half the image is flat background) the 1st-99th
    percentile spread, then the full range, is used; a constant image maps to zeros, never NaN.

    Parameters
    ----------
    images : array-like of shape (H, W) or (N, H, W)
        Raw intensities, one image or a stack.

    Returns
    -------
    numpy.ndarray of float32, same shape as ``images``
        Normalised intensities.

    Raises
    ------
    ValueError
        If the array is not 2D or 3D, is empty, or holds NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 32, 32))
    >>> bool(np.allclose(normalize_scan(3.0 * x + 100.0), normalize_scan(x), atol=1e-4))
    True
    >>> normalize_scan(np.full((4, 4), 7.0)).max()
    np.float32(0.0)
    """
    array = np.asarray(images, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"images has shape {array.shape}; pass one image (H, W) or a stack (N, H, W)."
        )
    if array.size == 0:
        raise ValueError(f"images is empty (shape {array.shape}); pass at least one pixel.")
    if not np.isfinite(array).all():
        raise ValueError("images contains NaN or infinite values; clean the scan before scaling.")
    stack = array[None] if array.ndim == 2 else array
    p1, p25, median, p75, p99 = np.percentile(
        stack, [1.0, 25.0, 50.0, 75.0, 99.0], axis=(1, 2), keepdims=True
    )
    full_range = stack.max(axis=(1, 2), keepdims=True) - stack.min(axis=(1, 2), keepdims=True)
    scale = (p75 - p25) / _IQR_PER_SIGMA
    scale = np.where(scale > 0, scale, (p99 - p1) / _P1_P99_PER_SIGMA)
    scale = np.where(scale > 0, scale, full_range)
    safe = np.where(scale > 0, scale, 1.0)
    scaled = np.where(scale > 0, (stack - median) / safe, 0.0)
    result = np.clip(scaled, -CLIP, CLIP).astype(np.float32)
    return result[0] if array.ndim == 2 else result


def make_train_transforms(random_state: int) -> Compose:
    """Build the MONAI augmentation pipeline for one normalised ``(C, H, W)`` image.

    Flips on both axes (``FLIP_PROB`` each), a rotation within ``±ROTATE_DEGREES``, a zoom in
    ``ZOOM_RANGE`` (size kept), an intensity scale and shift, and Gaussian noise with probability
    ``NOISE_PROB``. Borders are padded by repeating edge pixels. The result is a plain
    ``torch.Tensor`` (no MONAI metadata).

    Parameters
    ----------
    random_state : int
        Seed; the same seed and inputs give the same outputs.

    Returns
    -------
    monai.transforms.Compose
        Callable mapping a ``(C, H, W)`` array or tensor to a ``(C, H, W)`` float32 tensor.

    Examples
    --------
    >>> import torch
    >>> image = torch.rand(1, 32, 32)
    >>> a = make_train_transforms(3)(image)
    >>> b = make_train_transforms(3)(image)
    >>> a.shape, bool(torch.equal(a, b))
    (torch.Size([1, 32, 32]), True)
    """
    if isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0:
        raise ValueError(f"random_state={random_state!r} is invalid; pass an integer >= 0.")
    angle = math.radians(ROTATE_DEGREES)
    transforms = Compose(
        [
            EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False),
            RandFlip(prob=FLIP_PROB, spatial_axis=0),
            RandFlip(prob=FLIP_PROB, spatial_axis=1),
            RandRotate(range_x=angle, prob=1.0, keep_size=True, padding_mode="border"),
            RandZoom(prob=1.0, min_zoom=ZOOM_RANGE[0], max_zoom=ZOOM_RANGE[1], padding_mode="edge"),
            RandScaleIntensity(factors=SCALE_FACTOR, prob=1.0),
            RandShiftIntensity(offsets=SHIFT_OFFSET, prob=1.0),
            RandGaussianNoise(prob=NOISE_PROB, std=NOISE_STD, sample_std=True),
            EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False),
        ]
    )
    transforms.set_random_state(seed=random_state)
    return transforms


def _uniform(
    size: int, low: float, high: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=like.dtype)


def augment_batch(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Augment a batch with the ranges of :func:`make_train_transforms`, in one pass.

    Each image gets its own flips, rotation, zoom, intensity scale and shift and (with
    probability ``NOISE_PROB``) noise, all drawn from ``generator``. Geometry is one
    ``affine_grid`` + bilinear ``grid_sample`` with border padding; rotations are in pixel
    space, so non-square images are not sheared.

    Parameters
    ----------
    images : torch.Tensor of shape (B, C, H, W)
        Normalised images (CPU).
    generator : torch.Generator
        Source of randomness; seed it for reproducible training.

    Returns
    -------
    torch.Tensor of shape (B, C, H, W)
        Augmented images (a new tensor).

    Raises
    ------
    ValueError
        If ``images`` is not 4D.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(4, 1, 32, 32)
    >>> a = augment_batch(x, generator=torch.Generator().manual_seed(0))
    >>> b = augment_batch(x, generator=torch.Generator().manual_seed(0))
    >>> a.shape, bool(torch.equal(a, b))
    (torch.Size([4, 1, 32, 32]), True)
    """
    if images.ndim != 4:
        raise ValueError(
            f"images has shape {tuple(images.shape)}; augment_batch expects (B, C, H, W)."
        )
    batch, _, height, width = images.shape
    if batch == 0:
        return images.clone()
    angle = _uniform(
        batch, -math.radians(ROTATE_DEGREES), math.radians(ROTATE_DEGREES), generator, images
    )
    zoom = _uniform(batch, ZOOM_RANGE[0], ZOOM_RANGE[1], generator, images)
    flip_x = torch.where(torch.rand(batch, generator=generator) < FLIP_PROB, -1.0, 1.0)
    flip_y = torch.where(torch.rand(batch, generator=generator) < FLIP_PROB, -1.0, 1.0)
    # theta maps output to input coordinates in [-1, 1]; rotate in pixel units, then rescale.
    cos = torch.cos(angle) / zoom
    sin = torch.sin(angle) / zoom
    aspect = width / height
    zero = torch.zeros(batch, dtype=images.dtype)
    theta = torch.stack(
        [
            torch.stack([cos * flip_x, -sin / aspect * flip_y, zero], dim=1),
            torch.stack([sin * aspect * flip_x, cos * flip_y, zero], dim=1),
        ],
        dim=1,
    ).to(images.dtype)
    grid = F.affine_grid(theta, [batch, images.shape[1], height, width], align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    scale = 1.0 + _uniform(batch, -SCALE_FACTOR, SCALE_FACTOR, generator, images)
    shift = _uniform(batch, -SHIFT_OFFSET, SHIFT_OFFSET, generator, images)
    noisy = (torch.rand(batch, generator=generator) < NOISE_PROB).to(images.dtype)
    noise_std = noisy * _uniform(batch, 0.0, NOISE_STD, generator, images)
    noise = torch.randn(moved.shape, generator=generator, dtype=images.dtype)
    shape = (batch, 1, 1, 1)
    return (
        moved * scale.view(shape) + shift.view(shape) + noise * noise_std.view(shape)
    ).contiguous()
