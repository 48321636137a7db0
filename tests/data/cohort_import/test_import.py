"""Cohort import: validation table, scan formats, transactional idempotent writes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import select

from data.cohort_import import import_cohort, load_schema, validate_cohort
from data.cohort_import.problems import (
    P_CATEGORY,
    P_DUPLICATE_ID,
    P_IDENTIFIER,
    P_IMAGE_NO_PATIENT,
    P_MISSING_COLUMN,
    P_MISSING_FILE,
    P_MISSING_ID,
    P_MISSING_VALUE,
    P_NO_OUTCOME,
    P_NOT_A_NUMBER,
    P_NOT_AN_INTEGER,
    P_NOT_IN_PATIENTS,
    P_OUT_OF_RANGE,
    P_PATIENT_NO_IMAGE,
    P_TWO_IMAGES,
    P_UNIT,
    P_UNKNOWN_COLUMN,
    PROBLEM_COLUMNS,
)
from data.errors import CohortError, CohortValidationError, ScanReadError
from data.scan_spec import ScanSpec
from data.store import CohortStore, make_engine
from data.store.schema import Base
from data.synthetic.example_cohort import write_dicom, write_example_cohort, write_nifti
from models.scans import read_scan

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "data" / "examples" / "cohort"
N_EXAMPLE = 160
N_WITH_SCAN = 158
# The editable copies are smaller (same writer, fewer patients) to keep the suite fast.
N_SMALL = 14
N_SMALL_SCANS = 12

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def example_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("example") / "cohort"
    write_example_cohort(folder, n_patients=N_SMALL)
    return folder


@pytest.fixture
def cohort(example_master: Path, tmp_path: Path) -> Path:
    """A private, editable copy of the example cohort."""
    folder = tmp_path / "cohort"
    shutil.copytree(example_master, folder)
    return folder


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture(scope="module")
def loaded_template(example_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store file (and its artifacts) holding the small cohort, imported once."""
    folder = tmp_path_factory.mktemp("loaded")
    store = CohortStore(make_engine(f"sqlite:///{folder / 'store.db'}"))
    store.create_schema()
    run_import(example_master, store, folder / "artifacts")
    store.engine.dispose()  # checkpoints the WAL into store.db
    return folder


@pytest.fixture
def loaded(loaded_template: Path, tmp_path: Path) -> Iterator[tuple[CohortStore, Path]]:
    """A private copy of the loaded store and its artifacts directory."""
    folder = tmp_path / "loaded"
    shutil.copytree(loaded_template, folder)
    store = CohortStore(make_engine(f"sqlite:///{folder / 'store.db'}"))
    yield store, folder / "artifacts"
    store.engine.dispose()


def run_import(folder: Path, store: CohortStore, artifacts: Path, **kwargs: object):
    return import_cohort(folder, store, artifacts_dir=artifacts, reader=read_scan, **kwargs)


def snapshot(store: CohortStore) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: equal snapshots mean an unchanged store."""
    out = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = [tuple(map(repr, row)) for row in conn.execute(select(table))]
            out[table.name] = sorted(rows)
    return out


def edit_csv(folder: Path, name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = folder / name
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


def set_cell(name: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Edit one cell; ``row`` is the spreadsheet row (header = 1)."""

    def apply(folder: Path) -> None:
        def change(frame: pd.DataFrame) -> pd.DataFrame:
            frame.loc[row - 2, column] = value
            return frame

        edit_csv(folder, name, change)

    return apply


def add_column(name: str, column: str, value: str) -> Callable[[Path], None]:
    return lambda folder: edit_csv(folder, name, lambda f: f.assign(**{column: value}))


def drop_column(name: str, column: str) -> Callable[[Path], None]:
    return lambda folder: edit_csv(folder, name, lambda f: f.drop(columns=column))


def write_bytes(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / rel).write_bytes(data)


