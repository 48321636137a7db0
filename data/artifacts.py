"""Artifact files: one SHA-256 file hash and one verify-then-load gate.

Owns :func:`file_digest` (the hash the model registry records for every artifact file),
:func:`verified_file` (refuse a missing or changed file before any loader reads it) and
:data:`REBUILD_HINT`, the fix every integrity message names. Loaders call
``verified_file`` first, so LightGBM (which aborts the process on a truncated model) and
``torch.load`` only ever see the bytes that were registered. It imports the standard library
and :mod:`data.errors` only; it must not import torch, streamlit or the
``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from data.errors import ArtifactIntegrityError

__all__ = ["REBUILD_HINT", "file_digest", "verified_file"]

REBUILD_HINT = (
    "retrain it (`riskfusion train`; the synthetic demo: `riskfusion demo --no-serve --rebuild`)"
)
"""The fix for a missing or changed artifact (an imported cohort: ``riskfusion train``)."""

REGISTERED_SHA = "its registered SHA-256"
"""Where the expected hash of an artifact comes from, unless the caller names another place."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, or of a folder's files (read in blocks).

    Parameters
    ----------
    path : str or os.PathLike
        A file, or a folder (e.g. a DICOM series): then the digest runs over each file below
        it in sorted order, its path relative to the folder followed by its bytes.

    Returns
    -------
    str
        64 lower-case hex digits.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as handle:
    ...     _ = handle.write(b"abc")
    >>> file_digest(handle.name)[:16]
    'ba7816bf8f01cfea'
    """
    root = Path(path)
    if not root.is_dir():
        with root.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    digest = hashlib.sha256()
    for file in sorted(item for item in root.rglob("*") if item.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as handle:
            hashlib.file_digest(handle, lambda: digest)  # feeds the folder's running digest
    return digest.hexdigest()


def verified_file(
    path: str | os.PathLike[str],
    expected_sha256: str | None,
    *,
    what: str,
    expected_from: str = REGISTERED_SHA,
) -> Path:
    """The path of an artifact file that exists and still has the expected SHA-256.

    Parameters
    ----------
    path : str or os.PathLike
        The artifact file.
    expected_sha256 : str or None
        Hex digest recorded when the file was written (case-insensitive); None checks that
        the file exists only.
    what : str
        What the file is, for the message, e.g. ``"Fusion model file"``.
    expected_from : str, default="its registered SHA-256"
        Where ``expected_sha256`` was recorded, for the message (e.g. a manifest).

    Returns
    -------
    Path
        ``path``, safe to hand to the loader.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the file is missing, or its bytes differ from ``expected_sha256``; the message
        names the file and :data:`REBUILD_HINT`.
    """
    file = Path(path)
    if not file.is_file():
        raise ArtifactIntegrityError(f"{what} {file} is missing; {REBUILD_HINT}.")
    if expected_sha256 is not None and file_digest(file) != expected_sha256.lower():
        raise ArtifactIntegrityError(
            f"{what} {file} does not match {expected_from} (truncated or modified); {REBUILD_HINT}."
        )
    return file
