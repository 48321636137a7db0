"""Cohort sources of the dashboard's Data page: uploaded zips, server folders, the example.

Owns the safe extraction of an uploaded zip archive into a fresh folder under
``<artifacts>/uploads/<random id>/`` (no absolute paths, no ``..``, no links, bounded file count
and uncompressed size, checked while writing), finding the cohort folder inside it, checking a
folder path typed by an admin (validation runs as a background job: :mod:`fusion.admin.jobs`).
Must not import streamlit or the dashboard.
"""

from __future__ import annotations

import io
import logging
import secrets
import shutil
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Final

import data

__all__ = [
    "EXAMPLE_COHORT",
    "MAX_FILES",
    "MAX_TOTAL_BYTES",
    "UPLOADS_DIR",
    "ExtractedUpload",
    "UploadError",
    "check_cohort_folder",
    "extract_zip",
    "find_cohort_folder",
    "remove_upload",
]

logger = logging.getLogger(__name__)

UPLOADS_DIR: Final[str] = "uploads"
MAX_FILES: Final[int] = 50_000
"""At most this many files in one archive (a 10,000-patient cohort has about 10,004)."""
MAX_TOTAL_BYTES: Final[int] = 8 * 1024**3
"""At most this many uncompressed bytes in one archive (8 GiB), counted while writing."""
EXAMPLE_COHORT: Final[Path] = Path(data.__file__).resolve().parent / "examples" / "cohort"
PATIENT_TABLES: Final[tuple[str, ...]] = ("patients.csv", "patients.parquet")
# Files that archivers add and that are no part of a cohort (macOS resource forks, Finder).
_SKIPPED_DIRS: Final[frozenset[str]] = frozenset({"__MACOSX"})
_SKIPPED_NAMES: Final[frozenset[str]] = frozenset({".DS_Store", "Thumbs.db"})
_CHUNK: Final[int] = 1024 * 1024


class UploadError(ValueError):
    """An uploaded archive or a typed folder cannot be used as a cohort source."""


@dataclass(frozen=True, slots=True)
class ExtractedUpload:
    """An uploaded zip, extracted.

    Attributes
    ----------
    root : Path
        The fresh folder the archive was extracted into (``<artifacts>/uploads/<id>``).
    cohort : Path
        The cohort folder inside ``root`` (``root`` itself or one folder down).
    n_files : int
        Files written.
    n_bytes : int
        Uncompressed bytes written.
    skipped : tuple of str
        Archive entries left out (``__MACOSX/``, ``._*`` resource forks, ``.DS_Store``).
    """

    root: Path
    cohort: Path
    n_files: int
    n_bytes: int
    skipped: tuple[str, ...] = ()


def _entry_parts(name: str) -> tuple[str, ...]:
    """The path parts of an archive entry, or :class:`UploadError` if it leaves the folder."""
    if "\x00" in name:
        raise UploadError(f"Archive entry {name!r} has a NUL character in its name; re-create it.")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UploadError(
            f"Archive entry {name!r} has an absolute path; zip the cohort folder with relative "
            "paths (e.g. `cd parent && zip -r cohort.zip cohort`)."
        )
    parts = tuple(part for part in PurePosixPath(unified).parts if part not in ("", "."))
    if ".." in parts:
        raise UploadError(
            f"Archive entry {name!r} points outside the archive ('..'); riskfusion refuses "
            "such archives. Zip the cohort folder itself."
        )
    return parts


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _skipped(parts: Sequence[str]) -> bool:
    return (
        any(part in _SKIPPED_DIRS for part in parts)
        or parts[-1] in _SKIPPED_NAMES
        or parts[-1].startswith("._")
    )


