from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from data.artifacts import REBUILD_HINT, file_digest, verified_file
from data.errors import ArtifactIntegrityError


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_bytes(b"x" * (3 << 20) + b"tail")  # several read blocks
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(str(path)) == file_digest(path)


def test_folder_digest_covers_names_and_bytes_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    (folder / "b").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(b"first")
    (folder / "b" / "c.dcm").write_bytes(b"second")
    expected = hashlib.sha256(b"a.dcmfirst" + str(Path("b") / "c.dcm").encode() + b"second")
    assert file_digest(folder) == expected.hexdigest()
    (folder / "b" / "c.dcm").rename(folder / "b" / "d.dcm")  # same bytes, other name
    assert file_digest(folder) != expected.hexdigest()


def test_an_intact_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("weights")
    assert verified_file(path, file_digest(path), what="Fusion model file") == path
    assert verified_file(path, file_digest(path).upper(), what="Fusion model file") == path
    assert verified_file(path, None, what="Fusion model file") == path


def test_a_tampered_file_is_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("weights")
    registered = file_digest(path)
    path.write_text("weights, tampered")
    message = (
        rf"Fusion model file {re.escape(str(path))} does not match its registered SHA-256 "
        rf"\(truncated or modified\); {re.escape(REBUILD_HINT)}\."
    )
    with pytest.raises(ArtifactIntegrityError, match=message):
        verified_file(path, registered, what="Fusion model file")


def test_the_message_names_where_the_hash_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "member.txt"
    path.write_text("booster")
    with pytest.raises(ArtifactIntegrityError, match="does not match the SHA-256 in its manifest"):
        verified_file(
            path, "0" * 64, what="Forecast model file", expected_from="the SHA-256 in its manifest"
        )


def test_a_missing_file_is_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "absent.pt"
    message = rf"Imaging weights {re.escape(str(path))} is missing; {re.escape(REBUILD_HINT)}\."
    with pytest.raises(ArtifactIntegrityError, match=message):
        verified_file(path, None, what="Imaging weights")
    with pytest.raises(ArtifactIntegrityError, match="riskfusion demo --no-serve --rebuild"):
        verified_file(tmp_path, None, what="Imaging weights")  # a folder is not a file
