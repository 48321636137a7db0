"""Round trips, rollback and registry semantics of :class:`data.store.CohortStore`.

The round-trip and rollback tests run on in-memory SQLite and on the local PostgreSQL server
(``-m postgres``); without a reachable server the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError

from data.errors import CohortError, PatientNotFoundError, StoreNotBuiltError
from data.store import AuditEntry, CohortStore, CohortTables, ModelRecord, make_engine
from data.store.schema import Base

N_PATIENTS = 12
# Catalogue order on purpose differs from alphabetical order and from the wide frames' order.
FEATURES = [
    ("sbp", "ehr", "Systolic BP", "mmHg", "continuous", 80.0, 220.0),
    ("age", "demographics", "Age", "years", "continuous", 18.0, 100.0),
    ("ldl", "ehr", "LDL", "mmol/L", "continuous", None, None),
    ("snp_b", "genomics", "SNP B", "", "genotype", 0.0, 2.0),
    ("snp_a", "genomics", "SNP A", "", "genotype", 0.0, 2.0),
]
BASE_COLUMNS = [
    "patient_id",
    "split",
    "age",
    "sex",
    "ethnicity",
    "site",
    "treatment",
    "label",
    "event_time",
    "event",
]


def make_tables(prefix: str = "P", n: int = N_PATIENTS, *, seed: int = 0) -> CohortTables:
    """A tiny hand-built cohort: ids ``{prefix}0000001``.., 6 train / 3 val / rest test."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i:07d}" for i in range(1, n + 1)]
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * (n - 9)
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "split": splits,
            "age": np.round(rng.uniform(30, 80, n), 3),
            "sex": ["M", "F"] * (n // 2),
            "ethnicity": ["A", "B", "C"] * (n // 3),
            "site": ["north", "south"] * (n // 2),
        }
    )
    outcomes = pd.DataFrame(
        {
            "patient_id": ids,
            "treatment": ["standard", "statin"] * (n // 2),
            "label": [0, 1, 1, 0] * (n // 4),
            "event_time": np.round(rng.uniform(0.1, 5.0, n), 4),
            "event": [0, 1, 1, 0] * (n // 4),
        }
    )
    sbp = rng.normal(130, 15, n)
    ldl = rng.normal(3.0, 0.8, n)
    sbp[[1, 4]] = np.nan
    ldl[[4, 7, 10]] = np.nan
    ehr = pd.DataFrame({"patient_id": ids, "ldl": ldl, "sbp": sbp})  # not catalogue order
    genomics = pd.DataFrame(
        {
            "patient_id": ids,
            "snp_a": rng.integers(0, 3, n).astype(np.int8),
            "snp_b": rng.integers(0, 2, n).astype(np.int8),
        }
    )
    features = pd.DataFrame(
        FEATURES, columns=["name", "modality", "label", "unit", "kind", "low", "high"]
    ).assign(description=lambda df: "About " + df["label"])
    images = pd.DataFrame(
        {
            "patient_id": ids,
            "path": [f"images/{pid}.png" for pid in ids],
            "sha256": [f"{i:064x}" for i in range(n)],
            "height": 32,
            "width": 32,
            "site": patients["site"],
            "mask_path": [f"masks/{pid}.png" if i % 2 else None for i, pid in enumerate(ids)],
        }
    )
    truth = pd.DataFrame(
        {
            "patient_id": ids,
            "true_risk": rng.uniform(0.01, 0.99, n),
            "lesion_count": rng.integers(0, 4, n),
            "lesion_area": rng.uniform(0, 50, n),
            "logit_demographics": rng.normal(size=n),
            "logit_ehr": rng.normal(size=n),
            "logit_genomics": rng.normal(size=n),
            "logit_imaging": rng.normal(size=n),
        }
    )
    counterfactuals = pd.DataFrame(
        {
            "patient_id": [pid for pid in ids for _ in range(2)],
            "treatment": ["standard", "statin"] * n,
            "risk": rng.uniform(0.01, 0.99, 2 * n),
        }
    )
    return CohortTables(
        patients=patients,
        outcomes=outcomes,
        ehr=ehr,
        genomics=genomics,
        features=features,
        images=images,
        truth=truth,
        counterfactuals=counterfactuals,
    )


def expected_frame(tables: CohortTables) -> pd.DataFrame:
    """What ``load_patient_frame`` must return for ``tables``, in patient-id order."""
    assert tables.truth is not None
    frame = (
        tables.patients.merge(tables.outcomes, on="patient_id")
        .merge(tables.truth[["patient_id", "true_risk"]], on="patient_id")
        .merge(tables.ehr, on="patient_id")
        .merge(tables.genomics, on="patient_id")
    )
    order = [*BASE_COLUMNS, "true_risk", "sbp", "ldl", "snp_b", "snp_a"]
    return frame.loc[:, order].sort_values("patient_id", ignore_index=True)


def table_counts(store: CohortStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def model_record(version: str, kind: str = "fusion", *, day: int = 1) -> ModelRecord:
    return ModelRecord(
        version=version,
        kind=kind,
        created_at=datetime(2025, 1, day, 12, 0, tzinfo=UTC),
        artifact_path=f"models/{version}.txt",
        sha256="0" * 64,
        metrics={"auroc": 0.8 + day / 100},
        params={"n_estimators": 10 * day},
    )


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def postgres_scratch_url(postgres_database: Callable[[], str]) -> str:
    return postgres_database()


@pytest.fixture
def postgres_store(postgres_scratch_url: str) -> Iterator[CohortStore]:
    """An empty store on the scratch database (every row deleted; cheaper than TRUNCATE)."""
    store = CohortStore(make_engine(postgres_scratch_url))
    with store.engine.begin() as conn:
        # The audit trail refuses DELETE by trigger; only the table owner can lift that.
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    yield store
    store.engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> CohortStore:
    """An empty store on each backend."""
    fixture = "memory_store" if request.param == "sqlite" else "postgres_store"
    result: CohortStore = request.getfixturevalue(fixture)
    return result


@pytest.fixture(scope="module")
def tables() -> CohortTables:
    """The tiny cohort (read-only: tests derive changed copies with ``replace``)."""
    return make_tables()


@pytest.fixture(scope="module", params=BACKENDS)
def cohort(request: pytest.FixtureRequest, tables: CohortTables) -> Iterator[CohortStore]:
    """A store holding the tiny cohort, shared by the read-only tests of this module."""
    if request.param == "sqlite":
        url = "sqlite://"
    else:
        url = request.getfixturevalue("postgres_database")()
    store = CohortStore(make_engine(url))
    store.create_schema()
    store.write_cohort(tables)
    yield store
    store.engine.dispose()


@pytest.fixture
def filled(store: CohortStore, tables: CohortTables) -> CohortStore:
    """``store`` holding the tiny cohort (for tests that write)."""
    assert store.write_cohort(tables) == N_PATIENTS
    return store


@pytest.fixture
def sqlite_filled(memory_store: CohortStore, tables: CohortTables) -> CohortStore:
    """In-memory SQLite store holding the tiny cohort (backend-neutral behaviour)."""
    memory_store.write_cohort(tables)
    return memory_store


# ---------------------------------------------------------------------- cohort round trip
def test_empty_store_counts_zero_and_refuses_to_load(store: CohortStore) -> None:
    assert store.count_patients() == 0
    assert not store.has_ground_truth()
    with pytest.raises(StoreNotBuiltError, match="no patients"):
        store.load_patient_frame()


def test_count_patients_per_split(cohort: CohortStore) -> None:
    counts = {split: cohort.count_patients(split) for split in (None, "train", "val", "test")}
    assert counts == {None: 12, "train": 6, "val": 3, "test": 3}


def test_unknown_split_is_rejected(cohort: CohortStore) -> None:
    with pytest.raises(ValueError, match=r"Unknown split 'dev'.*'train', 'val', 'test'"):
        cohort.count_patients("dev")


def test_load_patient_frame_equals_input(cohort: CohortStore, tables: CohortTables) -> None:
    loaded = cohort.load_patient_frame()
    expected = expected_frame(tables)

    assert list(loaded.columns) == list(expected.columns)
    assert cohort.has_ground_truth()
    # NaN stays NaN (missing EHR values are stored as absent rows).
    assert loaded["sbp"].isna().sum() == 2
    assert loaded["ldl"].isna().sum() == 3
    for column in ("label", "event"):
        assert pd.api.types.is_integer_dtype(loaded[column]), column
    pd.testing.assert_frame_equal(loaded, expected, check_dtype=False)
    # Genotypes come back as whole numbers.
    np.testing.assert_array_equal(
        loaded[["snp_a", "snp_b"]].to_numpy(), expected[["snp_a", "snp_b"]].to_numpy()
    )


def test_load_patient_frame_of_one_split(cohort: CohortStore, tables: CohortTables) -> None:
    loaded = cohort.load_patient_frame(split="val")
    expected = expected_frame(tables).query("split == 'val'").reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected, check_dtype=False)


def test_iter_patient_frames_chunks_concatenate_to_the_whole(cohort: CohortStore) -> None:
    for split, sizes in ((None, [5, 5, 2]), ("train", [5, 1])):
        chunks = list(cohort.iter_patient_frames(split=split, chunk_size=5))
        whole = cohort.load_patient_frame(split=split)

        assert [len(chunk) for chunk in chunks] == sizes
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
        assert whole["patient_id"].is_unique


def test_get_patient_returns_every_stored_field(cohort: CohortStore, tables: CohortTables) -> None:
    patient_id = "P0000005"  # sbp and ldl both missing
    record = cohort.get_patient(patient_id)
    row = tables.patients.set_index("patient_id").loc[patient_id]
    outcome = tables.outcomes.set_index("patient_id").loc[patient_id]
    assert tables.truth is not None
    assert tables.counterfactuals is not None

    assert (record.patient_id, record.split) == (patient_id, "train")
    assert record.age == pytest.approx(row["age"], abs=0)
    assert (record.sex, record.ethnicity, record.site) == (
        row["sex"],
        row["ethnicity"],
        row["site"],
    )
    assert (record.treatment, record.label, record.event) == ("standard", 0, 0)
    assert isinstance(record.label, int)
    assert record.event_time == pytest.approx(outcome["event_time"], abs=0)
    assert record.ehr == {}
    genomics = tables.genomics.set_index("patient_id").loc[patient_id]
    assert record.genomics == {"snp_a": int(genomics["snp_a"]), "snp_b": int(genomics["snp_b"])}
    assert all(isinstance(v, int) for v in record.genomics.values())
    truth = tables.truth.set_index("patient_id").loc[patient_id]
    assert record.true_risk == pytest.approx(truth["true_risk"], abs=0)
    cf = tables.counterfactuals.query("patient_id == @patient_id").set_index("treatment")["risk"]
    assert dict(record.counterfactual_risks) == pytest.approx(cf.to_dict(), abs=0)

    assert record.image is not None
    assert record.image.patient_id == patient_id
    assert record.image.path == f"images/{patient_id}.png"
    assert record.image.sha256 == f"{4:064x}"
    assert (record.image.height, record.image.width) == (32, 32)
    assert record.image.mask_path is None  # index 4 is even: no mask
    assert cohort.get_patient("P0000002").image.mask_path == "masks/P0000002.png"  # type: ignore[union-attr]

    record = cohort.get_patient("P0000001")
    ehr = tables.ehr.set_index("patient_id").loc["P0000001"]
    assert record.ehr == pytest.approx({"sbp": ehr["sbp"], "ldl": ehr["ldl"]}, abs=0)


def test_get_unknown_patient_names_the_id(cohort: CohortStore) -> None:
    with pytest.raises(
        PatientNotFoundError, match=r"Patient 'P9999999' is not in the store"
    ) as info:
        cohort.get_patient("P9999999")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, CohortError)


def test_feature_catalog_keeps_input_order(cohort: CohortStore, tables: CohortTables) -> None:
    catalog = cohort.feature_catalog()
    assert catalog["name"].tolist() == [f[0] for f in FEATURES]
    assert catalog["position"].tolist() == list(range(len(FEATURES)))
    assert catalog["modality"].tolist() == [f[1] for f in FEATURES]
    assert catalog["low"].isna().tolist() == [False, False, True, False, False]
    assert catalog["description"].tolist() == tables.features["description"].tolist()


# ---------------------------------------------------------------------- search
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [f"P{i:07d}" for i in range(1, 13)]),
        ("P000001", ["P0000010", "P0000011", "P0000012"]),
        ("  p000001 ", ["P0000010", "P0000011", "P0000012"]),  # trimmed, case-insensitive
        ("P0000007", ["P0000007"]),
        ("Q", []),
    ],
)
def test_search_patients_by_prefix(cohort: CohortStore, query: str, expected: list[str]) -> None:
    page = cohort.search_patients(query)
    assert page["patient_id"].tolist() == expected
    assert list(page.columns) == ["patient_id", "split", "age", "sex", "site"]