def save_npy(rel: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda folder: np.save(folder / rel, array, allow_pickle=False)


def constant_nifti(folder: Path) -> None:
    (folder / "images" / "P0000001.nii.gz").unlink()
    write_nifti(folder / "images" / "P0000001.nii.gz", np.full((8, 8, 4), 40.0), (1, 1, 1))


def duplicate_image(folder: Path) -> None:
    shutil.copy(folder / "images" / "P0000004.png", folder / "images" / "P0000004.npy")


def remove_outcomes(folder: Path) -> None:
    (folder / "outcomes.csv").unlink()


# (case, mutation, file, row, column, problem)
BAD_INPUTS = [
    (
        "missing id",
        set_cell("patients.csv", 5, "patient_id", ""),
        "patients.csv",
        5,
        "patient_id",
        P_MISSING_ID,
    ),
    (
        "duplicate id",
        set_cell("patients.csv", 6, "patient_id", "p0000004"),
        "patients.csv",
        6,
        "patient_id",
        P_DUPLICATE_ID,
    ),
    (
        "id only in outcomes",
        set_cell("outcomes.csv", 3, "patient_id", "ZZ1"),
        "outcomes.csv",
        3,
        "patient_id",
        P_NOT_IN_PATIENTS,
    ),
    (
        "patient without outcome",
        set_cell("outcomes.csv", 3, "patient_id", "ZZ1"),
        "patients.csv",
        3,
        "patient_id",
        P_NO_OUTCOME,
    ),
    (
        "genomics id unknown",
        set_cell("genomics.csv", 9, "patient_id", "ZZ2"),
        "genomics.csv",
        9,
        "patient_id",
        P_NOT_IN_PATIENTS,
    ),
    (
        "wrong type",
        set_cell("patients.csv", 4, "bmi", "twenty"),
        "patients.csv",
        4,
        "bmi",
        P_NOT_A_NUMBER,
    ),
    (
        "fraction in a count",
        set_cell("patients.csv", 4, "prior_events", "1.5"),
        "patients.csv",
        4,
        "prior_events",
        P_NOT_AN_INTEGER,
    ),
    (
        "out of range",
        set_cell("patients.csv", 7, "systolic_bp", "400"),
        "patients.csv",
        7,
        "systolic_bp",
        P_OUT_OF_RANGE,
    ),
    (
        "unit 1000x",
        set_cell("patients.csv", 8, "hemoglobin", "13950"),
        "patients.csv",
        8,
        "hemoglobin",
        P_UNIT,
    ),
    (
        "unit 1/1000",
        set_cell("patients.csv", 8, "age", "0.061"),
        "patients.csv",
        8,
        "age",
        P_UNIT,
    ),
    (
        "genotype 3",
        set_cell("genomics.csv", 10, "snp_004", "3"),
        "genomics.csv",
        10,
        "snp_004",
        P_OUT_OF_RANGE,
    ),
    (
        "required value",
        set_cell("outcomes.csv", 11, "label", ""),
        "outcomes.csv",
        11,
        "label",
        P_MISSING_VALUE,
    ),
    (
        "missing column",
        drop_column("patients.csv", "age"),
        "patients.csv",
        None,
        "age",
        P_MISSING_COLUMN,
    ),
    ("missing file", remove_outcomes, "outcomes.csv", None, "", P_MISSING_FILE),
    (
        "unknown sex",
        set_cell("patients.csv", 12, "sex", "X"),
        "patients.csv",
        12,
        "sex",
        P_CATEGORY,
    ),
    (
        "unknown category",
        set_cell("patients.csv", 12, "smoking", "sometimes"),
        "patients.csv",
        12,
        "smoking",
        P_CATEGORY,
    ),
    (
        "unknown column",
        add_column("patients.csv", "shoe_size", "42"),
        "patients.csv",
        None,
        "shoe_size",
        P_UNKNOWN_COLUMN,
    ),
    (
        "name column",
        add_column("patients.csv", "full_name", "Jane Doe"),
        "patients.csv",
        None,
        "full_name",
        P_IDENTIFIER,
    ),
    (
        "email column",
        add_column("outcomes.csv", "email", "a@b.org"),
        "outcomes.csv",
        None,
        "email",
        P_IDENTIFIER,
    ),
    (
        "exact dob",
        add_column("patients.csv", "date_of_birth", "1960-01-02"),
        "patients.csv",
        None,
        "date_of_birth",
        P_IDENTIFIER,
    ),
    (
        "mrn",
        add_column("genomics.csv", "MRN", "123"),
        "genomics.csv",
        None,
        "MRN",
        P_IDENTIFIER,
    ),
    (
        "corrupt png",
        write_bytes("images/P0000004.png", b"\x89PNG\r\n\x1a\nbroken"),
        "images/P0000004.png",
        None,
        "",
        "the file cannot be read",
    ),
    (
        "4D array",
        save_npy("images/P0000006.npy", np.ones((2, 3, 4, 5), np.float32)),
        "images/P0000006.npy",
        None,
        "",
        "wrong dimensionality",
    ),
    ("empty volume", constant_nifti, "images/P0000001.nii.gz", None, "", "empty volume"),
    ("two images", duplicate_image, "images/P0000004.npy", None, "", P_TWO_IMAGES),
]


# ------------------------------------------------------------------------------- example
def test_shipped_example_is_what_the_writer_writes(tmp_path: Path) -> None:
    write_example_cohort(tmp_path / "cohort")
    shipped = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path / "cohort") for p in (tmp_path / "cohort").rglob("*"))
    fresh = [p for p in fresh if (tmp_path / "cohort" / p).is_file()]
    assert shipped == fresh
    for rel in shipped:
        assert (SHIPPED / rel).read_bytes() == (tmp_path / "cohort" / rel).read_bytes(), rel
    assert sum((SHIPPED / rel).stat().st_size for rel in shipped) < 1_000_000


