from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from models.embed import embed
from models.nets import EMBEDDING_DIM, EMBEDDING_TAP, RiskCNN, build_net
from tests.models.blobs import BlobSet


@pytest.mark.parametrize(
    ("n_images", "in_channels", "size", "batch_size"),
    [(5, 1, 32, 128), (7, 1, 48, 3), (4, 3, 32, 2), (0, 1, 32, 8)],
)
def test_shapes_and_dtypes(n_images: int, in_channels: int, size: int, batch_size: int) -> None:
    net = build_net(in_channels=in_channels)
    shape = (n_images, size, size) if in_channels == 1 else (n_images, in_channels, size, size)
    images = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    embeddings, logits = embed(net, images, batch_size=batch_size)
    assert embeddings.shape == (n_images, EMBEDDING_DIM)
    assert logits.shape == (n_images,)
    assert embeddings.dtype == np.float32
    assert logits.dtype == np.float32


def test_matches_forward_pass_and_is_deterministic(
    trained_net: RiskCNN, blobs_val: BlobSet
) -> None:
    first = embed(trained_net, blobs_val.images, batch_size=128)
    second = embed(trained_net, blobs_val.images, batch_size=128)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    small_batches = embed(trained_net, blobs_val.images, batch_size=7)
    np.testing.assert_allclose(small_batches[0], first[0], rtol=1e-5, atol=1e-5)
    x = torch.from_numpy(blobs_val.images)[:, None]
    with torch.no_grad():
        pooled = trained_net.features(x).mean(dim=(2, 3))
        logits = trained_net(x)[:, 0]
    np.testing.assert_allclose(first[0], pooled.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first[1], logits.numpy(), rtol=1e-5, atol=1e-5)


def test_eval_mode_equals_train_mode(trained_net: RiskCNN, blobs_val: BlobSet) -> None:
    # GroupNorm has no running statistics, so the BatchNorm train/eval gap cannot occur.
    net = copy.deepcopy(trained_net).train()
    _, eval_logits = embed(net, blobs_val.images)
    assert net.training  # embed restores the mode
    with torch.no_grad():
        train_logits = net(torch.from_numpy(blobs_val.images)[:, None])[:, 0]
    np.testing.assert_allclose(eval_logits, train_logits.numpy(), rtol=1e-5, atol=1e-5)


def test_leaves_no_hooks_and_is_thread_safe(trained_net: RiskCNN, blobs_val: BlobSet) -> None:
    expected = embed(trained_net, blobs_val.images, batch_size=4)[0]
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(embed(trained_net, blobs_val.images, batch_size=4)[0])
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    assert not trained_net.get_submodule(EMBEDDING_TAP)._forward_pre_hooks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "batch_size=0"), ({"images": np.zeros((2, 3, 8, 8))}, r"\(N, H, W\)")],
)
def test_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"images": np.zeros((2, 8, 8), dtype=np.float32), **kwargs}
    with pytest.raises(ValueError, match=match):
        embed(build_net(), **arguments)  # type: ignore[arg-type]


def test_rejects_multi_output_net() -> None:
    with pytest.raises(ValueError, match="out_channels=2"):
        embed(build_net(out_channels=2), np.zeros((1, 8, 8), dtype=np.float32))


def test_volumes_for_a_3d_net() -> None:
    net = build_net(spatial_dims=3, channels=(4, 8, 8, 16))
    volumes = np.random.default_rng(0).normal(size=(3, 16, 16, 16)).astype(np.float32)
    embeddings, logits = embed(net, volumes)
    assert embeddings.shape == (3, 16)
    assert logits.shape == (3,)