def test_search_patients_pages_and_filters(cohort: CohortStore) -> None:
    first = cohort.search_patients(limit=5)
    second = cohort.search_patients(limit=5, after=first["patient_id"].iloc[-1])
    last = cohort.search_patients(limit=5, after=second["patient_id"].iloc[-1])
    ids = [*first["patient_id"], *second["patient_id"], *last["patient_id"]]
    assert ids == [f"P{i:07d}" for i in range(1, 13)]
    assert len(last) == 2

    val = cohort.search_patients("P", split="val")
    assert val["patient_id"].tolist() == ["P0000007", "P0000008", "P0000009"]
    assert set(val["split"]) == {"val"}
    # The prefix is a key range: it must follow the backend's collation.
    assert cohort.search_patients("p000001")["patient_id"].tolist() == [
        "P0000010",
        "P0000011",
        "P0000012",
    ]
    assert cohort.search_patients("P000000", split="test")["patient_id"].tolist() == []


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_search_patients_rejects_bad_limit(cohort: CohortStore, limit: int) -> None:
    with pytest.raises(ValueError, match=rf"limit={limit} is out of range; use 1\.\.1000"):
        cohort.search_patients(limit=limit)


def test_search_patients_with_risk(sqlite_filled: CohortStore) -> None:
    sqlite_filled.register_model(model_record("fusion-1"))
    sqlite_filled.write_predictions("fusion-1", ["P0000002"], [0.25])
    page = sqlite_filled.search_patients("P000000", model_version="fusion-1", limit=3)
    assert list(page.columns) == ["patient_id", "split", "age", "sex", "site", "risk"]
    assert page["risk"].iloc[1] == 0.25
    assert page["risk"].drop(index=1).isna().all()
    empty = sqlite_filled.search_patients("X", model_version="fusion-1")
    assert empty.empty
    assert "risk" in empty.columns


