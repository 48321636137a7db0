"""Renderer of the synthetic scans and their true lesion masks.

Owns :func:`render_scans`: body outline, organs, smooth texture and textured lesions under each
site's scanner, from a per-patient random stream so that any chunk renders the same pixels as
the whole cohort. Imports only :mod:`data.vocabulary` and the sibling modules ``parameters``
and ``bias``.
"""

from __future__ import annotations

import functools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from data.synthetic.bias import DemoBias
from data.synthetic.parameters import NOISE_BANK_STREAM, RENDER_STREAM, SITE_SCANNERS
from data.vocabulary import SITES

__all__ = ["render_scans"]


_N_ANATOMY_DRAWS: Final[int] = 24
_LOW_FREQUENCY_CELLS: Final[int] = 3  # smooth tissue texture: B-spline cells across the image
_TEXTURE_CELL_PX: Final[int] = 8  # lesion texture grain in pixels
# Pixels per vectorised render batch: temporaries of at most 128 KiB are recycled by the allocator
# instead of being mapped afresh (which costs page faults that dominate the render time).
_RENDER_BATCH_PIXELS: Final[int] = 32_768


@functools.cache
def _noise_bank(size: int) -> npt.NDArray[np.float32]:
    """Fixed field of white Gaussian noise, ``(side, side)`` with ``side = max(512, 2 * size)``.

    Each scan takes its noise from a window of this field at a random offset, randomly flipped:
    as random as fresh noise for any model, at a fraction of the cost of drawing it.
    """
    side = max(512, 2 * size)
    rng = np.random.default_rng([NOISE_BANK_STREAM, side])
    return rng.standard_normal((side, side), dtype=np.float32)


