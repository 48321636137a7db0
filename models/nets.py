"""The imaging network, the names of its layers, and its weight files.

Owns :class:`RiskCNN` (a compact CNN built from MONAI blocks), the layer-name constants the other
modules hook into (:data:`GRADCAM_TARGET`, :data:`EMBEDDING_TAP`), :func:`build_net` and the
``state_dict`` weight files written by :func:`save_net` and read by :func:`load_net`.

Widths, depth and stride were chosen by measurement on the 2-core CPU machine (table in
``docs/models.md``: 81k parameters, 0.19-0.26 s per step of 64 scans, ResNet18 2.0 s).

The total stride is 8, so a 128x128 scan gives a 16x16 Grad-CAM map (ResNet-style nets give
4x4). This module knows tensors and MONAI only (file hashes and the verified-load gate come
from :mod:`data.artifacts`): it must not import pandas, SQL, streamlit, ``fusion`` or
``dashboard``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict

import torch
from monai.networks.blocks.convolutions import Convolution, ResidualUnit
from torch import nn

from data.artifacts import REBUILD_HINT, file_digest, verified_file
from models.layers import NormKind, PaddingMode, localise

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_CHANNELS",
    "EMBEDDING_DIM",
    "EMBEDDING_TAP",
    "FEATURE_STRIDE",
    "GRADCAM_TARGET",
    "NetKwargs",
    "NetSpec",
    "RiskCNN",
    "build_net",
    "load_net",
    "save_net",
    "sidecar_path",
]

logger = logging.getLogger(__name__)

DEFAULT_CHANNELS: Final[tuple[int, int, int, int]] = (8, 16, 32, 64)
"""Output channels of ``features.stem``, ``features.block1``, ``.block2`` and ``.block3``."""

GRADCAM_TARGET: Final = "features.block3"
"""Last spatial block: its (B, 64, H/8, W/8) output is what Grad-CAM weighs."""

EMBEDDING_TAP: Final = "class_layers.out"
"""Final ``nn.Linear``: its input (a forward pre-hook) is the pooled embedding."""

EMBEDDING_DIM: Final = DEFAULT_CHANNELS[-1]
"""Length of the embedding of a net built with the default channels."""

FEATURE_STRIDE: Final = 8
"""Total downsampling of ``features``: a 128x128 input gives a 16x16 last feature map."""

SIDECAR_SUFFIX: Final = ".json"
SIDECAR_FORMAT: Final = "riskfusion.models.RiskCNN/1"

_STRIDES: Final = (2, 2, 2, 1)
_BLOCK_NAMES: Final = ("stem", "block1", "block2", "block3")


@dataclass(frozen=True, slots=True)
class NetSpec:
    """Constructor arguments of a :class:`RiskCNN`, as stored in the JSON sidecar.

    Parameters
    ----------
    spatial_dims : int
        2 for images, 3 for volumes.
    in_channels : int
        Input channels.
    out_channels : int
        Output logits.
    channels : tuple of int
        Output channels of the four feature blocks.
    subunits : int
        Convolutions per residual block.
    norm_groups : int
        Upper bound on GroupNorm groups.
    norm : str
        ``"none"``, ``"batch"``, ``"pixel"`` or ``"group"`` (see :class:`RiskCNN`).
    padding_mode : str
        Padding of every convolution.
    """

    spatial_dims: int
    in_channels: int
    out_channels: int
    channels: tuple[int, ...]
    subunits: int
    norm_groups: int
    norm: str = "none"
    padding_mode: str = "reflect"


class NetKwargs(TypedDict, total=False):
    """Keyword arguments of :class:`RiskCNN` accepted by :func:`load_net`."""

    spatial_dims: int
    in_channels: int
    out_channels: int
    channels: Sequence[int]
    subunits: int
    norm_groups: int
    norm: NormKind
    padding_mode: PaddingMode


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid; pass a positive integer.")
    return value


class RiskCNN(nn.Module):
    """Compact CNN that maps a scan to one risk logit, built from MONAI blocks.

    The layout follows MONAI's ``DenseNet``: named ``features`` then named ``class_layers``,
    so layers can be addressed by dotted names (``GRADCAM_TARGET``, ``EMBEDDING_TAP``)::

        features      stem   Convolution, stride 2      (B, channels[0], H/2, W/2)
                      block1 ResidualUnit, stride 2     (B, channels[1], H/4, W/4)
                      block2 ResidualUnit, stride 2     (B, channels[2], H/8, W/8)
                      block3 ResidualUnit, stride 1     (B, channels[3], H/8, W/8)
        class_layers  pool   adaptive average pool     (B, channels[3], 1, 1)
                      flatten                           (B, channels[3])  <- embedding
                      out    Linear                     (B, out_channels)

    Every convolution (reflection-padded by default) is followed by ReLU (and a normalisation
    layer unless ``norm="none"``).
    The logit is ``bias + mean_ij sum_c w_c A_c[i, j]`` for the last block's output ``A``, so
    the class activation map ``sum_c w_c A_c / (H' W')`` (which is Grad-CAM at
    ``GRADCAM_TARGET`` without its ReLU) sums exactly to ``logit - bias``. By default there is
    no normalisation layer (``norm="none"``), so that sum is split over the locations whose
    receptive fields hold the evidence, and the network computes the same function in train
    and eval mode.

    Parameters
    ----------
    spatial_dims : int, default=2
        2 for images ``(B, C, H, W)``, 3 for volumes ``(B, C, D, H, W)``.
    in_channels : int, default=1
        Input channels.
    out_channels : int, default=1
        Output logits; 1 gives a single risk logit.
    channels : sequence of 4 int, default=DEFAULT_CHANNELS
        Output channels of ``stem``, ``block1``, ``block2`` and ``block3``. The last entry is the
        embedding length.
    subunits : int, default=2
        Convolutions in each residual block.
    norm_groups : int, default=1
        GroupNorm groups (``gcd(norm_groups, width)``); used only with ``norm="group"``.
    norm : {"none", "batch", "pixel", "group"}, default="none"
        ``"none"``: no normalisation layer, so every feature of ``features`` depends on its
        receptive field only and the class activation map of the global-average-pooled
        linear head is the exact, *local* decomposition of the logit. ``"batch"``
        (BatchNorm, local in eval mode; :func:`models.train.train` recalibrates it) and
        ``"pixel"`` (:class:`models.layers.PixelNorm`) are local too but localised or learnt
        worse on the demo; ``"group"``: GroupNorm, whose per-sample spatial statistics let a
        lesion rescale every location (the old default; weights saved before this option
        load as ``"group"``). Measurements in ``docs/models.md``.
    padding_mode : {"reflect", "replicate", "zeros"}, default="reflect"
        Padding of every convolution; zero padding gives border locations a frame that is
        not in the scan, which a net can learn and a map then highlights.

    Attributes
    ----------
    features : torch.nn.Sequential
        Named blocks ``stem``, ``block1``, ``block2``, ``block3``.
    class_layers : torch.nn.Sequential
        Named layers ``pool``, ``flatten``, ``out``.
    spec : NetSpec
        The constructor arguments (written to the weight file's JSON sidecar).
    embedding_dim : int
        Length of the pooled embedding, ``channels[-1]``.

    Raises
    ------
    ValueError
        If an argument is outside its allowed range.

    Examples
    --------
    >>> import torch
    >>> net = RiskCNN()
    >>> net(torch.zeros(2, 1, 128, 128)).shape
    torch.Size([2, 1])
    >>> net.get_submodule(GRADCAM_TARGET)(torch.zeros(1, 32, 16, 16)).shape
    torch.Size([1, 64, 16, 16])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        subunits: int = 2,
        norm_groups: int = 1,
        norm: NormKind = "none",
        padding_mode: PaddingMode = "reflect",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(
                f"spatial_dims={spatial_dims!r} is not supported; use 2 (images) or 3 (volumes)."
            )
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("out_channels", out_channels)
        _check_positive_int("subunits", subunits)
        _check_positive_int("norm_groups", norm_groups)
        widths = tuple(channels)
        if len(widths) != len(_BLOCK_NAMES):
            raise ValueError(
                f"channels={channels!r} has {len(widths)} entries; pass {len(_BLOCK_NAMES)} "
                f"widths, one per block {_BLOCK_NAMES}, e.g. {DEFAULT_CHANNELS}."
            )
        for width in widths:
            _check_positive_int("each entry of channels", width)
        self.spec = NetSpec(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=widths,
            subunits=subunits,
            norm_groups=norm_groups,
            norm=norm,
            padding_mode=padding_mode,
        )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.embedding_dim = widths[-1]

        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        previous = in_channels
        for index, (name, width, stride) in enumerate(
            zip(_BLOCK_NAMES, widths, _STRIDES, strict=True)
        ):
            group_norm = ("group", {"num_groups": math.gcd(norm_groups, width)})
            block: nn.Module
            if index == 0:
                block = Convolution(
                    spatial_dims, previous, width, strides=stride, act="relu", norm=group_norm
                )
            else:
                block = ResidualUnit(
                    spatial_dims,
                    previous,
                    width,
                    strides=stride,
                    subunits=subunits,
                    act="relu",
                    norm=group_norm,
                )
            blocks[name] = block
            previous = width
        self.features = nn.Sequential(blocks)
        localise(self.features, norm=norm, padding_mode=padding_mode, spatial_dims=spatial_dims)

        pool = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.class_layers = nn.Sequential(
            OrderedDict(
                pool=pool,
                flatten=nn.Flatten(1),
                out=nn.Linear(previous, out_channels),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute logits.

        Parameters
        ----------
        x : torch.Tensor of shape (B, in_channels, H, W) or (B, in_channels, D, H, W)
            Normalised images.

        Returns
        -------
        torch.Tensor of shape (B, out_channels)
            Logits.
        """
        result: torch.Tensor = self.class_layers(self.features(x))
        return result


def build_net(
    *,
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    channels: Sequence[int] = DEFAULT_CHANNELS,
    norm_groups: int = 1,
    norm: NormKind = "none",
    padding_mode: PaddingMode = "reflect",
    random_state: int = 0,
) -> RiskCNN:
    """Build a :class:`RiskCNN` with weights initialised from ``random_state``.

    The global torch random state is left untouched.

    Parameters
    ----------
    spatial_dims : int, default=2
        2 for images, 3 for volumes.
    in_channels : int, default=1
        Input channels.
    out_channels : int, default=1
        Output logits.
    channels : sequence of 4 int, default=DEFAULT_CHANNELS
        Widths of the four feature blocks.
    norm_groups : int, default=1
        GroupNorm groups (see :class:`RiskCNN`).
    norm : {"none", "batch", "pixel", "group"}, default="none"
        Normalisation (see :class:`RiskCNN`).
    padding_mode : {"reflect", "replicate", "zeros"}, default="reflect"
        Padding of every convolution.
    random_state : int, default=0
        Seed of the weight initialisation.

    Returns
    -------
    RiskCNN
        A freshly initialised network in train mode.

    Examples
    --------
    >>> a, b = build_net(random_state=1), build_net(random_state=1)
    >>> all(bool((p == q).all()) for p, q in zip(a.parameters(), b.parameters()))
    True
    """
    if isinstance(random_state, bool) or not isinstance(random_state, int) or random_state < 0:
        raise ValueError(f"random_state={random_state!r} is invalid; pass an integer >= 0.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        return RiskCNN(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=channels,
            norm_groups=norm_groups,
            norm=norm,
            padding_mode=padding_mode,
        )


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Return the JSON sidecar path that sits next to a weight file.

    Parameters
    ----------
    path : str or os.PathLike
        The weight file.

    Returns
    -------
    pathlib.Path
        ``<path>.json``.

    Examples
    --------
    >>> sidecar_path("artifacts/net.pt").name
    'net.pt.json'
    """
    weights = Path(path)
    return weights.with_name(weights.name + SIDECAR_SUFFIX)


def save_net(net: RiskCNN, path: str | os.PathLike[str]) -> str:
    """Write the network's ``state_dict`` and a JSON sidecar with its constructor arguments.

    Both files are written to a temporary name first and then renamed, so a crash never leaves
    a half-written weight file behind. Nothing is pickled apart from tensors.

    Parameters
    ----------
    net : RiskCNN
        Network to save.
    path : str or os.PathLike
        Weight file, e.g. ``artifacts/imaging/net.pt``; parent folders are created.
        The sidecar is ``<path>.json``.

    Returns
    -------
    str
        SHA-256 hex digest of the weight file; pass it to ``load_net(expected_sha256=...)``.
    """
    weights = Path(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().clone() for key, value in net.state_dict().items()}
    temporary = weights.with_name(weights.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, weights)
    meta = {"format": SIDECAR_FORMAT, **asdict(net.spec)}
    meta["channels"] = list(net.spec.channels)
    sidecar = sidecar_path(weights)
    temporary_sidecar = sidecar.with_name(sidecar.name + ".tmp")
    temporary_sidecar.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(temporary_sidecar, sidecar)
    digest = file_digest(weights)
    logger.info("Saved imaging net to %s (sha256 %s)", weights, digest[:12])
    return digest


def _read_sidecar(sidecar: Path) -> NetKwargs:
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read the net sidecar {sidecar}: {err}; {REBUILD_HINT}.") from err
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(
            f"Net sidecar {sidecar} has format {found!r}; expected {SIDECAR_FORMAT!r}: "
            f"{REBUILD_HINT}."
        )
    kwargs: NetKwargs = {}
    for key in ("spatial_dims", "in_channels", "out_channels", "subunits", "norm_groups"):
        if key in meta:
            kwargs[key] = int(meta[key])
    if "channels" in meta:
        kwargs["channels"] = tuple(int(width) for width in meta["channels"])
    # Weights saved before these options existed were GroupNorm nets with zero padding.
    kwargs["norm"] = meta.get("norm", "group")
    kwargs["padding_mode"] = meta.get("padding_mode", "zeros")
    return kwargs


def load_net(
    path: str | os.PathLike[str],
    *,
    expected_sha256: str | None = None,
    **build_kwargs: Unpack[NetKwargs],
) -> RiskCNN:
    """Rebuild a :class:`RiskCNN` from a weight file written by :func:`save_net`.

    The SHA-256 is checked before anything is unpickled, and the weights are read with
    ``torch.load(path, weights_only=True)``, which refuses arbitrary Python objects.

    Parameters
    ----------
    path : str or os.PathLike
        Weight file.
    expected_sha256 : str or None, default=None
        Hex digest returned by :func:`save_net`; ``None`` skips the check.
    **build_kwargs
        Constructor arguments of :class:`RiskCNN` (``spatial_dims``, ``in_channels``,
        ``out_channels``, ``channels``, ``subunits``, ``norm_groups``). Normally read from the
        ``<path>.json`` sidecar; pass them only for a file without a sidecar. A value that
        contradicts the sidecar raises.

    Returns
    -------
    RiskCNN
        The network in eval mode.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the weight file is missing or its digest differs from ``expected_sha256``.
    ValueError
        If the sidecar is unreadable or contradicts ``build_kwargs``.
    """
    weights = verified_file(path, expected_sha256, what="Imaging weights")
    kwargs: NetKwargs = {}
    sidecar = sidecar_path(weights)
    if sidecar.is_file():
        kwargs = _read_sidecar(sidecar)
    for key, value in build_kwargs.items():
        stored = kwargs.get(key)
        normalised = tuple(value) if key == "channels" else value  # type: ignore[arg-type]
        if stored is not None and stored != normalised:
            raise ValueError(
                f"load_net got {key}={value!r} but the sidecar {sidecar} says {stored!r}; "
                "drop the argument to use the stored value."
            )
        kwargs[key] = normalised  # type: ignore[literal-required]
    net = RiskCNN(**kwargs)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    logger.info("Loaded imaging net from %s", weights)
    return net
