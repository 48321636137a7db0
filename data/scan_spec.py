"""Image preprocessing settings of an import and the reader protocol.

Owns :class:`ScanSpec` (what ``[images]`` in a schema file sets) and :class:`ScanReader` (the
callable that turns one scan file into a network input; ``models.scans.read_scan`` is the MONAI
implementation). Kept apart from :mod:`data.cohort_import` so that ``models`` can import it without
pandas or SQL. Imports nothing from the other project packages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["ScanModality", "ScanReader", "ScanSpec", "SliceStrategy"]

ScanModality = Literal["CT", "MR", "other"]
SliceStrategy = Literal["max_foreground", "middle"]


@dataclass(frozen=True, slots=True)
class ScanSpec:
    """How scans become network inputs (see ``docs/import.md``, "Images").

    Attributes
    ----------
    modality : {"CT", "MR", "other"}, default="other"
        Default intensity normalisation: CT windowed in Hounsfield units (``ct_window``), MR
        and other images percentile-scaled (``percentiles``); an ``images.csv`` manifest may
        set it per scan.
    size : int, default=128
        Side of the square network input in pixels.
    spacing : tuple of float, default=(1.0, 1.0, 1.0)
        Target voxel spacing in mm (x, y, z) of 3D volumes after reorientation to RAS.
    ct_window : tuple of float, default=(-160.0, 240.0)
        Hounsfield window mapped to [0, 1] (soft tissue).
    percentiles : tuple of float, default=(1.0, 99.0)
        Percentiles mapped to [0, 1] for MR and other images.
    slice_strategy : {"max_foreground", "middle"}, default="max_foreground"
        Which axial slice of a 3D volume the 2D network sees.
    """

    modality: ScanModality = "other"
    size: int = 128
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ct_window: tuple[float, float] = (-160.0, 240.0)
    percentiles: tuple[float, float] = (1.0, 99.0)
    slice_strategy: SliceStrategy = "max_foreground"

    def key(self) -> str:
        """Canonical JSON of the settings (part of each scan's content hash)."""
        return json.dumps(asdict(self), sort_keys=True)


class ScanReader(Protocol):
    """Reads one scan file (or DICOM series folder) into a network input.

    Implementations return float32 of shape ``(spec.size, spec.size)`` in [0, 1] and raise
    :class:`data.errors.ScanReadError` for unreadable, empty or wrongly shaped scans.
    """

    def __call__(self, path: Path, spec: ScanSpec) -> npt.NDArray[np.float32]:
        """Read and preprocess ``path``."""
        ...