# ---------------------------------------------------------------------- rollback
def test_failed_write_leaves_store_exactly_as_before(filled: CohortStore) -> None:
    before_counts = table_counts(filled)
    before_frame = filled.load_patient_frame()
    bad = make_tables("Q", seed=1)
    # A new feature (written first), then an outcome for a patient that does not exist.
    bad = replace(
        bad,
        features=pd.concat(
            [bad.features, bad.features.iloc[[0]].assign(name="hba1c")], ignore_index=True
        ),
        outcomes=pd.concat(
            [bad.outcomes, bad.outcomes.iloc[[0]].assign(patient_id="Z0000001")],
            ignore_index=True,
        ),
    )

    with pytest.raises(IntegrityError):
        filled.write_cohort(bad)

    assert table_counts(filled) == before_counts
    assert before_counts["patients"] == N_PATIENTS
    assert "hba1c" not in filled.feature_catalog()["name"].tolist()
    pd.testing.assert_frame_equal(filled.load_patient_frame(), before_frame)
    with pytest.raises(PatientNotFoundError):
        filled.get_patient("Q0000001")


def test_writing_an_existing_patient_again_rolls_back(filled: CohortStore) -> None:
    before_counts = table_counts(filled)
    overlapping = make_tables("P", n=12, seed=2)  # same ids, other values

    with pytest.raises(IntegrityError):
        filled.write_cohort(overlapping)

    assert table_counts(filled) == before_counts
    pd.testing.assert_frame_equal(
        filled.load_patient_frame(), expected_frame(make_tables()), check_dtype=False
    )