def test_shipped_example_imports_and_reimport_changes_nothing(
    memory_store: CohortStore, artifacts: Path
) -> None:
    result = run_import(SHIPPED, memory_store, artifacts)
    assert result.counts is not None
    assert (result.counts.added, result.counts.updated) == (N_EXAMPLE, 0)
    assert set(result.report.problems["severity"]) == {"warning"}
    assert set(result.report.problems["problem"]) == {P_PATIENT_NO_IMAGE}
    assert memory_store.count_patients() == N_EXAMPLE
    images = memory_store.image_index()
    assert len(images) == N_WITH_SCAN
    scan = np.load(artifacts / images["path"].iloc[0], allow_pickle=False)
    assert scan.shape == (64, 64)
    assert scan.dtype == np.float32
    assert scan.min() >= 0.0
    assert scan.max() <= 1.0
    frame = memory_store.load_patient_frame()
    assert frame["smoking"].dropna().isin([0.0, 1.0, 2.0]).all()  # categories stored as codes
    assert set(frame["split"]) == {"train", "val", "test"}
    before = snapshot(memory_store)

    again = run_import(SHIPPED, memory_store, artifacts)
    assert again.counts is not None
    assert (again.counts.added, again.counts.updated, again.counts.unchanged) == (0, 0, N_EXAMPLE)
    assert snapshot(memory_store) == before


def test_parquet_tables_import_like_csv(cohort: Path, tmp_path: Path) -> None:
    as_csv = tmp_path / "csv"
    shutil.copytree(cohort, as_csv)
    for name in ("patients", "genomics", "outcomes"):
        frame = pd.read_csv(cohort / f"{name}.csv")
        frame.to_parquet(cohort / f"{name}.parquet")
        (cohort / f"{name}.csv").unlink()
    csv_store, parquet_store = (CohortStore(make_engine("sqlite://")) for _ in range(2))
    for store in (csv_store, parquet_store):
        store.create_schema()
    run_import(as_csv, csv_store, tmp_path / "a")
    run_import(cohort, parquet_store, tmp_path / "b")
    pd.testing.assert_frame_equal(
        csv_store.load_patient_frame(), parquet_store.load_patient_frame()
    )


