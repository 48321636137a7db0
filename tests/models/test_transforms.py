from __future__ import annotations

import numpy as np
import pytest
import torch

from models.transforms import augment_batch, make_train_transforms, normalize_scan


@pytest.mark.parametrize(("gain", "offset"), [(1.0, 0.0), (2.5, -300.0), (0.01, 1e4), (40.0, 7.0)])
def test_normalize_scan_removes_gain_and_offset(gain: float, offset: float) -> None:
    images = np.random.default_rng(0).normal(size=(3, 32, 32))
    reference = normalize_scan(images)
    scaled = normalize_scan(gain * images + offset)
    np.testing.assert_allclose(scaled, reference, atol=1e-4)
    assert scaled.dtype == np.float32


@pytest.mark.parametrize("shape", [(32, 32), (4, 16, 24)])
def test_normalize_scan_keeps_shape_and_standardises(shape: tuple[int, ...]) -> None:
    images = 50.0 + 10.0 * np.random.default_rng(1).normal(size=shape)
    result = normalize_scan(images)
    assert result.shape == shape
    assert result.dtype == np.float32
    assert abs(float(np.median(result))) < 1e-5
    assert 0.7 < float(result.std()) < 1.3


def test_normalize_scan_keeps_a_small_lesion_bright() -> None:
    image = np.random.default_rng(2).normal(size=(64, 64))
    image[30:33, 30:33] += 6.0
    result = normalize_scan(image)
    assert result[31, 31] > 4.0


@pytest.mark.parametrize(
    "images",
    [
        np.full((8, 8), 3.0),
        np.zeros((2, 8, 8)),
        np.pad(np.ones((1, 2, 2)), ((0, 0), (5, 5), (5, 5))),
    ],
)
def test_normalize_scan_flat_images_give_finite_values(images: np.ndarray) -> None:
    result = normalize_scan(images)
    assert np.isfinite(result).all()
    if np.ptp(images) == 0:
        assert not result.any()


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros(5), r"images has shape \(5,\)"),
        (np.zeros((1, 1, 4, 4)), "pass one image"),
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
        (np.zeros((0, 4, 4)), "empty"),
    ],
)
def test_normalize_scan_rejects_bad_input(images: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        normalize_scan(images)


def test_train_transforms_are_deterministic_and_keep_shape() -> None:
    image = torch.from_numpy(normalize_scan(np.random.default_rng(3).normal(size=(32, 32))))[None]
    first = make_train_transforms(7)
    second = make_train_transforms(7)
    outputs_a = [first(image) for _ in range(3)]
    outputs_b = [second(image) for _ in range(3)]
    for a, b in zip(outputs_a, outputs_b, strict=True):
        assert type(a) is torch.Tensor
        assert a.shape == (1, 32, 32)
        assert a.dtype == torch.float32
        assert torch.equal(a, b)
    assert not torch.equal(outputs_a[0], outputs_a[1])
    assert not torch.equal(make_train_transforms(8)(image), outputs_a[0])


def test_train_transforms_reject_bad_seed() -> None:
    with pytest.raises(ValueError, match="random_state=-3"):
        make_train_transforms(-3)


def test_augment_batch_is_deterministic_and_varied() -> None:
    images = torch.randn(8, 1, 32, 24)
    a = augment_batch(images, generator=torch.Generator().manual_seed(0))
    b = augment_batch(images, generator=torch.Generator().manual_seed(0))
    c = augment_batch(images, generator=torch.Generator().manual_seed(1))
    assert a.shape == images.shape
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, images)


def test_augment_batch_preserves_a_flat_image_up_to_intensity_jitter() -> None:
    images = torch.full((4, 1, 16, 16), 2.0)
    result = augment_batch(images, generator=torch.Generator().manual_seed(0))
    # Geometry cannot change a constant image; scale, shift and noise stay small.
    assert (result - 2.0).abs().max() < 2.0 * 0.1 + 0.1 + 6 * 0.05


def test_augment_batch_rejects_3d_input() -> None:
    with pytest.raises(ValueError, match=r"expects \(B, C, H, W\)"):
        augment_batch(torch.zeros(1, 8, 8), generator=torch.Generator())
