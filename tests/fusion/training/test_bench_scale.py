"""``riskfusion bench --scale N``: the replicated store is consistent and the bench runs.

The tiny demo (120 patients) is the base; N is a few hundred so the test stays quick. Speed is
measured by the bench, never asserted here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from data.store import CohortStore, make_engine
from data.store.schema import (
    Embedding,
    Image,
    Patient,
    Prediction,
    StoredExplanation,
)
from fusion.settings import Settings
from fusion.training.bench_scale import _copy_store, replicate_store, run_scale_bench

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def counts(store: CohortStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.__tablename__: int(
                conn.execute(select(func.count()).select_from(table)).scalar_one()
            )
            for table in (Patient, Image, Embedding, Prediction, StoredExplanation)
        }


def check_replica(store: CohortStore, base: dict[str, int], n_patients: int) -> None:
    after = counts(store)
    assert after["patients"] == n_patients
    share = n_patients / base["patients"]
    for table in ("images", "predictions", "explanations", "embeddings"):
        assert after[table] == pytest.approx(base[table] * share, rel=0.05), table
    with store.engine.connect() as conn:
        ids = conn.execute(select(Patient.patient_id)).scalars().all()
        image_ids = conn.execute(select(Image.image_id)).scalars().all()
        orphans = conn.execute(
            select(func.count())
            .select_from(Prediction)
            .where(~Prediction.patient_id.in_(select(Patient.patient_id)))
        ).scalar_one()
    assert len(set(ids)) == len(ids)
    assert len(set(image_ids)) == len(image_ids)
    assert orphans == 0


def test_replicate_store_on_sqlite(tiny_demo, tmp_path: Path) -> None:
    settings, _ = tiny_demo
    home = tmp_path / "home"
    shutil.copytree(settings.artifacts_dir, home, ignore=shutil.ignore_patterns("*.db-shm"))
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    version = store.active_model("fusion").version
    base = counts(store)
    stamp = store.data_stamp(version)
    result = replicate_store(store, 3 * base["patients"] + 7)
    assert result["copies"] == 3
    check_replica(store, base, 3 * base["patients"] + 7)
    assert store.data_stamp(version) != stamp  # the replicas' predictions move the stamp
    with pytest.raises(ValueError, match="already holds replicated"):
        replicate_store(store, 10 * base["patients"])
    store.engine.dispose()


def test_replicate_store_on_postgresql(tiny_demo, postgres_database: Callable[[], str]) -> None:
    settings, _ = tiny_demo
    source = make_engine(settings.database_url)
    store = CohortStore(make_engine(postgres_database()))
    _copy_store(source, store.engine)
    base = counts(store)
    replicate_store(store, 2 * base["patients"] + 5)
    check_replica(store, base, 2 * base["patients"] + 5)
    source.dispose()
    store.engine.dispose()


def test_bench_scale_runs_and_reports_every_page(tiny_demo, tmp_path: Path) -> None:
    settings, _ = tiny_demo
    out = tmp_path / "scale.json"
    result = run_scale_bench(
        # The tiny test split (~24 patients) shows groups at a floor of 3, not 11.
        Settings.from_env(
            {"RISKFUSION_HOME": str(tmp_path / "unused"), "RISKFUSION_MIN_CELL": "3"}
        ),
        n_patients=300,
        base_home=settings.artifacts_dir,
        out=out,
        rescore=10,
        work_dir=tmp_path,
    )
    assert json.loads(out.read_text())["scaled"]["patients"] == 300
    pages = set(result["scaled"]["cold_ms"])
    assert pages == {
        "explorer",
        "forecast",
        "performance_admin",
        "performance_researcher",
        "bias_audit_admin",
        "bias_audit_researcher",
        "picker",
        "audit_trail",
    }
    assert result["scaled"]["score"]["patients"] == 10
    assert result["base"]["patients"] == 120
    assert set(result["ratio"]["warm_ms"]) == pages