# ------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("case", "mutate", "file", "row", "column", "problem"),
    BAD_INPUTS,
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_named_and_leaves_the_store_unchanged(
    cohort: Path,
    loaded: tuple[CohortStore, Path],
    case: str,
    mutate: Callable[[Path], None],
    file: str,
    row: int | None,
    column: str,
    problem: str,
) -> None:
    store, artifacts = loaded
    before = snapshot(store)
    assert before["patients"]
    files_before = sorted(artifacts.rglob("*"))
    mutate(cohort)
    with pytest.raises(CohortValidationError, match="not imported") as caught:
        run_import(cohort, store, artifacts)
    problems = caught.value.report.errors
    hit = problems[
        (problems["file"] == file)
        & (problems["column"] == column)
        & problems["problem"].str.startswith(problem)
    ]
    if row is None:
        assert len(hit) >= 1, problems.to_string()
    else:
        assert row in hit["row"].tolist(), problems.to_string()
    assert hit["fix"].str.len().min() > 10  # every problem says how to fix it
    assert snapshot(store) == before
    assert sorted(artifacts.rglob("*")) == files_before


def test_every_problem_is_reported_in_one_pass(cohort: Path, memory_store: CohortStore) -> None:
    for _, mutate, *_ in [BAD_INPUTS[0], BAD_INPUTS[5], BAD_INPUTS[8], BAD_INPUTS[17]]:
        mutate(cohort)
    write_bytes("images/P0000005.png", b"not a png")(cohort)
    report = validate_cohort(cohort, reader=read_scan)
    found = set(report.errors["problem"].str.slice(0, 20))
    expected = {
        P_MISSING_ID,
        P_NOT_A_NUMBER,
        P_UNIT,
        P_IDENTIFIER,
        "the file cannot be read",
    }
    assert {text[:20] for text in expected} <= found
    assert memory_store.count_patients() == 0


def test_unit_error_message_names_the_converted_value(cohort: Path) -> None:
    set_cell("patients.csv", 8, "hemoglobin", "13950")(cohort)
    report = validate_cohort(cohort)
    row = report.errors[report.errors["column"] == "hemoglobin"].iloc[0]
    assert (row["file"], row["row"], row["value"]) == ("patients.csv", 8, "13950")
    assert "13.95 g/dL" in row["fix"]


def test_unknown_category_suggests_the_close_one(cohort: Path) -> None:
    set_cell("patients.csv", 12, "smoking", "formr")(cohort)
    report = validate_cohort(cohort)
    assert "did you mean 'former'" in report.errors.iloc[0]["fix"]


