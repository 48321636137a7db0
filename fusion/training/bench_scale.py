"""``riskfusion bench --scale N``: every page's server-side compute on a store of N patients.

Owns the scale benchmark. A built demo (``--scale-base HOME``, or a 2,000-patient demo built
now in a temporary home) is copied into a working store, SQLite or the PostgreSQL database of
``RISKFUSION_DATABASE_URL``; its pages and batch paths are timed; then the store is replicated
to N patients by bulk SQL (``INSERT ... SELECT`` of every patient table, one transaction per
copy, ids prefixed ``R<copy>-``, image ids offset, the scans shared) and timed again, so every
figure has its ratio against the base store from the same run. Timed per store:

* ``precompute``: storing the cohort pages' default views
  (:func:`fusion.service.cohort_views.precompute`);
* each page's server-side compute as the page calls the service (explorer, forecast,
  performance as admin and researcher, bias audit, picker, audit trail), cold (a new service:
  empty process caches, views read from the store) and warm (median of repeats);
* ``score``: ``riskfusion score`` of the same number of unscored patients (their stored
  results deleted first), the refresh of the stored views included.

Measured here, never asserted in tests. Streamlit is never imported here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, delete, func, insert, literal, select, text
from sqlalchemy.engine import Engine

from data.store import CohortStore, make_engine
from data.store.schema import (
    Base,
    CohortAggregate,
    Image,
    Patient,
    Prediction,
    ScoringBatch,
    StoredExplanation,
)
from fusion.admin.access import Identity
from fusion.service.cohort_views import precompute
from fusion.service.facade import RiskService
from fusion.settings import DATABASE_FILE, Settings
from fusion.training.page_compute import explorer_page_compute

__all__ = ["REPLICATED_TABLES", "replicate_store", "run_scale_bench"]

logger = logging.getLogger(__name__)

REPLICATED_TABLES = (
    "patients",
    "demographics",
    "outcomes",
    "ground_truth",
    "counterfactual_risks",
    "ehr_values",
    "genomic_values",
    "images",
    "embeddings",
    "predictions",
    "explanations",
)
"""Tables copied per replica, parents first (foreign keys hold inside each transaction)."""

_ADMIN = Identity("bench", "admin", "local")
_RESEARCHER = Identity("bench", "researcher", "local")
_WARM_REPEATS = 3


def _prefix(copy: int) -> str:
    return f"R{copy:05d}-"


def replicate_store(store: CohortStore, n_patients: int) -> dict[str, Any]:
    """Grow the store to about ``n_patients`` by copying its patients with bulk SQL.

    Each copy ``c`` inserts every row of :data:`REPLICATED_TABLES` of the original patients
    with ``patient_id`` prefixed ``R<c>-`` and ``image_id`` offset by ``c`` times the largest
    original id (scan files are shared), in one transaction, and records a scoring batch of
    each model version whose predictions it copied (so the data stamp moves). The last copy
    takes only enough patients (in id order) to reach ``n_patients``.

    Returns
    -------
    dict
        ``patients`` (after), ``copies``, ``seconds``.

    Raises
    ------
    ValueError
        If the store already holds replicas or ``n_patients`` is below its size.
    """
    start = time.perf_counter()
    tables = {table.name: table for table in Base.metadata.sorted_tables}
    with store.engine.connect() as conn:
        base = int(conn.execute(select(func.count()).select_from(Patient)).scalar_one())
        replicas = conn.execute(
            select(func.count()).where(Patient.patient_id.like("R_____-%"))
        ).scalar_one()
        offset = int(conn.execute(select(func.max(Image.image_id))).scalar_one() or 0) + 1
        versions = [
            str(v) for v in conn.execute(select(Prediction.model_version).distinct()).scalars()
        ]
    if replicas:
        raise ValueError("The store already holds replicated patients (ids R<copy>-...).")
    if n_patients < base:
        raise ValueError(f"--scale {n_patients} is below the base store's {base} patients.")
    copies = 0
    remaining = n_patients - base
    while remaining > 0:
        copies += 1
        take = min(base, remaining)
        # The original patients of this copy: all, or the first ``take`` in id order.
        originals = (
            select(Patient.patient_id)
            .where(~Patient.patient_id.like("R_____-%"))
            .order_by(Patient.patient_id)
            .limit(take)
        ).subquery()
        with store.engine.begin() as conn:
            for name in REPLICATED_TABLES:
                table = tables[name]
                columns = []
                for column in table.columns:
                    if column.name == "patient_id":
                        columns.append(literal(_prefix(copies)) + column)
                    elif column.name == "image_id":
                        columns.append(column + literal(copies * offset, Integer))
                    else:
                        columns.append(column)
                if "patient_id" in table.columns:
                    where = table.c.patient_id.in_(select(originals.c.patient_id))
                else:  # embeddings: by their image
                    where = table.c.image_id.in_(
                        select(Image.image_id).where(
                            Image.patient_id.in_(select(originals.c.patient_id))
                        )
                    )
                names = [column.name for column in table.columns]
                conn.execute(insert(table).from_select(names, select(*columns).where(where)))
            now = datetime.now(UTC)
            for version in versions:
                conn.execute(
                    insert(ScoringBatch).values(
                        model_version=version, patients=take, created_at=now
                    )
                )
        remaining -= take
    with store.engine.connect() as conn:
        after = int(conn.execute(select(func.count()).select_from(Patient)).scalar_one())
    return {"patients": after, "copies": copies, "seconds": round(time.perf_counter() - start, 1)}


def _copy_store(source: Engine, target: Engine) -> None:
    """Every table of ``source`` into the empty schema of ``target`` (chunks of 5,000 rows)."""
    for table in Base.metadata.sorted_tables:
        with source.connect() as reader, target.begin() as writer:
            result = reader.execution_options(stream_results=True).execute(select(table))
            while rows := result.fetchmany(5_000):
                writer.execute(insert(table), [dict(row._mapping) for row in rows])
    if target.dialect.name == "postgresql":  # explicit ids do not move the sequences
        with target.begin() as conn:
            for table in Base.metadata.sorted_tables:
                keys = list(table.primary_key.columns)
                if len(keys) == 1 and keys[0].autoincrement is True:
                    column = keys[0].name
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
                            f"COALESCE((SELECT MAX({column}) FROM {table.name}), 0) + 1, false)"
                        )
                    )


def _timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _pages(service: RiskService) -> dict[str, Callable[[], Any]]:
    """Each page's server-side compute, as the page calls the service (default widgets)."""
    from fusion.reports.figures import (
        make_disparity_figure,
        make_group_calibration_figure,
        make_group_roc_figure,
        make_reliance_figure,
    )
    from fusion.reports.performance_figures import performance_figures

    info = service.model_info()
    floor = service.min_cell_floor
    last = service.search_patients(split="test", limit=1, from_end=True)
    patient_id = str(last["patient_id"].iloc[0])

    def performance(identity: Identity) -> None:
        choice = service.threshold_choice(round(info.threshold, 2), identity, floor)
        report = service.performance(threshold=choice.threshold)
        if choice.curve_cuts is not None:
            report = service.performance_through(report, choice.curve_cuts)
        service.list_models()
        figures = performance_figures(
            report, service.test_shap(), per_patient=identity.role == "admin"
        )
        for figure in figures.values():
            figure.to_json()

    def bias_audit(identity: Identity) -> None:
        by = ("sex",)
        choice = service.threshold_choice(round(info.threshold, 2), identity, floor, by)
        report = service.audit(by, threshold=choice.threshold, min_cell=floor, identity=identity)
        if choice.curve_cuts is None:
            roc, calibration = service.group_curves(
                by, min_cell=floor, identity=identity, threshold=choice.threshold
            )
        else:
            roc, calibration = service.group_curves(
                by, min_cell=floor, identity=identity, cut_points=choice.curve_cuts
            )
        reliance = service.modality_reliance(by, min_cell=floor, identity=identity)
        report.table()
        for figure in (
            make_disparity_figure(report, "tpr"),
            make_group_roc_figure(roc),
            make_group_calibration_figure(calibration),
            make_reliance_figure(reliance),
        ):
            figure.to_json()

    def picker() -> None:
        for split in ("test", None):
            service.search_patients(split=split, limit=51)
            service.search_patients(split=split, limit=51, from_end=True)
            service.count_patients(split)

    def audit_trail() -> None:
        service.audit_trail(limit=100)
        service.audit_trail(limit=100, action="score")

    return {
        "explorer": lambda: explorer_page_compute(service, patient_id),
        "forecast": lambda: service.forecast(patient_id),
        "performance_admin": lambda: performance(_ADMIN),
        "performance_researcher": lambda: performance(_RESEARCHER),
        "bias_audit_admin": lambda: bias_audit(_ADMIN),
        "bias_audit_researcher": lambda: bias_audit(_RESEARCHER),
        "picker": picker,
        "audit_trail": audit_trail,
    }


