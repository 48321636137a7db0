"""A tiny separable data set for the ``models`` tests: noise images, half with a bright blob."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.train import TrainConfig
from models.transforms import normalize_scan

IMAGE_SIZE = 32
BLOB_SIGMA = 2.0


@dataclass(frozen=True)
class BlobSet:
    images: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    centers: npt.NDArray[np.int64]


def make_blobs(n: int, rng: np.random.Generator, *, size: int = IMAGE_SIZE) -> BlobSet:
    """Noise images; the positive half carries one bright Gaussian blob at a random place."""
    images = 0.5 * rng.normal(size=(n, size, size))
    y = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(y)
    centers = rng.integers(size // 5, size - size // 5, size=(n, 2))
    rows, cols = np.mgrid[:size, :size]
    for index in np.flatnonzero(y):
        row, col = centers[index]
        images[index] += 3.0 * np.exp(
            -((rows - row) ** 2 + (cols - col) ** 2) / (2 * BLOB_SIGMA**2)
        )
    return BlobSet(images=normalize_scan(images), y=y, centers=centers)


TRAIN_CONFIG = TrainConfig(epochs=3, batch_size=8, patience=3, random_state=0)
