"""Interval calibration as stored: the fitted record, its JSON form and its checked file.

Owns :class:`IntervalCalibration` (what :func:`fusion.uncertainty.fit_interval_calibration`
fits and :func:`fusion.uncertainty.risk_interval` reads), the interval targets, and writing and
loading the file (JSON with a SHA-256 checked before loading). Must not import
:mod:`fusion.uncertainty` (which imports this module) nor streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from data.artifacts import REBUILD_HINT, file_digest, verified_file
from data.errors import ArtifactIntegrityError

__all__ = [
    "FORMAT_VERSION",
    "INTERVAL_TARGETS",
    "IntervalCalibration",
    "IntervalTarget",
    "check_target",
    "load_calibration",
    "save_calibration",
]

IntervalTarget = Literal["true_risk", "event_rate"]
INTERVAL_TARGETS: tuple[IntervalTarget, ...] = ("true_risk", "event_rate")
FORMAT_VERSION = 2
"""2: cross-conformal on out-of-fold risks of train + validation (1: validation split only)."""


@dataclass(frozen=True, slots=True)
class IntervalCalibration:
    """Fitted interval calibration, one entry per combination of missing modalities.

    Attributes
    ----------
    level : float
        Nominal coverage.
    target : {"true_risk", "event_rate"}
        The target served by :func:`risk_interval`.
    n_calibration : int
        Calibration patients (train + validation, each scored out of fold).
    folds : int
        Refits of the fusion model that gave the out-of-fold risks (0 if none was made).
    modality_columns : dict of str to tuple of str
        Model inputs of each maskable modality (a row whose inputs of a modality are all
        missing uses that modality's calibration).
    logit_halfwidths : dict of str to float
        ``"true_risk"``: conformal half-width added to and subtracted from the fused logit, by
        :func:`missing_key` (empty without ground truth).
    grid : tuple of float
        Risks at which the event-rate band is tabulated.
    event_rate_bands : dict of str to (tuple, tuple)
        ``"event_rate"``: lower and upper band over ``grid``, by :func:`missing_key`.
    reason : str, default=""
        Why no interval is served (too few patients for ``level``); empty when one is.
    """

    level: float
    target: IntervalTarget
    n_calibration: int
    folds: int
    modality_columns: Mapping[str, tuple[str, ...]]
    logit_halfwidths: Mapping[str, float]
    grid: tuple[float, ...]
    event_rate_bands: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]
    reason: str = ""

    @property
    def available(self) -> bool:
        """Whether an interval is served (else :attr:`reason` says why not)."""
        return not self.reason

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form (see :func:`save_calibration`)."""
        return {
            "format_version": FORMAT_VERSION,
            "level": self.level,
            "target": self.target,
            "n_calibration": self.n_calibration,
            "folds": self.folds,
            "modality_columns": {k: list(v) for k, v in self.modality_columns.items()},
            "logit_halfwidths": dict(self.logit_halfwidths),
            "grid": list(self.grid),
            "event_rate_bands": {
                k: [list(low), list(high)] for k, (low, high) in self.event_rate_bands.items()
            },
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IntervalCalibration:
        """Inverse of :meth:`to_json`.

        Raises
        ------
        data.errors.ArtifactIntegrityError
            If ``data`` has another format (a version built before the out-of-fold interval).
        """
        if data.get("format_version") != FORMAT_VERSION:
            raise ArtifactIntegrityError(
                f"Interval calibration format {data.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; {REBUILD_HINT}."
            )
        return cls(
            level=float(data["level"]),
            target=check_target(str(data["target"])),
            n_calibration=int(data["n_calibration"]),
            folds=int(data["folds"]),
            modality_columns={k: tuple(v) for k, v in data["modality_columns"].items()},
            logit_halfwidths={k: float(v) for k, v in data["logit_halfwidths"].items()},
            grid=tuple(float(v) for v in data["grid"]),
            event_rate_bands={
                k: (tuple(map(float, v[0])), tuple(map(float, v[1])))
                for k, v in data["event_rate_bands"].items()
            },
            reason=str(data.get("reason", "")),
        )


def check_target(value: str) -> IntervalTarget:
    """``value`` as an interval target.

    Raises
    ------
    ValueError
        If ``value`` is not one of :data:`INTERVAL_TARGETS`.
    """
    for target in INTERVAL_TARGETS:
        if value == target:
            return target
    raise ValueError(f"Unknown interval target {value!r}; choose from {list(INTERVAL_TARGETS)}.")


def save_calibration(calibration: IntervalCalibration, path: Path) -> str:
    """Write the calibration as JSON.

    Returns
    -------
    str
        Its SHA-256 (register it; :func:`load_calibration` checks it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration.to_json(), indent=1))
    return file_digest(path)


def load_calibration(path: Path, *, expected_sha256: str) -> IntervalCalibration:
    """Load a calibration saved by :func:`save_calibration`, checking its SHA-256 first.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the file is missing, differs from its registered hash or has another format.
    """
    source = verified_file(path, expected_sha256, what="Interval calibration")
    return IntervalCalibration.from_json(json.loads(source.read_text()))
