"""Grad-CAM heat maps for the imaging network.

Owns :class:`GradCamExplainer` (signed Grad-CAM from MONAI's hooks, MONAI ``GradCAMpp``, both
with an explicit [0, 1] normaliser), :func:`normalize_map` and :func:`positive_evidence`. This
module knows numpy, torch and MONAI only: it must not import pandas, SQL, streamlit, ``fusion``
or ``dashboard``.
"""

from __future__ import annotations

import copy
import difflib
import logging
import threading
from typing import Final, Literal, cast, get_args

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from monai.visualize.class_activation_maps import GradCAMpp, ModelWithHooks
from torch import nn

from models.nets import GRADCAM_TARGET, RiskCNN

__all__ = ["CamMethod", "GradCamExplainer", "normalize_map", "positive_evidence"]

logger = logging.getLogger(__name__)

CamMethod = Literal["gradcam", "gradcampp"]
CAM_METHODS: Final[tuple[str, ...]] = get_args(CamMethod)
_FLAT_RELATIVE: Final = 1e-6


def normalize_map(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map to [0, 1] with 1 = most important; flat maps become zeros.

    Used as MONAI's ``postprocessing`` instead of its default normaliser, which maps the
    maximum to 0 and so inverts the heat map. A map whose range is below ``1e-6`` of its
    largest magnitude (all zeros, or constant) carries no spatial information and becomes all
    zeros rather than NaN.

    Parameters
    ----------
    maps : torch.Tensor of shape (B, ...)
        One map per batch entry.

    Returns
    -------
    torch.Tensor, same shape as ``maps``
        Scaled maps.

    Examples
    --------
    >>> import torch
    >>> normalize_map(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    tensor([[0.0000, 1.0000, 0.5000],
            [0.0000, 0.0000, 0.0000]])
    """
    flat = maps.detach().reshape(maps.shape[0], -1)
    low = flat.min(dim=1).values
    high = flat.max(dim=1).values
    span = high - low
    magnitude = torch.maximum(low.abs(), high.abs())
    informative = (span > _FLAT_RELATIVE * magnitude) & (span > 0)
    safe = torch.where(informative, span, torch.ones_like(span))
    scaled = (flat - low[:, None]) / safe[:, None]
    scaled = torch.where(informative[:, None], scaled, torch.zeros_like(scaled))
    return scaled.clamp_(0.0, 1.0).reshape(maps.shape)


def positive_evidence(maps: torch.Tensor) -> torch.Tensor:
    """Keep the positive part of signed maps and scale each by its maximum; 0 stays 0.

    Unlike a min-max scale, a region with negative evidence (it lowers the risk) is drawn as
    0, never as middling importance, and a map without any positive value stays all zeros.

    Parameters
    ----------
    maps : torch.Tensor of shape (B, ...)
        One signed map per batch entry.

    Returns
    -------
    torch.Tensor, same shape as ``maps``
        Values in [0, 1]; 1 = the strongest evidence for a higher risk.

    Examples
    --------
    >>> import torch
    >>> positive_evidence(torch.tensor([[-2.0, 1.0, 4.0], [-1.0, -3.0, 0.0]]))
    tensor([[0.0000, 0.2500, 1.0000],
            [0.0000, 0.0000, 0.0000]])
    """
    flat = maps.detach().reshape(maps.shape[0], -1).clamp(min=0.0)
    peak = flat.max(dim=1).values
    safe = torch.where(peak > 0, peak, torch.ones_like(peak))
    return (flat / safe[:, None]).reshape(maps.shape)


def _is_block(name: str) -> bool:
    return name.startswith("features.") and name.count(".") == 1


class GradCamExplainer:
    """Grad-CAM heat maps showing which regions raise a :class:`~models.nets.RiskCNN`'s risk.

    Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391) weights each
    channel ``A_c`` of a convolutional layer by the spatial mean of the gradient of the risk
    logit ``s`` with respect to it::

        signed = sum_c mean_ij(ds / dA_c[i, j]) * A_c

    At the last block of a :class:`~models.nets.RiskCNN` (global average pooling, then one
    linear layer with weights ``w``) the gradient is ``w_c / (H' W')`` everywhere, so
    ``signed`` is the class activation map (Zhou et al., "Learning Deep Features for
    Discriminative Localization", CVPR 2016, https://arxiv.org/abs/1512.04150) and sums
    exactly to ``s - bias`` (:meth:`signed_map`). The published method then applies a ReLU
    (MONAI's ``GradCAM`` does too); here the signed map is kept and only its positive part,
    the evidence *for* the event, is shown. The ReLU of the sum is not the problem the old
    demo nets had: their lesions' contribution at the target layer was negative because
    GroupNorm spread it over the whole image (``docs/models.md``).

    Grad-CAM++ (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based Visual
    Explanations for Deep Convolutional Networks", WACV 2018, https://arxiv.org/abs/1710.11063)
    replaces the mean by pixel-wise weights built from higher-order gradients, which spreads the
    map over several instances of a pattern instead of the strongest one.

    The map is upsampled bilinearly to the input size and scaled to [0, 1] with 1 = most
    important: the Grad-CAM map by :func:`positive_evidence`, the Grad-CAM++ map (non-negative
    by construction) by :func:`normalize_map`; MONAI's default post-processing would invert
    them. An all-zero map means no region pushes the risk up.

    The explainer keeps a private copy of ``net``, so MONAI's hooks (which are never removed)
    stay off the shared network and a later ``embed`` cannot overwrite the stored activations.
    Build one explainer per trained network (e.g. next to the cached net), reuse it, and note
    that it does not see later changes to the weights. Calls are serialised with a
    ``threading.Lock`` and always run with gradients enabled, even inside ``torch.no_grad()``
    or ``torch.inference_mode()``, where MONAI's ``GradCAM`` alone fails.

    Parameters
    ----------
    net : RiskCNN
        Trained network with ``out_channels == 1``.
    target_layer : str, default=GRADCAM_TARGET
        Dotted name of the layer to explain. To choose another one, list the candidates with
        ``for name, _ in net.named_modules(): print(name)`` and take the last block that still
        has spatial extent (``features.block3``, 16x16 for a 128x128 input); later layers are
        pooled and earlier ones are finer but less class-specific.

    Raises
    ------
    ValueError
        If ``target_layer`` is not a layer of ``net`` or ``net`` has more than one output.

    Examples
    --------
    >>> import numpy as np
    >>> from models.nets import build_net
    >>> explainer = GradCamExplainer(build_net())
    >>> image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    >>> heat = explainer.compute(image)
    >>> heat.shape, heat.dtype, bool(0.0 <= heat.min() and heat.max() <= 1.0)
    ((64, 64), dtype('float32'), True)
    """

    def __init__(self, net: RiskCNN, *, target_layer: str = GRADCAM_TARGET) -> None:
        if net.out_channels != 1:
            raise ValueError(
                f"net has out_channels={net.out_channels}; GradCamExplainer explains a single "
                "risk logit. Build the net with out_channels=1."
            )
        layers = [name for name, _ in net.named_modules() if name]
        if target_layer not in layers:
            close = difflib.get_close_matches(target_layer, layers, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"target_layer={target_layer!r} is not a layer of the net.{hint} "
                f"Feature blocks: {[name for name in layers if _is_block(name)]}."
            )
        self.target_layer = target_layer
        self.in_channels = net.in_channels
        self.spatial_dims = net.spatial_dims
        self._net = copy.deepcopy(net).eval()
        self._net.requires_grad_(True)
        self._hooks = ModelWithHooks(
            self._net, target_layer, register_forward=True, register_backward=True
        )
        hooks = self._hooks
        # One hooked model shared by both methods (one set of hooks); CAMBase accepts a
        # ModelWithHooks in place of a module, although its annotation says nn.Module.
        hooked = cast(nn.Module, hooks)
        self._gradcampp = GradCAMpp(
            nn_module=hooked, target_layers=target_layer, postprocessing=normalize_map
        )
        self._lock = threading.Lock()

    def compute(
        self, image: npt.ArrayLike, *, method: CamMethod = "gradcam"
    ) -> npt.NDArray[np.float32]:
        """Compute the heat map of one image.

        Parameters
        ----------
        image : array-like of shape (H, W) or (C, H, W)
            One image normalised with :func:`models.transforms.normalize_scan` (a volume
            ``(D, H, W)`` for a ``spatial_dims=3`` net).
        method : {"gradcam", "gradcampp"}, default="gradcam"
            Grad-CAM or Grad-CAM++.

        Returns
        -------
        numpy.ndarray of float32, shape (H, W)
            Importance in [0, 1], 1 = most important for a higher risk (``(D, H, W)`` for
            volumes).

        Raises
        ------
        ValueError
            If ``method`` is unknown or the image has the wrong shape or non-finite values.
        """
        if method not in CAM_METHODS:
            raise ValueError(f"method={method!r} is unknown; choose one of {list(CAM_METHODS)}.")
        x = self._as_input(image)
        with self._lock, torch.inference_mode(False), torch.enable_grad():
            # Created here, not before: a tensor made under inference_mode cannot join a graph.
            batch = x.clone()[None]
            if method == "gradcampp":
                heat = self._gradcampp(batch, class_idx=0)
            else:
                signed = self._signed(batch)
                size = tuple(batch.shape[2:])
                mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
                up = F.interpolate(signed[:, None], size=size, mode=mode, align_corners=False)
                heat = positive_evidence(up)
        result: npt.NDArray[np.float32] = heat[0, 0].detach().numpy().astype(np.float32)
        return result

    def signed_map(self, image: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The signed Grad-CAM map at the target layer's resolution, in logit units.

        Positive cells raise the risk logit, negative cells lower it. At the last block of a
        :class:`~models.nets.RiskCNN` the cells sum exactly to ``logit - bias`` of the final
        linear layer (the class activation map's decomposition of the logit).

        Parameters
        ----------
        image : array-like of shape (H, W) or (C, H, W)
            One normalised image (see :meth:`compute`).

        Returns
        -------
        numpy.ndarray of float32, shape (H', W')
            The target layer's spatial shape (16x16 at ``features.block3`` for 128x128).

        Examples
        --------
        >>> import numpy as np, torch
        >>> from models.nets import build_net
        >>> net = build_net(random_state=1)
        >>> image = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
        >>> cam = GradCamExplainer(net).signed_map(image)
        >>> logit = float(net(torch.from_numpy(image)[None, None]).detach())
        >>> bool(abs(cam.sum() + float(net.class_layers.out.bias) - logit) < 1e-4)
        True
        """
        x = self._as_input(image)
        with self._lock, torch.inference_mode(False), torch.enable_grad():
            signed = self._signed(x.clone()[None])
        result: npt.NDArray[np.float32] = signed[0].detach().numpy().astype(np.float32)
        return result

    def _signed(self, batch: torch.Tensor) -> torch.Tensor:
        """Signed Grad-CAM of a batch of one, shape (1, *target_spatial)."""
        _, acti, grad = self._hooks(batch, class_idx=0)
        activation, gradient = acti[-1], grad[-1]
        b, c, *spatial = gradient.shape
        weights = gradient.reshape(b, c, -1).mean(2).reshape(b, c, *[1] * len(spatial))
        signed: torch.Tensor = (weights * activation).sum(1).detach()
        return signed

    def _as_input(self, image: npt.ArrayLike) -> torch.Tensor:
        array = np.asarray(image, dtype=np.float32)
        spatial = "H, W" if self.spatial_dims == 2 else "D, H, W"
        if array.ndim == self.spatial_dims and self.in_channels == 1:
            array = array[None]
        if array.ndim != self.spatial_dims + 1 or array.shape[0] != self.in_channels:
            expected = (
                f"({spatial})" if self.in_channels == 1 else f"({self.in_channels}, {spatial})"
            )
            raise ValueError(
                f"image has shape {np.shape(image)}; compute expects one image of shape "
                f"{expected}. Explain a stack one image at a time."
            )
        if not np.isfinite(array).all():
            raise ValueError(
                "image contains NaN or infinite values; normalise it with "
                "models.transforms.normalize_scan first."
            )
        return torch.from_numpy(np.ascontiguousarray(array))
