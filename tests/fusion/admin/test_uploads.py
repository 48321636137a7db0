"""Safe extraction of uploaded cohort zips, folder checks and in-process validation."""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from fusion.admin.uploads import (
    EXAMPLE_COHORT,
    UploadError,
    check_cohort_folder,
    extract_zip,
    remove_upload,
)


def _zip(entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _uploads(home: Path) -> list[Path]:
    folder = home / "uploads"
    return sorted(folder.iterdir()) if folder.is_dir() else []


COHORT = {"patients.csv": b"patient_id,age,sex\nP1,50,F\n", "outcomes.csv": b"patient_id,label\n"}


@pytest.mark.parametrize("prefix", ["", "cohort/"])
def test_extracts_a_cohort_at_the_top_or_one_folder_down(tmp_path: Path, prefix: str) -> None:
    data = _zip({f"{prefix}{name}": content for name, content in COHORT.items()})
    upload = extract_zip(data, tmp_path)
    assert upload.root.parent == tmp_path / "uploads"
    assert upload.cohort == (upload.root / prefix.rstrip("/") if prefix else upload.root)
    assert (upload.cohort / "patients.csv").read_bytes() == COHORT["patients.csv"]
    assert upload.n_files == 2
    assert upload.n_bytes == sum(len(v) for v in COHORT.values())
    assert stat.S_IMODE(upload.root.stat().st_mode) == 0o700


def test_each_upload_gets_a_fresh_folder(tmp_path: Path) -> None:
    first = extract_zip(_zip(COHORT), tmp_path)
    second = extract_zip(_zip(COHORT), tmp_path)
    assert first.root != second.root
    assert len(_uploads(tmp_path)) == 2


def test_macos_resource_forks_are_skipped(tmp_path: Path) -> None:
    data = _zip({**COHORT, "__MACOSX/._patients.csv": b"x", "images/._P1.png": b"x"})
    upload = extract_zip(data, tmp_path)
    assert set(upload.skipped) == {"__MACOSX/._patients.csv", "images/._P1.png"}
    assert not (upload.root / "__MACOSX").exists()
    assert not (upload.root / "images" / "._P1.png").exists()


@pytest.mark.parametrize(
    ("entries", "links", "match"),
    [
        ({"../evil.csv": b"x"}, None, r"'\.\./evil\.csv' points outside the archive"),
        ({"cohort/../../evil.csv": b"x"}, None, "points outside the archive"),
        ({"/etc/evil.csv": b"x"}, None, r"'/etc/evil\.csv' has an absolute path"),
        ({"C:/evil.csv": b"x"}, None, "has an absolute path"),
        ({"..\\evil.csv": b"x"}, None, "points outside the archive"),
        ({}, {"patients.csv": "/etc/passwd"}, r"'patients\.csv' is a symbolic link"),
        ({}, None, "The archive is empty"),
        ({"notes.txt": b"x"}, None, r"No patients\.csv or patients\.parquet"),
        ({"a/patients.csv": b"x", "b/patients.csv": b"x"}, None, "2 cohort folders"),
        ({"Patients.csv": b"x", "patients.csv": b"y"}, None, "appears twice"),
    ],
)
def test_unsafe_or_unusable_archives_are_refused_and_leave_nothing(
    tmp_path: Path, entries: dict[str, bytes], links: dict[str, str] | None, match: str
) -> None:
    with pytest.raises(UploadError, match=match):
        extract_zip(_zip(entries, links=links), tmp_path)
    assert _uploads(tmp_path) == []
    assert not (tmp_path.parent / "evil.csv").exists()


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="not a zip archive"):
        extract_zip(b"patient_id,age\n", tmp_path)


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    entries = {**COHORT, **{f"images/P{i}.png": b"x" for i in range(5)}}
    with pytest.raises(UploadError, match="more than 4 files"):
        extract_zip(_zip(entries), tmp_path, max_files=4)
    assert _uploads(tmp_path) == []


def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    data = _zip({**COHORT, "images/P1.npy": b"\0" * 1_000_000})
    assert len(data) < 10_000  # highly compressed
    with pytest.raises(UploadError, match="unpacks to 1,000,"):
        extract_zip(data, tmp_path, max_total_bytes=100_000)
    assert _uploads(tmp_path) == []


def test_a_zip_that_lies_about_its_sizes_is_refused(tmp_path: Path) -> None:
    data = bytearray(_zip({**COHORT, "images/P1.npy": b"\0" * 1_000_000}))
    # Declare 10 bytes instead of 1,000,000 in the entry's central-directory record.
    central = data.find(b"images/P1.npy", data.find(b"PK\x01\x02")) - 46
    assert data[central : central + 4] == b"PK\x01\x02"
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        assert archive.getinfo("images/P1.npy").file_size == 10
    with pytest.raises(UploadError, match=r"'images/P1\.npy' (cannot be read|.*stopped at)"):
        extract_zip(bytes(data), tmp_path, max_total_bytes=100_000)
    assert _uploads(tmp_path) == []


def test_check_cohort_folder(tmp_path: Path) -> None:
    assert check_cohort_folder(str(EXAMPLE_COHORT)) == EXAMPLE_COHORT
    with pytest.raises(UploadError, match="Type the path"):
        check_cohort_folder("  ")
    with pytest.raises(UploadError, match="does not exist"):
        check_cohort_folder(tmp_path / "missing")
    (tmp_path / "file.zip").write_bytes(b"x")
    with pytest.raises(UploadError, match="is a file, not a folder"):
        check_cohort_folder(tmp_path / "file.zip")
    shutil.copytree(EXAMPLE_COHORT, tmp_path / "parent" / "cohort")
    with pytest.raises(UploadError, match=r"Did you mean .*parent/cohort\?"):
        check_cohort_folder(tmp_path / "parent")


def test_remove_upload_only_removes_upload_folders(tmp_path: Path) -> None:
    upload = extract_zip(_zip(COHORT), tmp_path)
    with pytest.raises(ValueError, match="not an upload folder"):
        remove_upload(tmp_path, tmp_path)
    remove_upload(upload.root, tmp_path)
    assert _uploads(tmp_path) == []