def test_second_cohort_appends_and_reuses_the_catalogue(sqlite_filled: CohortStore) -> None:
    assert sqlite_filled.write_cohort(make_tables("Q", seed=3)) == N_PATIENTS
    assert sqlite_filled.count_patients() == 2 * N_PATIENTS
    assert len(sqlite_filled.feature_catalog()) == len(FEATURES)


@pytest.mark.parametrize(
    ("table", "column"),
    [("patients", "split"), ("outcomes", "label"), ("images", "site"), ("features", "modality")],
)
def test_missing_column_is_a_value_error_and_writes_nothing(
    memory_store: CohortStore, table: str, column: str
) -> None:
    tables = make_tables()
    broken = replace(tables, **{table: getattr(tables, table).drop(columns=column)})
    with pytest.raises(ValueError, match=rf"'{table}' lacks columns \['{column}'\]"):
        memory_store.write_cohort(broken)
    assert set(table_counts(memory_store).values()) == {0}


def test_unknown_split_value_writes_nothing(memory_store: CohortStore) -> None:
    tables = make_tables()
    patients = tables.patients.assign(split=["train"] * 11 + ["holdout"])
    with pytest.raises(ValueError, match=r"Unknown split values \['holdout'\]"):
        memory_store.write_cohort(replace(tables, patients=patients))
    assert set(table_counts(memory_store).values()) == {0}


