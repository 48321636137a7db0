from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.gradcam import GradCamExplainer, normalize_map, positive_evidence
from models.nets import GRADCAM_TARGET, RiskCNN, build_net
from tests.models.blobs import BlobSet


def reference_gradcam(net: RiskCNN, image: np.ndarray) -> np.ndarray:
    """Hand-written signed Grad-CAM: sum_c mean(grad_c) * act_c, upsampled, positive part / max."""
    layer = net.get_submodule(GRADCAM_TARGET)
    stored: dict[str, torch.Tensor] = {}

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        stored["act"] = output
        output.register_hook(lambda grad: stored.__setitem__("grad", grad))

    handle = layer.register_forward_hook(keep)
    try:
        net.zero_grad()
        x = torch.from_numpy(image)[None, None]
        net(x)[0, 0].backward()
    finally:
        handle.remove()
    weights = stored["grad"].mean(dim=(2, 3), keepdim=True)
    cam = (weights * stored["act"]).sum(dim=1, keepdim=True)
    cam = F.interpolate(cam, size=image.shape, mode="bilinear", align_corners=False)[0, 0]
    cam = cam.detach().clamp(min=0.0)
    return (cam / cam.max()).numpy() if cam.max() > 0 else torch.zeros_like(cam).numpy()


@pytest.fixture(scope="module")
def explainer(trained_net: RiskCNN) -> GradCamExplainer:
    return GradCamExplainer(trained_net)


@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
@pytest.mark.parametrize("shape", [(32, 32), (48, 40), (128, 128)])
def test_map_shape_and_range(method: str, shape: tuple[int, int]) -> None:
    explainer = GradCamExplainer(build_net(random_state=2))
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    heat = explainer.compute(image, method=method)  # type: ignore[arg-type]
    assert heat.shape == shape
    assert heat.dtype == np.float32
    assert np.isfinite(heat).all()
    assert heat.min() >= 0.0
    assert heat.max() <= 1.0


def test_matches_hand_written_reference(
    trained_net: RiskCNN, explainer: GradCamExplainer, blobs_val: BlobSet
) -> None:
    # Guards the MONAI pitfall: its default normaliser maps the maximum to 0 (inverted map).
    for index in np.flatnonzero(blobs_val.y)[:4]:
        image = blobs_val.images[index]
        expected = reference_gradcam(trained_net, image)
        assert expected.max() == pytest.approx(1.0)
        np.testing.assert_allclose(explainer.compute(image), expected, atol=1e-5)


def test_map_peaks_at_the_blob(explainer: GradCamExplainer, blobs_val: BlobSet) -> None:
    rng = np.random.default_rng(0)
    at_blob, elsewhere = [], []
    for index in np.flatnonzero(blobs_val.y):
        heat = explainer.compute(blobs_val.images[index])
        row, col = blobs_val.centers[index]
        at_blob.append(heat[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].max())
        elsewhere.append(heat[tuple(rng.integers(0, heat.shape[0], size=2))])
    assert np.mean(at_blob) > np.mean(elsewhere) + 0.2
    assert np.mean(np.array(at_blob) > np.array(elsewhere)) >= 0.8


def test_gradcampp_highlights_the_blob(explainer: GradCamExplainer, blobs_val: BlobSet) -> None:
    index = int(np.flatnonzero(blobs_val.y)[0])
    heat = explainer.compute(blobs_val.images[index], method="gradcampp")
    row, col = blobs_val.centers[index]
    assert heat[row, col] > np.median(heat)


def test_works_under_no_grad_and_inference_mode(
    explainer: GradCamExplainer, blobs_val: BlobSet
) -> None:
    image = blobs_val.images[int(np.flatnonzero(blobs_val.y)[0])]
    expected = explainer.compute(image)
    with torch.no_grad():
        np.testing.assert_array_equal(explainer.compute(image), expected)
    with torch.inference_mode():
        np.testing.assert_array_equal(explainer.compute(image), expected)


def test_keeps_hooks_off_the_shared_net(trained_net: RiskCNN) -> None:
    GradCamExplainer(trained_net)
    for module in trained_net.modules():
        assert not module._forward_hooks
        assert not module._backward_hooks


def test_concurrent_calls_agree(explainer: GradCamExplainer, blobs_val: BlobSet) -> None:
    images = blobs_val.images[:6]
    expected = [explainer.compute(image) for image in images]
    results: dict[int, np.ndarray] = {}

    def worker(index: int) -> None:
        results[index] = explainer.compute(images[index])

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, heat in enumerate(expected):
        np.testing.assert_array_equal(results[index], heat)


