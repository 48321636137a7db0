"""The schema's ``[audit] age_bands``: parsed, checked, stored with the import, re-imported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.cohort_import import import_cohort, load_schema
from data.errors import CohortValidationError
from data.store import CohortStore
from data.synthetic.example_cohort import write_example_cohort
from fusion.evaluation.groups import add_age_band
from models.scans import read_scan

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cohort = tmp_path_factory.mktemp("bands") / "cohort"
    write_example_cohort(cohort, n_patients=14)
    return cohort


def _with_bands(folder: Path, text: str) -> Path:
    schema = folder.parent / f"schema-{abs(hash(text))}.toml"
    schema.write_text((folder / "schema.toml").read_text() + "\n" + text, encoding="utf-8")
    return schema


def test_age_bands_are_parsed_and_bad_ones_named(folder: Path) -> None:
    assert load_schema(folder / "schema.toml").age_bands == ()
    good = _with_bands(folder, "[audit]\nage_bands = [40, 60, 75]\n")
    assert load_schema(good).age_bands == (40.0, 60.0, 75.0)
    for bad in ("[60, 40]", "[0, 50]", '"40,60"'):
        with pytest.raises(CohortValidationError) as caught:
            load_schema(_with_bands(folder, f"[audit]\nage_bands = {bad}\n"))
        assert "audit.age_bands" in set(caught.value.report.problems["column"])


def test_age_bands_are_stored_with_the_import_and_follow_a_reimport(
    folder: Path, memory_store: CohortStore, tmp_path: Path
) -> None:
    schema = _with_bands(folder, "[audit]\nage_bands = [40, 60, 75]\n")
    artifacts = tmp_path / "artifacts"
    first = import_cohort(
        folder, memory_store, artifacts_dir=artifacts, reader=read_scan, schema=schema
    )
    assert first.counts is not None
    assert memory_store.cohort_settings() == {"age_bands": [40.0, 60.0, 75.0]}
    stamp = memory_store.import_batches()[-1]["batch_id"]
    # The same files again change nothing; new bands alone are a new import batch.
    import_cohort(folder, memory_store, artifacts_dir=artifacts, reader=read_scan, schema=schema)
    assert memory_store.import_batches()[-1]["batch_id"] == stamp
    other = _with_bands(folder, "[audit]\nage_bands = [65]\n")
    import_cohort(folder, memory_store, artifacts_dir=artifacts, reader=read_scan, schema=other)
    assert memory_store.cohort_settings() == {"age_bands": [65.0]}
    assert memory_store.import_batches()[-1]["batch_id"] != stamp
    frame = add_age_band(pd.DataFrame({"age": [30.0, 70.0]}), (65.0,))
    assert frame["age_band"].tolist() == ["<65", "65+"]