# ---------------------------------------------------------------------- model registry
def test_register_model_keeps_one_active_per_kind(memory_store: CohortStore) -> None:
    store = memory_store
    store.register_model(model_record("fusion-1", day=1))
    store.register_model(model_record("imaging-1", "imaging", day=2))
    store.register_model(model_record("fusion-2", day=3))
    store.register_model(model_record("fusion-3", day=4), activate=False)

    assert store.active_model("fusion").version == "fusion-2"
    assert store.active_model("imaging").version == "imaging-1"
    fusion = store.list_models("fusion")
    assert [m.version for m in fusion] == ["fusion-3", "fusion-2", "fusion-1"]  # newest first
    assert [m.is_active for m in fusion] == [False, True, False]
    assert fusion[1].metrics == {"auroc": pytest.approx(0.83)}
    assert fusion[1].params == {"n_estimators": 30}
    assert len(store.list_models()) == 4


def test_activate_model_switches_within_its_kind_only(memory_store: CohortStore) -> None:
    store = memory_store
    for record in (
        model_record("fusion-1"),
        model_record("fusion-2"),
        model_record("img", "imaging"),
    ):
        store.register_model(record)
    store.activate_model("fusion-1")
    assert store.active_model("fusion").version == "fusion-1"
    assert sum(m.is_active for m in store.list_models("fusion")) == 1
    assert store.active_model("imaging").version == "img"
    with pytest.raises(KeyError, match="'fusion-9' is not registered"):
        store.activate_model("fusion-9")
    assert store.active_model("fusion").version == "fusion-1"


