from __future__ import annotations

import numpy as np
import pytest

from models.foreground import foreground_mask, otsu_threshold
from models.transforms import normalize_scan


def _body_scan(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipse (with a dark organ inside) on a dark noisy background, and its truth."""
    rows, cols = np.mgrid[:size, :size] + 0.5
    body = ((rows - size / 2) / (0.35 * size)) ** 2 + ((cols - size / 2) / (0.42 * size)) ** 2 <= 1
    organ = ((rows - size / 2) ** 2 + (cols - size / 2) ** 2) <= (0.08 * size) ** 2
    image = 0.05 * rng.normal(size=(size, size)) + 0.6 * body - 0.5 * organ
    return image, body


def test_otsu_splits_two_levels() -> None:
    values = np.r_[np.zeros(300), np.full(100, 4.0)]
    threshold = otsu_threshold(values)
    assert 0.0 < threshold < 4.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_covers_the_body_and_not_the_background(seed: int) -> None:
    image, body = _body_scan(np.random.default_rng(seed))
    mask = foreground_mask(image, margin=0)
    assert (mask & body).sum() / body.sum() > 0.97  # the dark organ is filled in
    assert (mask & ~body).sum() / (~body).sum() < 0.03
    assert mask[32, 32]  # the organ at the centre is anatomy


def test_margin_grows_the_mask_and_gain_offset_do_not_matter() -> None:
    image, _ = _body_scan(np.random.default_rng(0))
    tight = foreground_mask(image, margin=0)
    loose = foreground_mask(image, margin=1 / 32)
    assert loose.sum() > tight.sum()
    assert (loose | tight).sum() == loose.sum()
    np.testing.assert_array_equal(foreground_mask(3.0 * image + 7.0), foreground_mask(image))
    agree = (foreground_mask(normalize_scan(image)) == foreground_mask(image)).mean()
    assert agree > 0.99


def test_constant_image_rules_nothing_out() -> None:
    assert foreground_mask(np.full((8, 8), 2.0)).all()


def test_volume_mask() -> None:
    volume = np.zeros((8, 16, 16))
    volume[2:6, 4:12, 4:12] = 1.0
    mask = foreground_mask(volume, margin=0)
    assert mask.sum() == 4 * 8 * 8


@pytest.mark.parametrize(
    ("image", "match"),
    [(np.zeros(5), r"shape \(5,\)"), (np.full((4, 4), np.nan), "NaN or infinite")],
)
def test_bad_input_is_rejected(image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        foreground_mask(image)
