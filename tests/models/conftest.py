"""Fixtures for the ``models`` tests: the blob data set, a net trained on it, one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from models.nets import RiskCNN, build_net
from models.train import TrainResult, train
from tests.models.blobs import TRAIN_CONFIG, BlobSet, make_blobs


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny tensors gain nothing from a second thread, and two OpenMP threads competing with
    # other processes for 2 cores were measured 5-10x slower than one.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="package")
def blobs_train() -> BlobSet:
    return make_blobs(64, np.random.default_rng(0))


@pytest.fixture(scope="package")
def blobs_val() -> BlobSet:
    return make_blobs(40, np.random.default_rng(1))


@pytest.fixture(scope="package")
def trained(blobs_train: BlobSet, blobs_val: BlobSet) -> tuple[RiskCNN, TrainResult]:
    """A net trained on the blob set; tests must not modify it (deep-copy first)."""
    net = build_net(random_state=0)
    result = train(
        net, blobs_train.images, blobs_train.y, blobs_val.images, blobs_val.y, config=TRAIN_CONFIG
    )
    return net, result


@pytest.fixture(scope="package")
def trained_net(trained: tuple[RiskCNN, TrainResult]) -> RiskCNN:
    return trained[0]
