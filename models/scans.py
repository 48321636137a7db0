"""Read imported scans with MONAI and turn them into 2D network inputs.

Owns :func:`read_scan`, the :class:`data.scan_spec.ScanReader` used by ``riskfusion import``: PNG
and JPEG (PIL), NumPy ``.npy`` (never unpickled), NIfTI ``.nii``/``.nii.gz`` (nibabel) and
DICOM files or series folders (pydicom) are loaded with MONAI's ``LoadImage``; 3D volumes are
reoriented to RAS and resampled to the configured spacing; intensities are normalised per
modality (CT: a Hounsfield window; MR and other: a percentile range) to [0, 1]; one axial
slice of a 3D volume is chosen (``max_foreground``: the slice with the most voxels above the
volume's mean intensity, ties to the middle; ``middle``: the middle slice); the image is
padded to a square and resized to ``size x size``. Only pixel data leave this module: DICOM
header fields (names, dates, ids) are never returned.

Knows tensors and MONAI, nothing about patients or SQL; must not import streamlit or the
``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from monai.data.image_reader import NibabelReader, NumpyReader, PILReader, PydicomReader
from monai.data.meta_tensor import MetaTensor
from monai.transforms.croppad.array import SpatialPad
from monai.transforms.intensity.array import ScaleIntensityRange
from monai.transforms.io.array import LoadImage
from monai.transforms.spatial.array import Orientation, Resize, Spacing

from data.errors import ScanReadError
from data.scan_spec import ScanSpec

__all__ = ["read_scan", "select_slice"]

RGB_CHANNELS = (3, 4)
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


# MONAI registers every reader it knows inside each LoadImage, the nvImageCodec DICOM reader
# included, which warns (and logs) on every machine without CUDA's nvImageCodec: a plugin for
# GPU decoding of compressed DICOM that riskfusion does not use (pydicom decodes on the CPU).
_PLUGIN_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
_PLUGIN_WARNING = "NvImgCodecPydicomReader"


@functools.cache
def _readers() -> dict[str, LoadImage]:
    """One MONAI loader per format, built once, without the GPU-decoder plugin's warnings."""
    plugin_log = logging.getLogger(_PLUGIN_LOGGER)
    level = plugin_log.level
    plugin_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PLUGIN_WARNING, category=UserWarning)
            readers = {
                "dicom": PydicomReader(),
                "nifti": NibabelReader(),
                "numpy": NumpyReader(allow_pickle=False),
                "picture": PILReader(),
            }
            return {
                name: LoadImage(reader=reader, image_only=True, dtype=np.float32)
                for name, reader in readers.items()
            }
    finally:
        plugin_log.setLevel(level)


def _reader(path: Path) -> LoadImage:
    """The MONAI loader for a file suffix or a DICOM series folder."""
    name = path.name.lower()
    if path.is_dir() or name.endswith(".dcm"):
        return _readers()["dicom"]
    if name.endswith((".nii", ".nii.gz")):
        return _readers()["nifti"]
    if name.endswith(".npy"):
        return _readers()["numpy"]
    if name.endswith((".png", ".jpg", ".jpeg")):
        return _readers()["picture"]
    raise ScanReadError(
        f"unsupported image type {path.name!r}; use .png, .jpg, .npy, .nii, .nii.gz, .dcm "
        "or a DICOM series folder"
    )


def _spatial(path: Path, image: MetaTensor) -> tuple[npt.NDArray[np.float32], bool]:
    """Grey-level array in MONAI spatial order ``(X, Y[, Z])`` and whether it is 3D."""
    array = np.asarray(image.detach().cpu().numpy(), dtype=np.float32)
    name = path.name.lower()
    if name.endswith((".png", ".jpg", ".jpeg")) and array.ndim == 3:
        if array.shape[-1] not in RGB_CHANNELS:
            raise ScanReadError(f"wrong dimensionality: image of shape {array.shape}")
        array = array[..., :3].mean(axis=-1)
    if name.endswith(".npy"):
        # NumPy arrays are taken as pictures: (H, W), or a (Z, H, W) stack of axial slices.
        if array.ndim == 2:
            array = array.T
        elif array.ndim == 3:  # rows run anterior to posterior: y (RAS) is the reversed row
            array = array.transpose(2, 1, 0)[:, ::-1, :]
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ScanReadError(
            f"wrong dimensionality: {array.ndim}D array of shape {tuple(array.shape)}; "
            "give one 2D image or one 3D volume"
        )
    if min(array.shape) < 2 if array.ndim == 2 else min(array.shape[:2]) < 2:
        raise ScanReadError(f"empty image: shape {tuple(array.shape)}")
    return array, array.ndim == 3