def _measure(store: CohortStore, home: Path, rescore: int, min_cell: int) -> dict[str, Any]:
    """Precompute, every page cold and warm, then a timed score of ``rescore`` patients."""
    figures: dict[str, Any] = {"patients": store.count_patients()}
    figures["test_patients"] = store.count_patients("test")
    with store.engine.begin() as conn:  # time the views' computation, not a stored read
        conn.execute(delete(CohortAggregate))
    start = time.perf_counter()
    stored = precompute(RiskService(store, home, min_cell=min_cell).cohort)
    figures["precompute_s"] = round(time.perf_counter() - start, 2)
    figures["views_stored"] = stored["views"]
    service = RiskService(store, home, min_cell=min_cell)  # cold: no cache in this process
    pages = _pages(service)
    figures["cold_ms"] = {name: round(1000 * _timed(page), 1) for name, page in pages.items()}
    figures["warm_ms"] = {
        name: round(1000 * statistics.median(_timed(page) for _ in range(_WARM_REPEATS)), 1)
        for name, page in pages.items()
    }
    # A batch: forget the stored results of ``rescore`` test patients, then score them.
    ids = service.search_patients(split="test", limit=rescore, from_end=True)["patient_id"]
    with store.engine.begin() as conn:
        for table in (Prediction, StoredExplanation):
            conn.execute(delete(table).where(table.patient_id.in_(ids.tolist())))
    from fusion.training.score import score_cohort

    start = time.perf_counter()
    result = score_cohort(store, home, min_cell=min_cell)
    figures["score"] = {
        "patients": result["scored"],
        "seconds": round(time.perf_counter() - start, 2),
        "views_stored": result["cohort_views"],
    }
    return figures