def test_identifier_mapped_as_drop_is_accepted_and_not_stored(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    add_column("patients.csv", "full_name", "Jane Doe")(cohort)
    with (cohort / "schema.toml").open("a") as handle:
        handle.write('\n[columns.full_name]\nrole = "drop"\n')
    run_import(cohort, memory_store, artifacts)
    assert "Jane Doe" not in repr(snapshot(memory_store))


def test_images_and_patients_without_each_other_are_flagged_not_refused(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    shutil.copy(cohort / "images" / "P0000004.png", cohort / "images" / "Q0000999.png")
    result = run_import(cohort, memory_store, artifacts)
    warnings = result.report.problems
    assert set(warnings["severity"]) == {"warning"}
    orphan = warnings[warnings["problem"] == P_IMAGE_NO_PATIENT]
    assert orphan["file"].tolist() == ["images/Q0000999.png"]
    assert memory_store.get_patient(f"P{N_SMALL:07d}").image is None
    assert "Q0000999" not in memory_store.image_index()["patient_id"].tolist()


def test_invalid_schema_entries_are_all_listed(cohort: Path) -> None:
    text = (cohort / "schema.toml").read_text()
    text = text.replace('[columns.bmi]\nrole = "numeric"', '[columns.bmi]\nrole = "numerc"')
    text = text.replace('slice = "max_foreground"', 'slice = "best"')
    (cohort / "schema.toml").write_text(text)
    with pytest.raises(CohortValidationError) as caught:
        load_schema(cohort / "schema.toml")
    columns = set(caught.value.report.errors["column"])
    assert {"columns.bmi.role", "images.slice"} <= columns


def test_store_with_another_cohort_is_refused(
    memory_store: CohortStore, artifacts: Path, cohort: Path
) -> None:
    run_import(cohort, memory_store, artifacts)
    before = snapshot(memory_store)
    text = (cohort / "schema.toml").read_text().replace('name = "example"', 'name = "other"')
    (cohort / "schema.toml").write_text(text)
    with pytest.raises(CohortError, match="holds one cohort"):
        run_import(cohort, memory_store, artifacts)
    assert snapshot(memory_store) == before


# ------------------------------------------------------------------------------- writes
def test_updated_file_updates_only_what_changed(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    run_import(cohort, memory_store, artifacts)
    before = snapshot(memory_store)
    set_cell("patients.csv", 5, "bmi", "31.5")(cohort)  # patient P0000004
    image = np.load(cohort / "images" / "P0000006.npy")
    np.save(cohort / "images" / "P0000006.npy", image[::-1].copy(), allow_pickle=False)
    result = run_import(cohort, memory_store, artifacts)
    assert result.counts is not None
    assert (result.counts.added, result.counts.updated, result.counts.unchanged) == (
        0,
        2,
        N_SMALL - 2,
    )
    assert dict(result.counts.parts) == {"patient": 1, "outcome": 0, "genomics": 0, "image": 1}
    assert memory_store.get_patient("P0000004").ehr["bmi"] == 31.5
    after = snapshot(memory_store)
    for table in ("outcomes", "genomic_values", "patients", "features"):
        assert after[table] == before[table], table
    changed_ehr = set(after["ehr_values"]) ^ set(before["ehr_values"])
    assert {row[0] for row in changed_ehr} == {"'P0000004'"}


def test_changed_scan_drops_its_stale_embeddings(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    from datetime import UTC, datetime

    from data.store import ModelRecord

    run_import(cohort, memory_store, artifacts)
    images = memory_store.image_index()
    memory_store.register_model(
        ModelRecord("imaging-x", "imaging", datetime.now(UTC), "m", "0" * 64, {}, {})
    )
    memory_store.write_embeddings(
        "imaging-x",
        images["image_id"].to_numpy(),
        np.zeros(len(images)),
        np.zeros(len(images), bool),
        np.zeros(len(images)),
        np.zeros((len(images), 4), np.float32),
    )
    image = np.load(cohort / "images" / "P0000006.npy")
    np.save(cohort / "images" / "P0000006.npy", image.T.copy(), allow_pickle=False)
    run_import(cohort, memory_store, artifacts)
    embedded = set(memory_store.load_embeddings("imaging-x")["patient_id"])
    assert "P0000006" not in embedded
    assert len(embedded) == N_SMALL_SCANS - 1


def test_failure_midway_leaves_the_store_unchanged(
    cohort: Path, memory_store: CohortStore, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_import(cohort, memory_store, artifacts)
    before = snapshot(memory_store)
    original = CohortStore._rewrite_part

    def fail_on_genomics(conn, part, pids, tables):  # type: ignore[no-untyped-def]
        if part == "genomics":
            raise RuntimeError("injected failure")
        original(conn, part, pids, tables)

    monkeypatch.setattr(CohortStore, "_rewrite_part", staticmethod(fail_on_genomics))
    edit_csv(cohort, "patients.csv", lambda f: f.assign(bmi="30.0"))
    edit_csv(cohort, "genomics.csv", lambda f: f.assign(snp_001="2"))
    with pytest.raises(RuntimeError, match="injected"):
        run_import(cohort, memory_store, artifacts)
    assert snapshot(memory_store) == before


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from data.store import cohort_writes
    from data.cohort_import import import_cohort
    from data.store import CohortStore, make_engine
    from models.scans import read_scan

    calls = {"n": 0}
    original = cohort_writes.insert_chunks

    def insert_then_die(conn, table, rows):
        original(conn, table, rows)
        calls["n"] += 1
        if calls["n"] == 3:  # rows of this import are in the open transaction: die now
            os.kill(os.getpid(), signal.SIGKILL)

    cohort_writes.insert_chunks = insert_then_die
    store = CohortStore(make_engine(sys.argv[1]))
    import_cohort(Path(sys.argv[2]), store, artifacts_dir=Path(sys.argv[3]), reader=read_scan)
    """
)


def test_killed_import_leaves_the_store_unchanged(
    cohort: Path, artifacts: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = CohortStore(make_engine(url))
    store.create_schema()
    run_import(cohort, store, artifacts)
    before = snapshot(store)
    edit_csv(cohort, "patients.csv", lambda f: f.assign(bmi="30.0"))
    edit_csv(cohort, "outcomes.csv", lambda f: f.assign(treatment="standard"))
    store.engine.dispose()
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), url, str(cohort), str(artifacts)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    store = CohortStore(make_engine(url))
    assert snapshot(store) == before
    result = run_import(cohort, store, artifacts)  # the next import completes the change
    assert result.counts is not None
    assert result.counts.updated == N_SMALL
    store.engine.dispose()


def test_salted_ids_replace_the_originals(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    text = (cohort / "schema.toml").read_text().replace("hash_ids = false", "hash_ids = true")
    (cohort / "schema.toml").write_text(text)
    with pytest.raises(CohortValidationError, match="salt"):
        run_import(cohort, memory_store, artifacts)
    run_import(cohort, memory_store, artifacts, id_salt="s3cret")
    stored = snapshot(memory_store)
    assert "P0000001" not in repr(stored)
    ids = memory_store.search_patients("H", limit=100)["patient_id"]
    assert len(ids) == N_SMALL
    assert ids.str.fullmatch(r"H[0-9A-F]{20}").all()
    other = CohortStore(make_engine("sqlite://"))
    other.create_schema()
    run_import(cohort, other, artifacts, id_salt="another")
    assert set(other.search_patients("H", limit=100)["patient_id"]).isdisjoint(ids)


def test_dry_run_writes_nothing(cohort: Path, memory_store: CohortStore, artifacts: Path) -> None:
    result = run_import(cohort, memory_store, artifacts, dry_run=True)
    assert result.counts is None
    assert result.report.n_images == N_SMALL_SCANS
    assert memory_store.count_patients() == 0
    assert not artifacts.exists()


# ------------------------------------------------------------------------------- scans
def _picture(rows: int = 40, cols: int = 60) -> np.ndarray:
    """A grey picture with a bright block near the top-left corner."""
    picture = np.full((rows, cols), 60, np.uint8)
    picture[2:12, 3:18] = 250
    picture[25:35, 35:55] = 140
    return picture


def _top_left_is_brightest(out: np.ndarray) -> bool:
    half = out.shape[0] // 2
    return bool(out[:half, :half].mean() > out[:half, half:].mean() + 0.1) and bool(
        out[:half, :half].mean() > out[half:, :half].mean()
    )


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".npy", ".nii", ".nii.gz", ".dcm"])
def test_2d_scans_keep_their_orientation(tmp_path: Path, suffix: str) -> None:
    picture = _picture()
    path = tmp_path / f"scan{suffix}"
    if suffix in (".png", ".jpg"):
        Image.fromarray(picture).save(path)
    elif suffix == ".npy":
        np.save(path, picture.astype(np.float32))
    elif suffix.startswith(".nii"):
        nib.save(nib.Nifti1Image(picture.T.astype(np.int16), np.eye(4)), str(path))
    else:
        write_dicom(path, picture.astype(np.int16))
    out = read_scan(path, ScanSpec(size=32))
    assert out.shape == (32, 32)
    assert out.dtype == np.float32
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    assert _top_left_is_brightest(out)


def _volume() -> np.ndarray:
    """(X, Y, Z) CT volume in RAS: air, a body on slices 2-7, a big organ on slice 6 only."""
    volume = np.full((24, 24, 10), -1000, np.int16)
    volume[4:20, 4:20, 2:8] = 40
    volume[2:22, 2:22, 6] = 200
    volume[2:8, 16:22, 2:8] = 240  # anterior (high y), patient left (low x)
    return volume


@pytest.mark.parametrize("form", ["nii", "nii.gz", "npy", "dicom"])
def test_3d_volumes_pick_the_largest_slice_in_canonical_orientation(
    tmp_path: Path, form: str
) -> None:
    volume = _volume()
    if form.startswith("nii"):
        path = tmp_path / f"vol.{form}"
        write_nifti(path, volume, (1.0, 1.0, 1.0))
    elif form == "npy":
        path = tmp_path / "vol.npy"
        # NumPy stacks are (Z, H, W) pictures: rows anterior first, columns patient left first.
        np.save(path, volume.transpose(2, 1, 0)[:, ::-1, :].astype(np.float32))
    else:
        path = tmp_path / "series"
        path.mkdir()
        for z in range(volume.shape[2]):
            write_dicom(path / f"s{z}.dcm", volume[::-1, ::-1, z].T, slice_index=z)
    spec = ScanSpec(modality="CT", size=24, spacing=(1.0, 1.0, 1.0))
    best = read_scan(path, spec)
    middle = read_scan(path, replace(spec, slice_strategy="middle"))
    assert best.shape == (24, 24)
    assert best.mean() > middle.mean() + 0.05  # slice 6 (large bright organ) beats slice 5
    # Rows run anterior to posterior, columns patient left to right: the brightest block
    # (anterior, patient left) sits at the top-left, the organ elsewhere is dimmer.
    assert best[2:8, 2:8].mean() > best[16:22, 16:22].mean() + 0.05


def test_orientation_is_canonical_whatever_the_affine(tmp_path: Path) -> None:
    volume = _volume()
    write_nifti(tmp_path / "ras.nii", volume, (1.0, 1.0, 1.0))
    flipped = nib.Nifti1Image(volume[::-1, ::-1].copy(), np.diag([-1.0, -1.0, 1.0, 1.0]))
    nib.save(flipped, str(tmp_path / "lps.nii"))
    spec = ScanSpec(modality="CT", size=24)
    np.testing.assert_allclose(
        read_scan(tmp_path / "ras.nii", spec), read_scan(tmp_path / "lps.nii", spec), atol=1e-5
    )


def test_resampling_uses_the_voxel_spacing(tmp_path: Path) -> None:
    volume = np.full((20, 10, 6), -1000, np.int16)
    volume[:, :, 3] = 100  # a 20 x 20 mm slab at 2 mm spacing along y
    write_nifti(tmp_path / "aniso.nii", volume, (1.0, 2.0, 1.0))
    out = read_scan(
        tmp_path / "aniso.nii", ScanSpec(modality="CT", size=20, slice_strategy="middle")
    )
    assert out.shape == (20, 20)
    # 20 x 20 mm after resampling: at most a border row of padding, not half the picture.
    assert (out > 0.5).mean() > 0.85


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"garbage"), "cannot be read"),
        (lambda p: np.save(p, np.zeros((5, 5), np.float32)), "empty volume"),
        (lambda p: np.save(p, np.ones((2, 2, 2, 2), np.float32)), "wrong dimensionality"),
        (lambda p: np.save(p, np.array([1.0, np.nan, 2.0, 3.0]).reshape(2, 2)), "NaN"),
    ],
)
def test_bad_scans_raise_scan_read_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(ScanReadError, match=message):
        read_scan(path, ScanSpec(size=16))


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ScanReadError):
        read_scan(path, ScanSpec(size=16))


def test_dicom_personal_fields_are_never_stored(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    series = cohort / "images" / "P0000003"
    for path in sorted(series.iterdir()):
        path.unlink()
    for z in range(4):
        write_dicom(
            series / f"s{z}.dcm",
            np.full((16, 16), 40 + 50 * z, np.int16),
            slice_index=z,
            patient_name="DOE^JANE",
        )
    run_import(cohort, memory_store, artifacts)
    assert "DOE" not in repr(snapshot(memory_store))
    for path in artifacts.rglob("*.npy"):
        assert b"DOE" not in path.read_bytes()


# ------------------------------------------------------------------------------- CLI
def test_cli_import_reports_problems_and_exit_codes(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fusion.cli import main

    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    assert main(["import", str(cohort), "--dry-run"]) == 0
    assert not (tmp_path / "home" / "riskfusion.db").exists()
    set_cell("patients.csv", 7, "systolic_bp", "400")(cohort)
    report = tmp_path / "problems.csv"
    assert main(["import", str(cohort), "--report", str(report)]) == 2
    table = pd.read_csv(report)
    assert list(table.columns) == list(PROBLEM_COLUMNS)
    assert ((table["row"] == 7) & (table["column"] == "systolic_bp")).any()
    set_cell("patients.csv", 7, "systolic_bp", "120")(cohort)
    assert main(["import", str(cohort)]) == 0
    store = CohortStore(make_engine(f"sqlite:///{tmp_path / 'home' / 'riskfusion.db'}"))
    assert store.count_patients() == N_SMALL
    store.engine.dispose()


@pytest.mark.postgres
def test_import_round_trip_on_postgres(
    cohort: Path, artifacts: Path, postgres_database: Callable[[], str]
) -> None:
    store = CohortStore(make_engine(postgres_database()))
    first = run_import(cohort, store, artifacts)
    assert first.counts is not None
    assert first.counts.added == N_SMALL
    before = snapshot(store)
    again = run_import(cohort, store, artifacts)
    assert again.counts is not None
    assert again.counts.unchanged == N_SMALL
    assert snapshot(store) == before
    set_cell("patients.csv", 5, "bmi", "31.5")(cohort)
    third = run_import(cohort, store, artifacts)
    assert third.counts is not None
    assert dict(third.counts.parts)["patient"] == 1
    assert store.get_patient("P0000004").ehr["bmi"] == 31.5
    store.engine.dispose()


def test_reimport_reads_only_changed_scans(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    run_import(cohort, memory_store, artifacts)
    image = np.load(cohort / "images" / "P0000006.npy")
    np.save(cohort / "images" / "P0000006.npy", image.T.copy(), allow_pickle=False)
    calls: list[str] = []

    def counting_reader(path: Path, spec: ScanSpec) -> np.ndarray:
        calls.append(path.name)
        return read_scan(path, spec)

    import_cohort(cohort, memory_store, artifacts_dir=artifacts, reader=counting_reader)
    assert calls == ["P0000006.npy"]
    before = snapshot(memory_store)
    for path in (artifacts / "scans" / "imported").iterdir():
        path.unlink()  # a lost scan file is read again, and the store stays the same
    import_cohort(cohort, memory_store, artifacts_dir=artifacts, reader=counting_reader)
    assert len(calls) == 1 + N_SMALL_SCANS
    assert snapshot(memory_store) == before


def test_file_level_problem_reads_well(
    cohort: Path, memory_store: CohortStore, artifacts: Path
) -> None:
    remove_outcomes(cohort)
    with pytest.raises(
        CohortValidationError, match=r"first: outcomes\.csv: required file"
    ) as caught:
        run_import(cohort, memory_store, artifacts)
    text = caught.value.report.to_text()
    assert "outcomes.csv" in text
    assert "<NA>" not in text