def extract_zip(
    archive: bytes | IO[bytes],
    artifacts_dir: Path,
    *,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> ExtractedUpload:
    """Extract an uploaded zip into a fresh folder and find the cohort folder inside it.

    Every entry is checked before anything is written (absolute paths, ``..``, links,
    encryption, duplicates, the number of files); sizes are counted while writing, so an
    archive that lies about its sizes (a zip bomb) is stopped at ``max_total_bytes``. On any
    problem the new folder is removed and nothing else is touched.

    Parameters
    ----------
    archive : bytes or binary file
        The zip file's content (e.g. Streamlit's ``UploadedFile``).
    artifacts_dir : Path
        The runtime directory; the archive goes to ``<artifacts_dir>/uploads/<random id>/``
        (created with mode 0700: it holds patient data).
    max_files : int, default=MAX_FILES
        Most files accepted.
    max_total_bytes : int, default=MAX_TOTAL_BYTES
        Most uncompressed bytes accepted.

    Returns
    -------
    ExtractedUpload
        Where it went and what was written.

    Raises
    ------
    UploadError
        If the file is not a zip, an entry is unsafe, a limit is passed or the archive holds
        no cohort folder; the message names the entry and the fix.
    """
    stream = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    try:
        zipped = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as err:
        raise UploadError(
            f"The upload is not a zip archive ({err}); upload the cohort folder as a .zip."
        ) from None
    with zipped:
        plan = _plan(zipped.infolist(), max_files=max_files, max_total_bytes=max_total_bytes)
        root = _fresh_folder(Path(artifacts_dir) / UPLOADS_DIR)
        try:
            n_files, n_bytes = _write(zipped, plan.files, root, max_total_bytes=max_total_bytes)
            cohort = find_cohort_folder(root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
    logger.info("extracted an upload: %d files, %d bytes", n_files, n_bytes)
    return ExtractedUpload(root, cohort, n_files, n_bytes, plan.skipped)


@dataclass(frozen=True, slots=True)
class _Plan:
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]]
    skipped: tuple[str, ...]


def _plan(infos: Sequence[zipfile.ZipInfo], *, max_files: int, max_total_bytes: int) -> _Plan:
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    skipped: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _entry_parts(info.filename)
        if not parts:
            continue
        if _is_link(info):
            raise UploadError(
                f"Archive entry {info.filename!r} is a symbolic link; riskfusion does not "
                "follow links in uploads. Zip the files themselves (`zip -r` without -y)."
            )
        if info.flag_bits & 0x1:
            raise UploadError(
                f"Archive entry {info.filename!r} is encrypted; upload an archive without a "
                "password."
            )
        if _skipped(parts):
            skipped.append(info.filename)
            continue
        if info.is_dir():
            continue
        key = tuple(part.lower() for part in parts)
        if key in seen:
            raise UploadError(
                f"Archive entry {info.filename!r} appears twice (names are compared "
                "ignoring case); re-create the archive from the cohort folder."
            )
        seen.add(key)
        files.append((info, parts))
        if len(files) > max_files:
            raise UploadError(
                f"The archive holds more than {max_files:,} files; riskfusion accepts at most "
                f"{max_files:,} per upload. Put the cohort in a folder on the server and use "
                "'Folder on the server' instead."
            )
    if not files:
        raise UploadError("The archive is empty; zip the cohort folder (docs/import.md).")
    declared = sum(info.file_size for info, _ in files)
    if declared > max_total_bytes:
        raise UploadError(
            f"The archive unpacks to {declared:,} bytes; riskfusion accepts at most "
            f"{max_total_bytes:,} per upload. Put the cohort in a folder on the server and use "
            "'Folder on the server' instead."
        )
    return _Plan(files, tuple(skipped))