def test_an_artifact_is_found_by_kind_and_parent_not_by_its_version_name(
    memory_store: CohortStore,
) -> None:
    store = memory_store
    store.register_model(model_record("fusion-1", day=1))
    store.register_model(model_record("fusion-2", day=2))
    registered = store.register_artifact(
        "calibration-of-fusion-1",  # any name: the lookup never parses it
        "interval",
        "interval/fusion-1/calibration.json",
        "a" * 64,
        metrics={"coverage": 0.9},
        params={"level": 0.9},
        parent_version="fusion-1",
    )
    assert not registered.is_active
    assert registered.created_at.tzinfo is not None
    found = store.artifact_of("fusion-1", "interval")
    assert found is not None
    assert (found.version, found.kind, found.sha256) == (
        "calibration-of-fusion-1",
        "interval",
        "a" * 64,
    )
    assert (found.parent_version, found.artifact_path) == ("fusion-1", registered.artifact_path)
    assert store.artifact_of("fusion-2", "interval") is None
    assert store.artifact_of("fusion-1", "explanations") is None
    assert store.active_model("fusion").version == "fusion-2"  # an artifact activates nothing


def test_active_model_without_one_raises(memory_store: CohortStore) -> None:
    with pytest.raises(StoreNotBuiltError, match=r"No active 'fusion' model"):
        memory_store.active_model("fusion")
    memory_store.register_model(model_record("fusion-1"), activate=False)
    with pytest.raises(StoreNotBuiltError, match=r"No active 'fusion' model"):
        memory_store.active_model("fusion")


def test_duplicate_model_version_changes_nothing(memory_store: CohortStore) -> None:
    memory_store.register_model(model_record("fusion-1"))
    with pytest.raises(IntegrityError):
        memory_store.register_model(model_record("fusion-1", day=2))
    # The deactivation in the same transaction was rolled back too.
    assert memory_store.active_model("fusion").version == "fusion-1"


# ---------------------------------------------------------------------- embeddings
def test_embeddings_round_trip_exactly(filled: CohortStore) -> None:
    filled.register_model(model_record("imaging-1", "imaging"))
    images = filled.image_index()
    assert images["patient_id"].tolist() == [f"P{i:07d}" for i in range(1, 13)]
    image_ids = np.repeat(images["image_id"].to_numpy(), 2)
    folds = np.tile([0, 1], len(images))
    in_training = folds == (np.arange(len(image_ids)) // 2) % 2
    logits = np.linspace(-2, 2, len(image_ids))
    vectors = np.random.default_rng(0).normal(size=(len(image_ids), 8)).astype(np.float32)

    filled.write_embeddings("imaging-1", image_ids, folds, in_training, logits, vectors)
    loaded = filled.load_embeddings("imaging-1")

    assert list(loaded.columns) == [
        "image_id",
        "patient_id",
        "fold",
        "in_training",
        "logit",
        "vector",
    ]
    np.testing.assert_array_equal(loaded["image_id"], image_ids)
    np.testing.assert_array_equal(loaded["fold"], folds)
    np.testing.assert_array_equal(loaded["in_training"], in_training)
    assert loaded["in_training"].dtype == bool
    np.testing.assert_array_equal(loaded["logit"], logits)
    stacked = np.stack(loaded["vector"].to_list())
    assert stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked, vectors)
    assert loaded["patient_id"].tolist() == np.repeat(images["patient_id"], 2).tolist()

    one = filled.image_logits(int(image_ids[2]), "imaging-1")
    assert one["fold"].tolist() == [0, 1]
    np.testing.assert_array_equal(one["logit"], logits[2:4])
    np.testing.assert_array_equal(one["in_training"], in_training[2:4])
    assert filled.load_embeddings("imaging-2").empty


def test_write_embeddings_checks_vector_shape(memory_store: CohortStore) -> None:
    with pytest.raises(ValueError, match=r"shape \(n_images, dim\) with n_images=2"):
        memory_store.write_embeddings(
            "imaging-1", [1, 2], [0, 0], [False, False], [0.0, 0.0], np.zeros((3, 4))
        )


