"""Input checks and small tensor helpers shared by the ``models`` modules.

Private: nothing outside ``models`` imports this file. It knows numpy, torch and MONAI only and
must not import pandas, SQL, streamlit, ``fusion`` or ``dashboard``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.utils import eval_mode
from torch import nn


def as_image_tensor(
    images: npt.ArrayLike,
    *,
    in_channels: int,
    name: str,
    spatial_dims: int = 2,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check a stack of images and view it as a float32 tensor of shape ``(N, C, *spatial)``.

    Parameters
    ----------
    images : array-like of shape (N, H, W) or (N, C, H, W)
        Normalised images (volumes get one more axis). The channel axis may be left out when
        ``in_channels == 1``.
    in_channels : int
        Channels the network expects.
    name : str
        Argument name used in error messages.
    spatial_dims : int, default=2
        2 for images, 3 for volumes.
    allow_empty : bool, default=False
        Whether ``N == 0`` is accepted.

    Returns
    -------
    torch.Tensor of shape (N, C, H, W) or (N, C, D, H, W)
        float32 on the CPU; shares memory with ``images`` when it is already a C-contiguous
        float32 array.

    Raises
    ------
    ValueError
        If the shape, channel count or values are invalid.
    """
    array = np.asarray(images)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(
            f"{name} has dtype {array.dtype}; pass a real-valued (float32) image array."
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    spatial = "H, W" if spatial_dims == 2 else "D, H, W"
    if array.ndim == spatial_dims + 1 and in_channels == 1:
        array = array[:, None]
    if array.ndim != spatial_dims + 2 or array.shape[1] != in_channels:
        expected = (
            f"(N, {spatial}) or (N, 1, {spatial})"
            if in_channels == 1
            else f"(N, {in_channels}, {spatial})"
        )
        raise ValueError(
            f"{name} has shape {np.shape(images)}; the network expects {expected}. "
            "Stack the images along the first axis."
        )
    if array.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass at least one image.")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; clean the scans and run "
            "models.transforms.normalize_scan before passing them."
        )
    return torch.from_numpy(array)


def check_binary_labels(y: npt.ArrayLike, *, n_samples: int, name: str) -> npt.NDArray[np.float32]:
    """Check that ``y`` holds one 0/1 label per image and that both classes occur.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Binary labels.
    n_samples : int
        Number of images the labels belong to.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_samples,)
        The labels as float32.

    Raises
    ------
    ValueError
        If the shape is wrong, a value is not 0 or 1, or only one class is present.
    """
    labels = np.asarray(y)
    if labels.shape != (n_samples,):
        raise ValueError(
            f"{name} has shape {labels.shape}; expected ({n_samples},), one label per image."
        )
    values = np.unique(labels).tolist()
    if not set(values) <= {0, 1}:
        raise ValueError(
            f"{name} holds values {values[:5]}; labels must be 0 or 1. "
            "Encode the positive class as 1."
        )
    if len(values) < 2:
        raise ValueError(
            f"{name} contains only class {[int(value) for value in values]}; both classes 0 "
            "and 1 are needed "
            "to train and to compute AUROC. Use a larger or stratified split."
        )
    return labels.astype(np.float32)


def predict_logits(net: nn.Module, images: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Score images in batches under ``monai.networks.eval_mode`` (no gradients).

    Parameters
    ----------
    net : torch.nn.Module
        Network returning logits of shape ``(B, 1)``.
    images : torch.Tensor of shape (N, C, H, W)
        Images to score.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    torch.Tensor of shape (N,)
        The logits.
    """
    outputs: list[torch.Tensor] = []
    with eval_mode(net):
        for start in range(0, images.shape[0], batch_size):
            outputs.append(net(images[start : start + batch_size])[:, 0])
    if not outputs:
        return torch.zeros(0)
    return torch.cat(outputs)


def recalibrate_batch_norm(net: nn.Module, images: torch.Tensor, *, batch_size: int) -> None:
    """Recompute every BatchNorm layer's running statistics on ``images``; no-op without any.

    BatchNorm's running averages lag the weights after short training (stack notes: 1.0
    accuracy in train mode, 0.51 in eval mode). This resets them and takes the exact mean and
    variance over ``images`` (cumulative average, one pass in train mode without gradients),
    then leaves the net in eval mode, where BatchNorm is a fixed per-channel affine map: local.

    Parameters
    ----------
    net : torch.nn.Module
        The network.
    images : torch.Tensor of shape (N, C, H, W)
        Unaugmented training images.
    batch_size : int
        Images per forward pass.
    """
    layers = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            net(images[start : start + batch_size])
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    net.eval()


_THREADS_LOCK = threading.Lock()


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads`` for the duration of a block, then restore it.

    Parameters
    ----------
    num_threads : int or None
        Intra-op threads; ``None`` leaves the current setting alone.

    Yields
    ------
    None
        Control returns to the block.
    """
    if num_threads is None:
        yield
        return
    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            torch.set_num_threads(previous)