@pytest.mark.parametrize(
    ("maps", "expected"),
    [
        (torch.tensor([[[1.0, 3.0], [2.0, 5.0]]]), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]])),
        (torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)),
        (torch.full((1, 3), 4.0), torch.zeros(1, 3)),
        (torch.tensor([[1.0, 1.0 + 1e-9]]), torch.zeros(1, 2)),
    ],
)
def test_normalize_map(maps: torch.Tensor, expected: torch.Tensor) -> None:
    result = normalize_map(maps)
    assert not torch.isnan(result).any()
    torch.testing.assert_close(result, expected)


def test_zero_image_gives_zero_or_valid_map() -> None:
    heat = GradCamExplainer(build_net()).compute(np.zeros((32, 32), dtype=np.float32))
    assert np.isfinite(heat).all()
    assert heat.min() >= 0.0
    assert heat.max() <= 1.0


@pytest.mark.parametrize(
    ("image", "method", "match"),
    [
        (np.zeros((32, 32), dtype=np.float32), "occlusion", "method='occlusion' is unknown"),
        (np.zeros((2, 32, 32), dtype=np.float32), "gradcam", r"image has shape \(2, 32, 32\)"),
        (np.full((32, 32), np.inf, dtype=np.float32), "gradcam", "NaN or infinite"),
    ],
)
def test_compute_rejects_bad_input(image: np.ndarray, method: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GradCamExplainer(build_net()).compute(image, method=method)  # type: ignore[arg-type]


def test_rejects_unknown_target_layer() -> None:
    with pytest.raises(ValueError, match=r"target_layer='features.block4'.*Did you mean"):
        GradCamExplainer(build_net(), target_layer="features.block4")


@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_volume_map_for_a_3d_net(method: str) -> None:
    explainer = GradCamExplainer(build_net(spatial_dims=3, channels=(4, 8, 8, 16)))
    volume = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    heat = explainer.compute(volume, method=method)  # type: ignore[arg-type]
    assert heat.shape == (16, 16, 16)
    assert 0.0 <= heat.min() <= heat.max() <= 1.0


@pytest.mark.parametrize("random_state", [0, 1, 2])
@pytest.mark.parametrize("shape", [(32, 32), (64, 48)])
def test_signed_map_decomposes_the_logit_exactly(random_state: int, shape: tuple[int, int]) -> None:
    # GAP + linear head: the class activation map (= Grad-CAM without its ReLU) at the last
    # block sums to logit - bias, for any weights and any image.
    net = build_net(random_state=random_state).eval()
    image = np.random.default_rng(random_state).normal(size=shape).astype(np.float32)
    cam = GradCamExplainer(net).signed_map(image)
    assert cam.shape == (shape[0] // 8, shape[1] // 8)
    with torch.no_grad():
        logit = float(net(torch.from_numpy(image)[None, None])[0, 0])
        bias = float(net.class_layers.out.bias[0].detach())
        features = net.features(torch.from_numpy(image)[None, None])[0]
        weights = net.class_layers.out.weight[0].detach()
    assert float(cam.sum()) + bias == pytest.approx(logit, abs=1e-4)
    expected = torch.einsum("chw,c->hw", features, weights) / cam.size  # CAM of Zhou et al.
    np.testing.assert_allclose(cam, expected.numpy(), atol=1e-6)


def test_trained_net_decomposes_its_logit(trained_net: RiskCNN, blobs_val: BlobSet) -> None:
    explainer = GradCamExplainer(trained_net)
    bias = float(trained_net.class_layers.out.bias[0].detach())
    with torch.no_grad():
        logits = trained_net(torch.from_numpy(blobs_val.images[:5, None]))[:, 0].numpy()
    sums = [explainer.signed_map(image).sum() + bias for image in blobs_val.images[:5]]
    np.testing.assert_allclose(sums, logits, atol=1e-4)


def test_shown_map_is_the_positive_evidence(
    explainer: GradCamExplainer, blobs_val: BlobSet
) -> None:
    # Negative evidence is drawn as 0, never as middling importance (no min-max scaling).
    image = blobs_val.images[int(np.flatnonzero(blobs_val.y == 0)[0])]
    signed = explainer.signed_map(image)
    heat = explainer.compute(image)
    if signed.min() < 0 < signed.max():
        assert heat.min() == 0.0
        assert heat.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("maps", "expected"),
    [
        (torch.tensor([[-2.0, 1.0, 4.0]]), torch.tensor([[0.0, 0.25, 1.0]])),
        (torch.tensor([[-1.0, -3.0]]), torch.zeros(1, 2)),
        (torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)),
    ],
)
def test_positive_evidence(maps: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(positive_evidence(maps), expected)
