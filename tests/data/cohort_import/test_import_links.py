"""Folder import: links that lead out of the cohort folder are refused, never read."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from data.cohort_import import import_cohort, validate_cohort
from data.cohort_import.problems import P_LINK_OUTSIDE
from data.errors import CohortValidationError
from data.store import CohortStore, make_engine
from data.synthetic.example_cohort import write_example_cohort
from models.scans import read_scan

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("links") / "cohort"
    write_example_cohort(folder, n_patients=14)
    return folder


@pytest.fixture
def layout(master: Path, tmp_path: Path) -> tuple[Path, Path]:
    """An editable cohort copy and a folder elsewhere on the "server" holding real scans."""
    cohort = Path(shutil.copytree(master, tmp_path / "cohort"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(cohort / "images" / "P0000004.png", elsewhere / "secret.png")
    shutil.move(cohort / "images" / "P0000003", elsewhere / "series")
    return cohort, elsewhere


def _links(cohort: Path) -> list[str]:
    report = validate_cohort(cohort)
    rows = report.errors[report.errors["problem"] == P_LINK_OUTSIDE]
    return sorted(rows["file"])


@pytest.mark.parametrize(
    ("name", "target", "shown"),
    [
        ("P0000004.png", "secret.png", "images/P0000004.png"),  # a linked file
        ("P0000003", "series", "images/P0000003"),  # a linked DICOM folder
    ],
)
def test_a_link_out_of_the_folder_is_refused_with_its_name_and_the_fix(
    layout: tuple[Path, Path], tmp_path: Path, name: str, target: str, shown: str
) -> None:
    cohort, elsewhere = layout
    (cohort / "images" / name).symlink_to(elsewhere / target)
    report = validate_cohort(cohort)
    assert not report.ok
    row = report.errors[report.errors["problem"] == P_LINK_OUTSIDE].iloc[0]
    assert row["file"] == shown
    assert "copy the file into the cohort folder" in row["fix"]
    assert str(elsewhere) not in report.to_text()  # the server path is not echoed
    store = CohortStore(make_engine("sqlite://"))
    with pytest.raises(CohortValidationError, match="outside the cohort folder"):
        import_cohort(cohort, store, artifacts_dir=tmp_path / "art", reader=read_scan)
    assert store.count_patients() == 0
    assert list(tmp_path.glob("art/**/*.npy")) == []  # no scan was written either


def test_a_link_inside_a_real_series_folder_is_found(layout: tuple[Path, Path]) -> None:
    cohort, elsewhere = layout
    series = cohort / "images" / "P0000003"
    shutil.copytree(elsewhere / "series", series)
    first = sorted(series.iterdir())[0]
    first.unlink()
    first.symlink_to(elsewhere / "series" / first.name)
    assert _links(cohort) == ["images/P0000003"]
    fix = validate_cohort(cohort).errors.query("problem == @P_LINK_OUTSIDE")["fix"].iloc[0]
    assert f"images/P0000003/{first.name} resolves outside cohort/" in fix


def test_manifest_paths_cannot_climb_out(layout: tuple[Path, Path]) -> None:
    cohort, _ = layout
    (cohort / "images.csv").write_text("patient_id,path\nP0000004,../../elsewhere/secret.png\n")
    assert _links(cohort) == ["images.csv"]


def test_links_inside_the_folder_are_fine(layout: tuple[Path, Path]) -> None:
    cohort, elsewhere = layout
    store = cohort / "scans-store"
    store.mkdir()
    shutil.copy(elsewhere / "secret.png", store / "p4.png")
    (cohort / "images" / "P0000004.png").symlink_to(store / "p4.png")
    assert _links(cohort) == []
    assert validate_cohort(cohort).ok


def test_cli_import_exits_2_naming_the_link(
    layout: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fusion.cli import main

    cohort, elsewhere = layout
    (cohort / "images" / "P0000004.png").symlink_to(elsewhere / "secret.png")
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    caplog.set_level(logging.INFO)
    report = tmp_path / "problems.csv"
    assert main(["import", str(cohort), "--report", str(report)]) == 2
    assert P_LINK_OUTSIDE.split(" (")[0] in caplog.text  # the problem, never the file (an id)
    assert "P0000004" not in caplog.text
    problems = pd.read_csv(report)
    row = problems.loc[problems["problem"] == P_LINK_OUTSIDE].iloc[0]
    assert row["file"] == "images/P0000004.png"