def _ratios(base: dict[str, Any], scaled: dict[str, Any]) -> dict[str, Any]:
    def ratio(a: float, b: float) -> float | None:
        return round(b / a, 2) if a > 0 else None

    return {
        when: {name: ratio(base[when][name], scaled[when][name]) for name in base[when]}
        for when in ("cold_ms", "warm_ms")
    } | {
        "precompute_s": ratio(base["precompute_s"], scaled["precompute_s"]),
        "score_s": ratio(base["score"]["seconds"], scaled["score"]["seconds"]),
    }


def _build_base(home: Path, n_patients: int) -> None:
    env = {**os.environ, "RISKFUSION_HOME": str(home)}
    env.pop("RISKFUSION_DATABASE_URL", None)
    command = [sys.executable, "-m", "fusion.cli", "demo", "--no-serve"]
    subprocess.run([*command, "--patients", str(n_patients)], env=env, check=True)


def run_scale_bench(
    settings: Settings,
    *,
    n_patients: int,
    base_home: Path | None = None,
    out: Path | None = None,
    rescore: int = 500,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Time the pages and batch paths on the base demo and on a replica of ``n_patients``.

    Parameters
    ----------
    settings : Settings
        ``settings.database_url``: a ``postgresql`` URL runs the bench in that (empty)
        database; otherwise a SQLite file in the working home.
    n_patients : int
        Patients of the replicated store.
    base_home : Path, optional
        A built demo's home (``RISKFUSION_HOME``); default: a 2,000-patient demo built now.
    out : Path, optional
        JSON file of the figures (default ``<artifacts>/bench-scale-<N>.json``).
    rescore : int, default=500
        Patients scored in the timed batch, on both stores.
    work_dir : Path, optional
        Where the working home is made (default the system's temporary folder); removed after.

    Returns
    -------
    dict
        ``base``, ``scaled`` (figures of :func:`_measure`), ``ratio``, ``replicate`` and the
        ``database`` dialect.
    """
    with tempfile.TemporaryDirectory(prefix="riskfusion-scale-", dir=work_dir) as folder:
        work = Path(folder)
        if base_home is None:
            base_home = work / "base"
            logger.info("bench --scale: building a 2,000-patient demo")
            _build_base(base_home, 2000)
        home = work / "home"
        shutil.copytree(base_home, home)
        base_engine = make_engine(f"sqlite:///{Path(base_home) / DATABASE_FILE}")
        if settings.database_url.startswith("postgresql"):
            engine = make_engine(settings.database_url)
            CohortStore(engine).create_schema()
            _copy_store(base_engine, engine)
        else:
            engine = make_engine(f"sqlite:///{home / DATABASE_FILE}")
        base_engine.dispose()
        store = CohortStore(engine)
        store.create_schema()
        base = _measure(store, home, rescore, settings.min_cell)
        replicated = replicate_store(store, n_patients)
        scaled = _measure(store, home, rescore, settings.min_cell)
        if engine.dialect.name == "sqlite":
            size = (home / DATABASE_FILE).stat().st_size
        else:
            with engine.connect() as conn:
                size = int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
        engine.dispose()
    result = {
        "database": engine.dialect.name,
        "database_bytes": size,
        "replicate": replicated,
        "base": base,
        "scaled": scaled,
        "ratio": _ratios(base, scaled),
    }
    target = out or settings.artifacts_dir / f"bench-scale-{n_patients}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str))
    _print(result, target)
    return result


def _print(result: dict[str, Any], target: Path) -> None:
    base, scaled, ratio = result["base"], result["scaled"], result["ratio"]
    lines = [
        f"bench --scale ({result['database']}): {base['patients']:,} -> {scaled['patients']:,} "
        f"patients ({scaled['test_patients']:,} in the test split); replicated in "
        f"{result['replicate']['seconds']} s; store {result['database_bytes'] / 1e6:,.0f} MB",
        f"{'page (server-side compute)':<26} {'cold ms':>9} {'x base':>7} "
        f"{'warm ms':>9} {'x base':>7}",
    ]
    for name in scaled["cold_ms"]:
        lines.append(
            f"{name:<26} {scaled['cold_ms'][name]:>9.1f} {ratio['cold_ms'][name] or 0:>7.2f} "
            f"{scaled['warm_ms'][name]:>9.1f} {ratio['warm_ms'][name] or 0:>7.2f}"
        )
    lines.append(
        f"precompute of the stored views: {scaled['precompute_s']} s "
        f"(x{ratio['precompute_s']} of base); score of {scaled['score']['patients']} patients "
        f"incl. the views' refresh: {scaled['score']['seconds']} s (x{ratio['score_s']})"
    )
    lines.append(f"written to {target}")
    sys.stdout.write("\n".join(lines) + "\n")