def _fresh_folder(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = parent / secrets.token_hex(8)
    folder.mkdir(mode=0o700)  # fails rather than reuse an existing folder
    return folder


def _write(
    zipped: zipfile.ZipFile,
    files: Sequence[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    root: Path,
    *,
    max_total_bytes: int,
) -> tuple[int, int]:
    total = 0
    for info, parts in files:
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zipped.open(info) as source, target.open("xb") as sink:
                while chunk := source.read(_CHUNK):
                    total += len(chunk)
                    if total > max_total_bytes:
                        raise UploadError(
                            f"The archive unpacks to more than {max_total_bytes:,} bytes "
                            f"(stopped at entry {info.filename!r}); riskfusion accepts at "
                            "most that per upload. Put the cohort in a folder on the server "
                            "and use 'Folder on the server' instead."
                        )
                    sink.write(chunk)
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
            raise UploadError(
                f"Archive entry {info.filename!r} cannot be read ({err}); re-create the "
                "archive and upload it again."
            ) from None
        except OSError as err:  # e.g. a file and a folder of the same name, a full disk
            raise UploadError(
                f"Archive entry {info.filename!r} cannot be written ({err}); re-create the "
                "archive from the cohort folder, or free disk space."
            ) from None
        except NotImplementedError as err:  # an unsupported compression method
            raise UploadError(
                f"Archive entry {info.filename!r} uses a compression riskfusion cannot read "
                f"({err}); re-create the archive with the standard 'deflate' compression."
            ) from None
    return len(files), total


def _has_patients(folder: Path) -> bool:
    return any((folder / name).is_file() for name in PATIENT_TABLES)


def find_cohort_folder(root: Path) -> Path:
    """The folder holding ``patients.csv``/``patients.parquet``: ``root`` or one level down.

    Parameters
    ----------
    root : Path
        An extracted archive.

    Returns
    -------
    Path
        The cohort folder.

    Raises
    ------
    UploadError
        If no folder, or more than one, holds a patients table.
    """
    if _has_patients(root):
        return root
    found = sorted(child for child in root.iterdir() if child.is_dir() and _has_patients(child))
    if len(found) == 1:
        return found[0]
    if found:
        names = [child.name for child in found]
        raise UploadError(
            f"The archive holds {len(found)} cohort folders {names}; upload one cohort per archive."
        )
    raise UploadError(
        f"No {' or '.join(PATIENT_TABLES)} at the top of the archive or one folder down; zip "
        "the cohort folder that holds patients.csv, outcomes.csv and schema.toml "
        "(docs/import.md)."
    )


def check_cohort_folder(path: str | Path) -> Path:
    """A folder path typed by an admin, checked: it exists, is a folder, holds a patients table.

    Parameters
    ----------
    path : str or Path
        A folder on the server (``~`` is expanded; relative paths are relative to the server's
        working directory).

    Returns
    -------
    Path
        The absolute cohort folder.

    Raises
    ------
    UploadError
        If the path is empty, does not exist, is not a folder or has no patients table (with
        the cohort folder one level down as a suggestion, when there is one).
    """
    text = str(path).strip()
    if not text:
        raise UploadError("Type the path of a cohort folder on the server.")
    folder = Path(text).expanduser().resolve()
    if not folder.exists():
        raise UploadError(f"{folder} does not exist on the server; check the path.")
    if not folder.is_dir():
        raise UploadError(
            f"{folder} is a file, not a folder; type the folder that holds patients.csv "
            "(to upload a zip, use 'Upload a zip')."
        )
    if _has_patients(folder):
        return folder
    try:
        below = find_cohort_folder(folder)
    except UploadError:
        below = None
    except PermissionError:
        raise UploadError(f"The server may not read {folder}; check its permissions.") from None
    hint = f" Did you mean {below}?" if below is not None else ""
    raise UploadError(
        f"{folder} holds no {' or '.join(PATIENT_TABLES)}; type the cohort folder "
        f"(docs/import.md).{hint}"
    )


def remove_upload(folder: Path, artifacts_dir: Path) -> None:
    """Delete an extracted upload (only folders under ``<artifacts_dir>/uploads/``).

    Raises
    ------
    ValueError
        If ``folder`` is not an upload folder of ``artifacts_dir``.
    """
    uploads = (Path(artifacts_dir) / UPLOADS_DIR).resolve()
    target = Path(folder).resolve()
    if target.parent != uploads:
        raise ValueError(f"{target} is not an upload folder under {uploads}; nothing removed.")
    shutil.rmtree(target, ignore_errors=True)