# ---------------------------------------------------------------------- predictions
def score(store: CohortStore) -> CohortStore:
    store.register_model(model_record("fusion-1"))
    ids = [f"P{i:07d}" for i in range(1, 13)]
    store.write_predictions("fusion-1", ids, np.linspace(0.05, 0.95, 12))
    return store


@pytest.fixture
def scored(filled: CohortStore) -> CohortStore:
    """The cohort scored by ``fusion-1`` (risk 0.05 .. 0.95 in id order), on each backend."""
    return score(filled)


@pytest.fixture
def sqlite_scored(sqlite_filled: CohortStore) -> CohortStore:
    return score(sqlite_filled)


def test_write_predictions_replaces(scored: CohortStore) -> None:
    assert scored.count_predictions("fusion-1") == 12
    assert scored.get_prediction("P0000001", "fusion-1") == pytest.approx(0.05)
    scored.write_predictions("fusion-1", ["P0000001", "P0000003"], [0.5, 1.0])
    assert scored.count_predictions("fusion-1") == 12
    assert scored.get_prediction("P0000001", "fusion-1") == 0.5
    assert scored.get_prediction("P0000003", "fusion-1") == 1.0
    assert scored.get_prediction("P0000002", "fusion-1") == pytest.approx(0.05 + 0.9 / 11)
    assert scored.get_prediction("P0000001", "fusion-2") is None


def test_top_risks_walks_one_split_from_the_top(scored: CohortStore) -> None:
    # Risks rise with the id (0.05 .. 0.95); P0000010.. are the test split.
    top = scored.top_risks("fusion-1", split="test", limit=2)
    assert top["patient_id"].tolist() == ["P0000012", "P0000011"]
    assert top["risk"].iloc[0] == pytest.approx(0.95)
    train = scored.top_risks("fusion-1", split="train", limit=100)
    assert train["patient_id"].tolist() == [f"P{i:07d}" for i in range(6, 0, -1)]
    assert scored.top_risks("fusion-2", split="test", limit=5).empty