def _normalise(array: npt.NDArray[np.float32], spec: ScanSpec) -> npt.NDArray[np.float32]:
    """Map intensities to [0, 1]: CT by its Hounsfield window, others by percentiles.

    The percentile range is what MONAI's ``ScaleIntensityRangePercentiles`` computes, taken
    with ``np.percentile`` (its ``torch.quantile`` was half the reading time)
    and applied by ``ScaleIntensityRange``.
    """
    values = np.ascontiguousarray(array)
    if spec.modality == "CT":
        low, high = spec.ct_window
    else:
        low, high = (float(v) for v in np.percentile(values, spec.percentiles))
        if high <= low:  # most voxels share one value: fall back to the full range
            low, high = float(values.min()), float(values.max())
    out = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)(values)
    return np.asarray(out, dtype=np.float32)


def select_slice(
    volume: npt.NDArray[np.float32], strategy: str = "max_foreground"
) -> npt.NDArray[np.float32]:
    """Pick one axial slice ``(X, Y)`` of a ``(X, Y, Z)`` volume.

    Parameters
    ----------
    volume : ndarray of shape (X, Y, Z)
        Normalised volume in RAS orientation.
    strategy : {"max_foreground", "middle"}, default="max_foreground"
        ``max_foreground``: the slice with the most voxels above the volume mean (ties go to
        the slice nearest the middle); ``middle``: slice ``Z // 2``.

    Returns
    -------
    ndarray of shape (X, Y)
        The slice.

    Examples
    --------
    >>> vol = np.zeros((4, 4, 5), dtype=np.float32)
    >>> vol[1:3, 1:3, 1] = 1.0
    >>> bool(select_slice(vol).sum() == 4.0)
    True
    >>> bool(select_slice(vol, "middle").sum() == 0.0)
    True
    """
    depth = volume.shape[2]
    middle = depth // 2
    if strategy == "middle":
        return volume[:, :, middle]
    if strategy != "max_foreground":
        raise ValueError(f"Unknown slice strategy {strategy!r}; use 'max_foreground' or 'middle'.")
    counts = (volume > volume.mean()).sum(axis=(0, 1))
    best = np.flatnonzero(counts == counts.max())
    return volume[:, :, int(best[np.argmin(np.abs(best - middle))])]


def read_scan(path: Path, spec: ScanSpec) -> npt.NDArray[np.float32]:
    """Load one scan and return the 2D network input.

    Parameters
    ----------
    path : Path
        A ``.png``/``.jpg``/``.jpeg``/``.npy``/``.nii``/``.nii.gz``/``.dcm`` file or a folder
        holding one DICOM series.
    spec : ScanSpec
        Modality, target spacing, intensity window, slice strategy and output size.

    Returns
    -------
    ndarray of float32, shape (spec.size, spec.size)
        Intensities in [0, 1]; rows run from anterior (top) to posterior for 3D volumes, and
        follow the file's rows for 2D images.

    Raises
    ------
    ScanReadError
        If the file cannot be read, is not 2D or 3D, or holds no signal (empty or constant).
    """
    load = _reader(path)
    try:
        image = load(str(path))
    except (OSError, ValueError, RuntimeError, TypeError, IndexError, KeyError, EOFError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ScanReadError(f"the file cannot be read as an image ({first})") from err
    array, is_3d = _spatial(path, image)
    if not np.all(np.isfinite(array)):
        raise ScanReadError("the image holds NaN or infinite values")
    if float(array.max()) == float(array.min()):
        raise ScanReadError(f"empty volume: every voxel is {float(array.min()):g} (no signal)")
    if is_3d:
        affine = image.affine if isinstance(image, MetaTensor) else torch.eye(4)
        if path.name.lower().endswith(".npy"):
            affine = torch.eye(4, dtype=torch.float64)
        volume = MetaTensor(torch.from_numpy(np.ascontiguousarray(array[None])), affine=affine)
        oriented = Orientation(axcodes="RAS", labels=RAS_LABELS)(volume)
        resampled = Spacing(pixdim=spec.spacing, mode="bilinear")(oriented)
        normalised = _normalise(np.asarray(resampled[0].detach().cpu().numpy()), spec)
        plane = select_slice(normalised, spec.slice_strategy)
        picture = plane.T[::-1, :]  # rows: anterior at the top; columns: patient left to right
    else:
        picture = _normalise(array, spec).T  # MONAI's (X, Y) back to the file's (rows, cols)
    side = max(picture.shape)
    square = SpatialPad(spatial_size=(side, side), mode="constant", value=0.0)(
        torch.from_numpy(np.ascontiguousarray(picture))[None]
    )
    resized = Resize(spatial_size=(spec.size, spec.size), mode="area")(square)
    return np.ascontiguousarray(np.asarray(resized[0], dtype=np.float32))
