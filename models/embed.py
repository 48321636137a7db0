"""Image embeddings and logits from a trained :class:`models.nets.RiskCNN`.

Owns :func:`embed`: one eval-mode forward pass per batch, reading the pooled penultimate vector
through a forward pre-hook on :data:`models.nets.EMBEDDING_TAP`. This module knows numpy, torch
and MONAI only: it must not import pandas, SQL, streamlit, ``fusion`` or ``dashboard``.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.utils import eval_mode
from torch import nn

from models._private import as_image_tensor
from models.nets import EMBEDDING_TAP, RiskCNN

__all__ = ["embed"]


def embed(
    net: RiskCNN, images: npt.ArrayLike, *, batch_size: int = 128
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Compute the embedding and the risk logit of every image in one forward pass.

    Runs under ``monai.networks.eval_mode(net)`` (eval mode, no gradients; the net's mode is
    restored afterwards). The embedding is the input of the final linear layer
    (:data:`~models.nets.EMBEDDING_TAP`), captured by a forward pre-hook that is removed again
    and only records calls from the current thread, so concurrent callers sharing a cached net
    do not see each other's batches. Results are deterministic for fixed weights.

    Parameters
    ----------
    net : RiskCNN
        Trained network with ``out_channels == 1``.
    images : array-like of shape (N, H, W) or (N, C, H, W)
        Images normalised with :func:`models.transforms.normalize_scan`; ``N`` may be 0.
        Volumes (``spatial_dims=3`` nets) have one more axis.
    batch_size : int, default=128
        Images per forward pass (memory only; results do not depend on it beyond rounding).

    Returns
    -------
    embeddings : numpy.ndarray of float32, shape (N, net.embedding_dim)
        Pooled features.
    logits : numpy.ndarray of float32, shape (N,)
        Risk logits; ``risk = 1 / (1 + exp(-logit))``.

    Raises
    ------
    ValueError
        If the images, ``batch_size`` or the net's ``out_channels`` are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from models.nets import build_net
    >>> embeddings, logits = embed(build_net(), np.zeros((3, 64, 64), dtype=np.float32))
    >>> embeddings.shape, logits.shape
    ((3, 64), (3,))
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid; pass an integer >= 1.")
    if net.out_channels != 1:
        raise ValueError(
            f"net has out_channels={net.out_channels}; embed returns one risk logit per image. "
            "Build the net with out_channels=1."
        )
    x = as_image_tensor(
        images,
        in_channels=net.in_channels,
        spatial_dims=net.spatial_dims,
        name="images",
        allow_empty=True,
    )
    tap = net.get_submodule(EMBEDDING_TAP)
    caller = threading.get_ident()
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if threading.get_ident() == caller:
            captured.append(inputs[0].detach())

    embeddings: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    handle = tap.register_forward_pre_hook(capture)
    try:
        with eval_mode(net):
            for start in range(0, x.shape[0], batch_size):
                captured.clear()
                logits.append(net(x[start : start + batch_size])[:, 0])
                embeddings.append(captured[0])
    finally:
        handle.remove()
    if not logits:
        return (
            np.zeros((0, net.embedding_dim), dtype=np.float32),
            np.zeros(0, dtype=np.float32),
        )
    return (
        torch.cat(embeddings).numpy().astype(np.float32, copy=False),
        torch.cat(logits).numpy().astype(np.float32, copy=False),
    )