def test_unscored_ids_and_patient_frames_follow_the_predictions(scored: CohortStore) -> None:
    scored.register_model(model_record("fusion-2", day=2), activate=False)
    scored.write_predictions("fusion-2", ["P0000002", "P0000005"], [0.3, 0.4])
    chunks = list(scored.iter_unscored_ids("fusion-2", chunk_size=4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    unscored = [pid for chunk in chunks for pid in chunk]
    assert "P0000002" not in unscored
    assert unscored == sorted(unscored)
    assert list(scored.iter_unscored_ids("fusion-1")) == []
    frame = scored.patient_frame(["P0000007", "P0000003", "NOPE"])
    whole = scored.load_patient_frame().set_index("patient_id")
    assert frame["patient_id"].tolist() == ["P0000003", "P0000007"]
    pd.testing.assert_frame_equal(
        frame.set_index("patient_id"), whole.loc[["P0000003", "P0000007"]], check_like=True
    )


def test_write_scored_stores_risk_explanation_and_audit_together(scored: CohortStore) -> None:
    entry = AuditEntry(actor="t", role="admin", action="score", model_version="fusion-1")
    values = np.array([[0.1, -0.2], [0.3, 0.0]])
    scored.write_scored("fusion-1", ["P0000001", "P0000002"], [0.2, 0.7], -1.0, values, audit=entry)
    assert scored.get_prediction("P0000002", "fusion-1") == 0.7
    assert scored.count_explanations("fusion-1") == 2
    assert scored.audit_events()["action"].tolist() == ["score"]
    with pytest.raises(ValueError, match="finite"):  # a bad chunk writes neither part
        scored.write_scored("fusion-1", ["P0000003"], [0.5], -1.0, np.array([[np.nan, 0.0]]))
    assert scored.get_prediction("P0000003", "fusion-1") == pytest.approx(0.05 + 0.18 / 1.1)
    assert scored.count_explanations("fusion-1") == 2


def test_activate_models_switches_several_kinds_at_once(memory_store: CohortStore) -> None:
    memory_store.register_model(model_record("imaging-1", "imaging"))
    memory_store.register_model(model_record("fusion-1"))
    memory_store.register_model(model_record("imaging-2", "imaging", day=2), activate=False)
    memory_store.register_model(model_record("fusion-2", day=2), activate=False)
    with pytest.raises(KeyError, match="missing"):
        memory_store.activate_models(["imaging-2", "missing"])
    assert memory_store.active_model("imaging").version == "imaging-1"  # nothing changed
    memory_store.activate_models(["imaging-2", "fusion-2"])
    assert memory_store.active_model("imaging").version == "imaging-2"
    assert memory_store.active_model("fusion").version == "fusion-2"


@pytest.mark.parametrize(
    ("ids", "risks", "message"),
    [
        (["P0000001", "P0000002"], [0.1, np.nan], "finite probabilities"),
        (["P0000001", "P0000002"], [0.1, 1.5], "finite probabilities"),
        (["P0000001", "P0000002"], [-0.1, 0.5], "finite probabilities"),
        (["P0000001", "P0000002"], [0.1], "2 patient ids but 1 risks"),
    ],
)
def test_invalid_predictions_write_nothing(
    sqlite_scored: CohortStore, ids: list[str], risks: list[float], message: str
) -> None:
    before = sqlite_scored.get_prediction("P0000001", "fusion-1")
    with pytest.raises(ValueError, match=message):
        sqlite_scored.write_predictions("fusion-1", ids, risks)
    assert sqlite_scored.count_predictions("fusion-1") == 12
    assert sqlite_scored.get_prediction("P0000001", "fusion-1") == before


def test_prediction_for_unknown_patient_rolls_back(scored: CohortStore) -> None:
    with pytest.raises(CohortError, match=r"score only stored patients.*Nothing was written"):
        scored.write_predictions("fusion-1", ["P0000001", "Z0000001"], [0.9, 0.9])
    with pytest.raises(ValueError, match=r"more than once, e.g. \['P0000001'\]"):
        scored.write_predictions("fusion-1", ["P0000001", "P0000001"], [0.9, 0.9])
    assert scored.count_predictions("fusion-1") == 12
    assert scored.get_prediction("P0000001", "fusion-1") == pytest.approx(0.05)


def test_iter_prediction_rows_pages_through_every_patient_once(
    scored: CohortStore, tables: CohortTables
) -> None:
    chunks = list(scored.iter_prediction_rows("fusion-1", chunk_size=5))
    assert [len(chunk) for chunk in chunks] == [5, 5, 2]
    rows = pd.concat(chunks, ignore_index=True)

    assert rows["patient_id"].tolist() == [f"P{i:07d}" for i in range(1, 13)]
    assert set(rows.columns) >= {
        "patient_id",
        "split",
        "sex",
        "age",
        "ethnicity",
        "site",
        "treatment",
        "label",
        "risk",
        "model_version",
        "true_risk",
    }
    np.testing.assert_allclose(rows["risk"], np.linspace(0.05, 0.95, 12), rtol=0, atol=1e-15)
    assert tables.truth is not None
    np.testing.assert_array_equal(rows["true_risk"], tables.truth["true_risk"])
    assert set(rows["model_version"]) == {"fusion-1"}
    assert list(scored.iter_prediction_rows("fusion-2")) == []


# ---------------------------------------------------------------------- engines
def test_sqlite_file_engine_applies_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30000
        store = CohortStore(engine)
        store.create_schema()
        store.create_schema()  # idempotent
        store.write_cohort(make_tables())
        assert store.count_patients() == N_PATIENTS
    finally:
        engine.dispose()
    assert (tmp_path / "store.db").is_file()


def test_in_memory_engine_enforces_foreign_keys_and_shares_one_database(
    memory_store: CohortStore,
) -> None:
    with memory_store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    memory_store.write_cohort(make_tables())
    # A second connection sees the same in-memory database.
    with memory_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM patients")).scalar_one() == N_PATIENTS
