"""The scans of a cohort folder: which file belongs to which patient.

Owns :func:`image_entries` (by the naming rule ``images/<patient_id>.<ext>`` or an
``images.csv`` manifest; links out of the folder are refused), the image suffixes read, and the
content of preprocessed scans (:func:`npy_bytes`; source files are hashed by
:func:`data.artifacts.file_digest`).
Reading the pixels is the caller's :class:`data.scan_spec.ScanReader`. Imports
:mod:`data.scan_spec` and the siblings ``problems``, ``schema``, ``reading`` and ``checks`` only.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.cohort_import.checks import (
    normalise_ids,
)
from data.cohort_import.problems import (
    P_BAD_ID,
    P_CATEGORY,
    P_LINK_OUTSIDE,
    P_MISSING_COLUMN,
    P_MISSING_FILE,
    P_MISSING_VALUE,
    P_NOT_IMAGE,
    ProblemLog,
)
from data.cohort_import.reading import (
    read_table,
)
from data.cohort_import.schema import (
    ID_PATTERN,
    ImportSchema,
)
from data.scan_spec import ScanModality

__all__ = ["IMAGE_SUFFIXES", "ImageEntry", "image_entries", "npy_bytes"]

IMAGE_SUFFIXES: Final[tuple[str, ...]] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".npy",
    ".nii",
    ".nii.gz",
    ".dcm",
)


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """One scan of the cohort folder and the patient it belongs to."""

    patient_id: str
    path: Path
    label: str  # path relative to the cohort folder
    modality: ScanModality


def _outside_folder(path: Path, root: Path) -> Path | None:
    """The first of ``path`` or (for a folder) anything in it that resolves outside ``root``.

    Symbolic links (and ``..`` in a manifest path) are resolved first, so a link in
    ``images/`` to a scan, a folder or any file elsewhere on the server is caught; a link that
    stays inside the cohort folder is allowed.
    """
    if not path.resolve().is_relative_to(root):
        return path
    if path.is_dir():
        for folder, subfolders, files in os.walk(path):  # does not descend into linked folders
            for name in sorted([*subfolders, *files]):
                entry = Path(folder, name)
                if not entry.resolve().is_relative_to(root):
                    return entry
    return None


def _link_problem(problems: ProblemLog, directory: Path, label: str, outside: Path) -> None:
    """Record a link out of the cohort folder: name the file and the fix (not the target)."""
    name = outside.relative_to(directory).as_posix() if outside.is_relative_to(directory) else label
    problems.add(
        label,
        P_LINK_OUTSIDE,
        f"{name} resolves outside {directory.name}/; copy the file into the cohort folder "
        "instead of linking to it (imports read only files inside the folder)",
        value=name,
    )


def image_entries(directory: Path, schema: ImportSchema, problems: ProblemLog) -> list[ImageEntry]:
    """Scans by manifest (``patient_id, path[, modality]``) or by the naming rule.

    Every scan must lie inside the cohort folder once links are resolved (see
    :func:`_outside_folder`); one that does not is reported and never read.
    """
    entries: list[ImageEntry] = []
    root = directory.resolve()
    images_dir = directory / "images"
    manifest = schema.manifest or ("images.csv" if (directory / "images.csv").is_file() else "")
    if manifest:
        path = directory / manifest
        if not path.is_file():
            problems.add(manifest, P_MISSING_FILE, "add the manifest or remove images.manifest")
            return []
        frame = read_table(path, problems)
        if frame is None:
            return []
        for column in (schema.id_column, "path"):
            if column not in frame.columns:
                problems.add(manifest, P_MISSING_COLUMN, f"add a {column!r} column", column=column)
        if problems.rows and any(
            r["file"] == manifest and r["problem"] == P_MISSING_COLUMN for r in problems.rows
        ):
            return []
        ids = normalise_ids(frame, manifest, schema.id_column, problems)
        modalities = frame["modality"] if "modality" in frame.columns else None
        for row in frame.index:
            pid, rel = ids[row], frame["path"].loc[row]
            if pid is None or pd.isna(pid):
                continue
            if rel is None or pd.isna(rel):
                problems.add(
                    manifest, P_MISSING_VALUE, "give the image path", row=row, column="path"
                )
                continue
            modality = schema.scans.modality
            if (
                modalities is not None
                and modalities[row] is not None
                and not pd.isna(modalities[row])
            ):
                value = str(modalities[row]).strip()
                if value not in get_args(ScanModality):
                    problems.add(
                        manifest,
                        P_CATEGORY,
                        f"allowed: {list(get_args(ScanModality))}",
                        row=row,
                        column="modality",
                        value=value,
                    )
                    continue
                modality = value  # type: ignore[assignment]
            target = images_dir / str(rel)
            if not target.exists():
                problems.add(
                    manifest,
                    "image file not found",
                    f"put the file at images/{rel} or fix the path",
                    row=row,
                    column="path",
                    value=rel,
                )
                continue
            outside = _outside_folder(target, root)
            if outside is not None:
                _link_problem(problems, directory, manifest, outside)
                continue
            entries.append(ImageEntry(str(pid), target, f"images/{rel}", modality))
        return entries
    if not images_dir.is_dir():
        return []
    for item in sorted(images_dir.iterdir()):
        if item.name.startswith("."):
            continue
        label = f"images/{item.name}"
        outside = _outside_folder(item, root)
        if outside is not None:
            _link_problem(problems, directory, label, outside)
            continue
        if item.is_dir():
            stem = item.name
        else:
            suffix = next((s for s in IMAGE_SUFFIXES if item.name.lower().endswith(s)), None)
            if suffix is None:
                problems.add(
                    label,
                    P_NOT_IMAGE,
                    f"use one of {list(IMAGE_SUFFIXES)} or a DICOM series folder",
                    severity="warning",
                )
                continue
            stem = item.name[: -len(suffix)]
        pid = stem.strip().upper()
        if not ID_PATTERN.fullmatch(pid):
            problems.add(
                label,
                P_BAD_ID,
                "name the file <patient_id>.<ext> or list it in images.csv",
                value=stem,
            )
            continue
        entries.append(ImageEntry(pid, item, label, schema.scans.modality))
    return entries


def npy_bytes(array: npt.NDArray[np.float32]) -> bytes:
    """The ``.npy`` file bytes of a preprocessed scan (hashed, then written content-addressed)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