@functools.cache
def _spline_basis(size: int, cells: int) -> npt.NDArray[np.float32]:
    """Cubic B-spline basis ``(size, cells + 3)`` mapping coarse noise onto ``size`` pixels.

    Rows are scaled so that white coarse noise gives a smooth field of unit variance.
    """
    position = (np.arange(size, dtype=np.float64) + 0.5) / size * cells
    cell = np.floor(position)
    f = (position - cell)[:, None]
    weights = np.concatenate(
        [
            (1 - f) ** 3 / 6,
            (3 * f**3 - 6 * f**2 + 4) / 6,
            (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
            f**3 / 6,
        ],
        axis=1,
    )
    weights /= np.sqrt((weights**2).sum(axis=1, keepdims=True))
    basis = np.zeros((size, cells + 3), dtype=np.float32)
    np.put_along_axis(basis, cell.astype(np.intp)[:, None] + np.arange(4), weights, axis=1)
    return basis


def _spline_taps(size: int, cells: int, start: int, stop: int) -> slice:
    """Coarse nodes that pixels ``start:stop`` depend on (the basis is zero elsewhere)."""
    first = math.floor((start + 0.5) / size * cells)
    last = math.floor((stop - 0.5) / size * cells)
    return slice(first, last + 4)


def _spline_field(
    coarse: npt.NDArray[np.float32],
    basis_y: npt.NDArray[np.float32],
    basis_x: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Smooth field ``(..., h, w)`` from coarse noise ``(..., g, g)`` and two spline bases.

    ``basis_y`` has shape ``(h, g)`` and ``basis_x`` shape ``(w, g)`` (rows of
    :func:`_spline_basis`, columns cut to the nodes in use).

    Only broadcast multiply-adds (no BLAS), so a patient's field is bit-identical in any batch.
    """
    across = coarse[..., :, :1] * basis_x[:, 0]
    for k in range(1, basis_x.shape[1]):
        across += coarse[..., :, k : k + 1] * basis_x[:, k]
    field_ = across[..., :1, :] * basis_y[:, :1]
    for k in range(1, basis_y.shape[1]):
        field_ += across[..., k : k + 1, :] * basis_y[:, k : k + 1]
    return field_


def _gaussian_profile(
    coordinate: npt.NDArray[np.float32],
    centre: npt.NDArray[np.float32],
    sigma: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """One-dimensional Gaussian profiles, shape ``(n, size)``."""
    return np.asarray(
        np.exp(-0.5 * ((coordinate[None, :] - centre[:, None]) / sigma[:, None]) ** 2),
        dtype=np.float32,
    )


def _draw_lesion(
    layer: npt.NDArray[np.float32],
    mask: npt.NDArray[np.uint8],
    params: npt.NDArray[np.float64],
    texture: npt.NDArray[np.float32],
    edge_px: float,
) -> None:
    """Draw one lesion into a patient's lesion layer and mask (in place, on its bounding box).

    The mask is the hard ellipse; the intensity falls off over ``edge_px`` across its border.
    """
    size = layer.shape[0]
    cy, cx, ry, rx, angle, contrast, heterogeneity = params.tolist()
    ry_px = max(ry * size, 1.0)  # at least one pixel, so every lesion shows at small sizes
    rx_px = max(rx * size, 1.0)
    reach = max(ry_px, rx_px) + edge_px + 1.0
    y0, y1 = max(math.floor(cy * size - reach), 0), min(math.ceil(cy * size + reach), size)
    x0, x1 = max(math.floor(cx * size - reach), 0), min(math.ceil(cx * size + reach), size)
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy * size)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx * size)[None, :]
    cos, sin = math.cos(angle), math.sin(angle)
    along = dy * (cos / ry_px) + dx * (sin / ry_px)
    across = dx * (cos / rx_px) - dy * (sin / rx_px)
    q = along * along + across * across
    cells = texture.shape[-1] - 3
    basis = _spline_basis(size, cells)
    taps_y, taps_x = _spline_taps(size, cells, y0, y1), _spline_taps(size, cells, x0, x1)
    grain = _spline_field(texture[taps_y, taps_x], basis[y0:y1, taps_y], basis[x0:x1, taps_x])
    # Depth inside the border in pixels is about (1 - sqrt(q)) * radius.
    border = (1.0 - np.sqrt(q)) * (math.sqrt(ry_px * rx_px) / edge_px) + 0.5
    value = np.minimum(np.maximum(border, 0.0), 1.0) * contrast
    value *= 0.8 + 0.2 * np.maximum(1.0 - q, 0.0)
    value *= np.maximum(1.0 + heterogeneity * grain, 0.3)
    box = layer[y0:y1, x0:x1]
    np.maximum(box, value, out=box)
    mask[y0:y1, x0:x1][q <= 1.0] = 1


def render_scans(
    *,
    seed: int,
    bias: DemoBias | None,
    indices: npt.NDArray[np.int64],
    site_codes: npt.NDArray[np.int64],
    lesion_params: npt.NDArray[np.float64],
    lesion_counts: npt.NDArray[np.int64],
    size: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Render the scans of the given patients, in batches of :data:`_RENDER_BATCH_PIXELS`.

    Each patient's randomness comes from its own stream and every operation is per image, so the
    pixels of a patient never depend on which chunk or batch it is rendered in.
    """
    n = indices.size
    images = np.empty((n, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    first_lesion = np.concatenate([[0], np.cumsum(lesion_counts)]).astype(np.int64)
    batch = max(1, _RENDER_BATCH_PIXELS // (size * size))
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        rows = slice(start, stop)
        images[rows] = _render_batch(
            seed=seed,
            bias=bias,
            indices=indices[rows],
            site_codes=site_codes[rows],
            lesion_params=lesion_params[first_lesion[start] : first_lesion[stop]],
            lesion_counts=lesion_counts[rows],
            masks=masks[rows],
        )
    return images, masks


def _render_batch(
    *,
    seed: int,
    bias: DemoBias | None,
    indices: npt.NDArray[np.int64],
    site_codes: npt.NDArray[np.int64],
    lesion_params: npt.NDArray[np.float64],
    lesion_counts: npt.NDArray[np.int64],
    masks: npt.NDArray[np.uint8],
) -> npt.NDArray[np.float32]:
    """Render one batch: images ``(n, H, W)`` returned, lesion masks written into ``masks``."""
    n, size = masks.shape[0], masks.shape[1]
    texture_cells = max(2, size // _TEXTURE_CELL_PX)
    uniforms = np.empty((n, _N_ANATOMY_DRAWS), dtype=np.float32)
    low = np.empty((n, _LOW_FREQUENCY_CELLS + 3, _LOW_FREQUENCY_CELLS + 3), dtype=np.float32)
    texture = np.empty((n, texture_cells + 3, texture_cells + 3), dtype=np.float32)
    bank = _noise_bank(size)
    noise = np.empty((n, size, size), dtype=np.float32)
    for row, index in enumerate(indices.tolist()):
        rng = np.random.default_rng([seed, RENDER_STREAM, index])
        rng.random(dtype=np.float32, out=uniforms[row])
        rng.standard_normal(dtype=np.float32, out=low[row])
        rng.standard_normal(dtype=np.float32, out=texture[row])
        top, left, flip = rng.integers(0, [bank.shape[0] - size, bank.shape[1] - size, 4])
        window = bank[top : top + size, left : left + size]
        noise[row] = window[:: -1 if flip & 1 else 1, :: -1 if flip & 2 else 1]
    u = uniforms.T  # one row per anatomical parameter, one column per patient
    scanners = SITE_SCANNERS if bias is None else bias.scanners()
    lesion_gain = (1.0,) * len(SITES) if bias is None else bias.lesion_contrasts()
    scanner = np.asarray(
        [
            [s.gain, s.offset, s.curve, s.edge_px, s.noise_sd, g]
            for s, g in zip(scanners, lesion_gain, strict=True)
        ],
        dtype=np.float32,
    )[site_codes].T[:, :, None, None]
    gain, offset, curve, edge_px, noise_sd, lesion_visibility = scanner
    edge_px = np.maximum(edge_px * (size / 128), 0.5)

    coordinate = (np.arange(size, dtype=np.float32) + 0.5) / size
    # Body: slightly rotated ellipse; soft outline and a brighter rim (subcutaneous layer).
    # (1 - r**2) * 0.19 * size approximates the depth below the outline in pixels.
    body_cy, body_cx = 0.5 + 0.015 * (2 * u[0] - 1), 0.5 + 0.015 * (2 * u[1] - 1)
    body_ay, body_ax = 0.33 + 0.05 * u[2], 0.42 + 0.05 * u[3]
    theta = 0.08 * (2 * u[4] - 1)
    dy = (coordinate[None, :] - body_cy[:, None])[:, :, None]
    dx = (coordinate[None, :] - body_cx[:, None])[:, None, :]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    ay, ax = body_ay[:, None, None], body_ax[:, None, None]
    along = dy * (cos / ay) + dx * (sin / ay)
    across = dx * (cos / ax) - dy * (sin / ax)
    depth = (1.0 - along**2 - across**2) * (0.19 * size)
    body = np.clip(depth / edge_px + 0.5, 0.0, 1.0)
    rim = 0.12 * np.clip(np.minimum(depth, 0.03 * size - depth) / edge_px + 0.5, 0.0, 1.0)

    # Tissue with smooth low-frequency texture, two darker paired organs, a brighter organ and a
    # bright spine; Gaussian organs are separable, so each costs two full-size operations.
    low_basis = _spline_basis(size, _LOW_FREQUENCY_CELLS)
    tissue = (0.42 + 0.06 * u[5])[:, None, None] * (
        1.0 + 0.10 * _spline_field(low, low_basis, low_basis)
    )
    organs = (
        (
            -0.17,
            0.47 + 0.03 * (2 * u[6] - 1),
            0.33 - 0.02 * u[7],
            0.09 + 0.02 * u[8],
            0.05 + 0.01 * u[9],
        ),
        (
            -0.17,
            0.47 + 0.03 * (2 * u[10] - 1),
            0.67 + 0.02 * u[11],
            0.09 + 0.02 * u[12],
            0.05 + 0.01 * u[13],
        ),
        (
            0.08,
            0.36 + 0.04 * u[14],
            0.5 + 0.05 * (2 * u[15] - 1),
            0.06 + 0.02 * u[16],
            0.09 + 0.02 * u[17],
        ),
        (
            0.26,
            0.74 + 0.02 * u[18],
            0.5 + 0.01 * (2 * u[19] - 1),
            0.025 + 0.005 * u[20],
            0.025 + 0.005 * u[20],
        ),
    )
    for level, centre_y, centre_x, sigma_y, sigma_x in organs:
        profile_y = level * _gaussian_profile(coordinate, centre_y, sigma_y)
        profile_x = _gaussian_profile(coordinate, centre_x, sigma_x)
        tissue += profile_y[:, :, None] * profile_x[:, None, :]
    clean = body * (tissue + rim)

    # Lesions, each drawn on its bounding box; overlapping lesions keep the brighter value.
    first = 0
    for row, count in enumerate(lesion_counts.tolist()):
        layer = np.zeros((size, size), dtype=np.float32)
        for params in lesion_params[first : first + count]:
            _draw_lesion(layer, masks[row], params, texture[row], float(edge_px[row, 0, 0]))
        clean[row] += layer * lesion_visibility[row]
        first += count

    # Each site's scanner: intensity response, then Gaussian noise.
    images = gain * clean * (1.0 + curve * (clean - 0.45)) + offset + noise_sd * noise
    return np.asarray(images, dtype=np.float32)
