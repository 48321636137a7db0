"""``riskfusion bench`` (``make bench``): measured figures of the demo on this machine.

Owns the benchmark: wall time of ``riskfusion demo --no-serve`` in a fresh temporary home, the
test AUROC of fusion vs each single modality vs the oracle (from that build), the warm
latency of one patient's risk + SHAP + Grad-CAM, the size of what the performance page
sends to the browser (its figures' JSON) and the picker's first and last page reads. Prints
them and writes ``bench.json``. Speed is measured here, never asserted in tests.
Streamlit is never imported here (only the dashboard uses it).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import special

from data.store import CohortStore
from fusion.evaluation.fairness import audit
from fusion.explanations.similar import MAX_REFERENCE, SimilarityIndex
from fusion.service.facade import RiskService
from fusion.settings import Settings
from fusion.training.bench_intervals import interval_section
from fusion.training.bench_small import small_cohort_section
from fusion.training.page_compute import explorer_page_compute

__all__ = ["performance_page_payload", "run_bench"]

logger = logging.getLogger(__name__)

LATENCY_PATIENTS = 20
PICKER_PAGE = 50
"""Rows of a picker page (``dashboard.resources.PAGE_SIZE``), read with one more beyond it."""


def run_bench(
    settings: Settings,
    *,
    n_patients: int = 2000,
    out: Path | None = None,
    import_patients: int = 10_000,
    validation_mb: float = 250.0,
    only_validation: bool = False,
    scale: int = 0,
    scale_base: Path | None = None,
) -> int:
    """Build the demo from scratch in a temporary home, then time per-patient work.

    Parameters
    ----------
    settings : Settings
        Where ``bench.json`` goes (``settings.artifacts_dir``) unless ``out`` is given.
    n_patients : int, default=2000
        Cohort size of the timed build.
    out : Path, optional
        Output JSON file.
    import_patients : int, default=10_000
        Cohort size of the timed ``riskfusion import`` (0 skips it).
    validation_mb : float, default=250.0
        Size in MB of the generated ``patients.csv`` whose dry-run validation is measured
        (peak memory and throughput, :func:`fusion.admin.cohort_import.bench_validation`; 0 skips
        it).
    only_validation : bool, default=False
        Measure only the validation (no demo build, latency or import figures).
    scale : int, default=0
        Instead, time the pages on a store replicated to ``scale`` patients from the demo in
        ``scale_base`` (:func:`fusion.training.bench_scale.run_scale_bench`).

    Returns
    -------
    int
        Exit status (0 on success).
    """
    if scale:
        from fusion.training.bench_scale import run_scale_bench

        run_scale_bench(settings, n_patients=scale, base_home=scale_base, out=out)
        return 0
    if only_validation:
        from fusion.admin.cohort_import import bench_validation

        return _write_result(
            settings,
            out,
            {"machine": _machine(), "validation": bench_validation(validation_mb or 250.0)},
        )
    with tempfile.TemporaryDirectory(prefix="riskfusion-bench-") as home:
        env = {**os.environ, "RISKFUSION_HOME": home}
        env.pop("RISKFUSION_DATABASE_URL", None)
        command = [sys.executable, "-m", "fusion.cli", "demo", "--no-serve"]
        command += ["--patients", str(n_patients)]
        logger.info("bench: timing `%s` in a fresh home", " ".join(command[2:]))
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        build_seconds = time.perf_counter() - start
        summary = json.loads((Path(home) / "build_summary.json").read_text())

        service = RiskService.from_settings(Settings.from_env({"RISKFUSION_HOME": home}))
        ids = service.search_patients(split="test", limit=LATENCY_PATIENTS)["patient_id"].tolist()
        _one_patient(service, ids[0])  # warm-up: first calls build caches
        timings: dict[str, list[float]] = {"predict": [], "explain": [], "gradcam": [], "total": []}
        for pid in ids:
            for name, seconds in _one_patient(service, pid).items():
                timings[name].append(seconds)
        trust = _map_trust_section(service, ids)
        forecast = _forecast_section(service, ids, summary)
        explorer = _explorer_section(service, ids, trust)
        performance_page = performance_page_payload(service)
        picker = time_picker_pages(service.store, model_version=service.version)
        small_cohort = small_cohort_section(service.store)  # fused vs logistic, 200 patients

    result: dict[str, Any] = {
        "machine": _machine(),
        "demo_build": {
            "command": "riskfusion demo --no-serve --patients " + str(n_patients),
            "seconds": round(build_seconds, 1),
            "stage_seconds": summary["seconds"],
        },
        "test_auroc": {k: round(v["auroc"], 4) for k, v in summary["test_auroc"].items()},
        "test_auroc_ci": {
            k: [round(v["low"], 4), round(v["high"], 4)] for k, v in summary["test_auroc"].items()
        },
        "oracle_auroc_by_modality_test": summary["oracle_auroc_test"],
        "warm_latency_ms_median": {
            k: round(1000 * statistics.median(v), 2) for k, v in timings.items()
        },
        "warm_latency_ms_p90": {
            k: round(1000 * float(np.percentile(v, 90)), 2) for k, v in timings.items()
        },
        "latency_patients": len(ids),
        "map_trust": trust,
        "forecast": forecast,
        "patient_explorer": explorer,
        "intervals": interval_section(service),
        "performance_page": performance_page,
        "picker_page_ms_median": picker,
        "fused_vs_logistic": small_cohort,
        "audit_seconds": time_audit(),
        "cli_help_seconds": time_cli_help(),
    }
    if import_patients > 0:
        from fusion.admin.cohort_import import bench_import

        result["import"] = bench_import(import_patients)
    if validation_mb > 0:
        from fusion.admin.cohort_import import bench_validation

        result["validation"] = bench_validation(validation_mb)
    return _write_result(settings, out, result)


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _write_result(settings: Settings, out: Path | None, result: dict[str, Any]) -> int:
    target = out or settings.artifacts_dir / "bench.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    logger.info("bench: wrote %s", target)
    return 0


def performance_page_payload(service: RiskService) -> dict[str, Any]:
    """Bytes of the performance page's figures as sent to the browser, and their build time.

    The admin's view (the beeswarm sample rather than the researcher's bins): the figures of
    :func:`fusion.reports.performance_figures.performance_figures`, each as ``fig.to_json()``.

    Returns
    -------
    dict of str to Any
        ``test_patients``, ``figure_json_bytes`` (summed), ``figure_json_bytes_by_figure`` and
        ``figures_seconds`` (building the figures from the report and the SHAP summary).
    """
    from fusion.reports.performance_figures import performance_figures

    report = service.performance()
    shap = service.test_shap()
    start = time.perf_counter()
    figures = performance_figures(report, shap, per_patient=True)
    sizes = {name: len(fig.to_json()) for name, fig in figures.items()}
    return {
        "test_patients": report.n,
        "figure_json_bytes": sum(sizes.values()),
        "figure_json_bytes_by_figure": sizes,
        "figures_seconds": round(time.perf_counter() - start, 3),
    }


def _one_patient(service: RiskService, patient_id: str) -> dict[str, float]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    service.predict(patient_id)
    times["predict"] = time.perf_counter() - start
    mark = time.perf_counter()
    service.explain(patient_id)
    times["explain"] = time.perf_counter() - mark
    mark = time.perf_counter()
    service.image_maps(patient_id, "gradcam")
    times["gradcam"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    return times


def _percentiles_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(1000 * float(np.percentile(seconds, 50)), 1),
        "p95": round(1000 * float(np.percentile(seconds, 95)), 1),
    }


def _timed(function: Any, patient_ids: list[str]) -> list[float]:
    seconds = []
    for pid in patient_ids:
        start = time.perf_counter()
        function(pid)
        seconds.append(time.perf_counter() - start)
    return seconds


def _explorer_section(
    service: RiskService, patient_ids: list[str], trust: dict[str, Any]
) -> dict[str, Any]:
    """Warm page compute (stored explanations) vs live compute, threads, index query.

    Torch runs Grad-CAM and LightGBM the fused model in the same process on 2 cores; the page
    compute is timed with torch at 1 and at 2 intra-op threads (LightGBM keeps the model's
    ``n_jobs``), so the choice is measured rather than assumed.
    """
    version = service.model_info().version
    previous = torch.get_num_threads()
    page: dict[str, dict[str, float]] = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            explorer_page_compute(service, patient_ids[0])  # warm-up
            page[f"torch_threads_{threads}"] = _percentiles_ms(
                _timed(lambda pid: explorer_page_compute(service, pid), patient_ids)
            )
    finally:
        torch.set_num_threads(previous)
    live = {
        "risk_and_shap": _percentiles_ms(
            _timed(lambda pid: (service.predict(pid), service.explain_live(pid)), patient_ids)
        ),
        "stored_shap_read": _percentiles_ms(_timed(service.explain, patient_ids)),
        "what_if_without_scan": _percentiles_ms(
            _timed(
                lambda pid: (
                    service.explain_without(pid, ["imaging"]),
                    service.risk_interval(pid, missing=["imaging"]),
                ),
                patient_ids,
            )
        ),
        "gradcam": _percentiles_ms(
            _timed(lambda pid: service.image_maps(pid, "gradcam"), patient_ids)
        ),
        "occlusion_median_ms": trust.get("occlusion_ms_per_patient_median"),
    }
    # Additivity of the stored values against the stored risks (logit), test split.
    risks = service.store.split_predictions([version], "test").set_index("patient_id")["risk"]
    worst, rows = 0.0, 0
    for ids, base, values in service.store.iter_explanations(version, split="test"):
        risk = risks.loc[ids].to_numpy(np.float64)
        logit = special.logit(risk)
        worst = max(worst, float(np.abs(base + values.sum(axis=1) - logit).max()))
        rows += len(ids)
    index = service.similarity_index
    similar: dict[str, Any] = {}
    if index is not None:
        query = index.vectors[0]
        similar["built_reference"] = index.vectors.shape[0]
        similar["built_ms"] = _percentiles_ms(
            _timed(lambda _: index.nearest(query, k=5), patient_ids * 5)
        )
        rng = np.random.default_rng(0)
        capped = SimilarityIndex(
            np.array([f"R{i:07d}" for i in range(MAX_REFERENCE)]),
            rng.normal(size=(MAX_REFERENCE, index.vectors.shape[1])).astype(np.float32),
        )
        similar["cap_reference"] = MAX_REFERENCE
        similar["cap_ms"] = _percentiles_ms(
            _timed(lambda _: capped.nearest(query, k=5, exclude=["R0000001"]), patient_ids * 5)
        )
    return {
        "page_compute_ms_stored_patient": page,
        "live_ms": live,
        "lightgbm_threads": service.model.n_jobs,
        "stored_shap_additivity_max_abs_test": worst,
        "stored_shap_rows_test": rows,
        "interval": service.interval_metrics(),
        "explanations_build": service.explanation_metrics(),
        "similar_query": similar,
    }


def _forecast_section(
    service: RiskService, patient_ids: list[str], summary: dict[str, Any]
) -> dict[str, Any]:
    """Forecast fit time and proof (from the build) and live per-patient latency."""
    seconds = []
    for pid in patient_ids:
        start = time.perf_counter()
        service.forecast(pid)
        seconds.append(time.perf_counter() - start)
    built = summary.get("forecast", {})
    proof = service.forecast_proof()
    effects = (
        {}
        if proof is None
        else {
            f"{row['method']} | {row['contrast']}": {
                "pehe": round(float(row["pehe"]), 4),
                "spearman": None if np.isnan(row["spearman"]) else round(float(row["spearman"]), 3),
                "mean_effect": round(float(row["mean_effect"]), 4),
                "true_mean_effect": round(float(row["true_mean_effect"]), 4),
            }
            for row in proof.to_dict("records")
        }
    )
    return {
        "measured_at_build_on": "test split (fusion.forecast.build.build_forecast)",
        "method": built.get("method"),
        "alternative": built.get("alternative"),
        "stage_seconds": summary.get("seconds", {}).get("forecast"),
        "fit_seconds": built.get("fit_seconds"),
        "effects": effects,
        "ece_true": built.get("ece_true"),
        "ece_km": built.get("ece_km"),
        "live_ms_per_patient_median": round(1000 * statistics.median(seconds), 1),
        "live_ms_per_patient_p90": round(1000 * float(np.percentile(seconds, 90)), 1),
    }


def imaging_trust_metrics(service: RiskService) -> dict[str, Any] | None:
    """The active imaging version's map trust figures and pass/fail of its targets (issue 16)."""
    trust = service.imaging_map_trust()
    if trust is None:
        return None
    return {**trust.to_metrics(), "informative": trust.informative, "checks": trust.checks()}


def _map_trust_section(service: RiskService, patient_ids: list[str]) -> dict[str, Any]:
    """Trust in the maps (measured by the build on the test split) and occlusion speed."""
    seconds = []
    for pid in patient_ids:
        start = time.perf_counter()
        service.image_maps(pid, "occlusion")
        seconds.append(time.perf_counter() - start)
    report = service.map_trust()
    return {
        "measured_at_build_on": "lesion-positive test scans (fusion.explanations.map_trust)",
        **({} if report is None else report.to_metrics()),
        "imaging_maps": imaging_trust_metrics(service),
        "occlusion_ms_per_patient_median": round(1000 * statistics.median(seconds), 1),
        "occlusion_ms_per_patient_p90": round(1000 * float(np.percentile(seconds, 90)), 1),
    }


CLI_HELP_REPEATS = 5


def time_cli_help(repeats: int = CLI_HELP_REPEATS) -> dict[str, float]:
    """Wall time of ``riskfusion --help`` in a fresh process: best and median of ``repeats``.

    Parameters
    ----------
    repeats : int, default=5
        Number of fresh processes started.

    Returns
    -------
    dict of str to float
        ``{"best": seconds, "median": seconds}``, rounded to milliseconds.
    """
    command = [sys.executable, "-m", "fusion.cli", "--help"]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    return {"best": round(min(seconds), 3), "median": round(statistics.median(seconds), 3)}


def time_audit(
    sizes: tuple[int, ...] = (100_000, 1_000_000), *, n_resamples: int = 200, seed: int = 0
) -> dict[str, float]:
    """Seconds of one bias audit of synthetic predictions per size (sex x ethnicity, 10 groups).

    Returns
    -------
    dict of str to float
        ``"<n>"`` -> wall seconds of :func:`fusion.evaluation.fairness.audit` with ``n_resamples``.
    """
    rng = np.random.default_rng(seed)
    seconds = {}
    for n in sizes:
        risk = rng.beta(2, 5, n)
        features = pd.DataFrame(
            {
                "sex": rng.choice(["F", "M"], n),
                "ethnicity": rng.choice(
                    ["A", "B", "C", "D", "E"], n, p=[0.6, 0.2, 0.1, 0.07, 0.03]
                ),
            }
        )
        y = (rng.uniform(size=n) < risk).astype(np.int64)
        start = time.perf_counter()
        audit(y, risk, features, threshold=0.3, n_resamples=n_resamples, random_state=seed)
        seconds[str(n)] = round(time.perf_counter() - start, 2)
        logger.info(
            "bench: audit of %d predictions, %d resamples: %.2f s", n, n_resamples, seconds[str(n)]
        )
    return seconds


def time_picker_pages(
    store: CohortStore, *, model_version: str | None = None, repeats: int = 5
) -> dict[str, float]:
    """Milliseconds (median of ``repeats``) of the picker's first and last page reads.

    The reads the patient picker makes: one keyset page of :data:`PICKER_PAGE` rows plus one,
    of all patients and of the test split, from the start and from the end of the list (the
    last page is read backwards with ``LIMIT``, so it costs what the first does).

    Returns
    -------
    dict of str to float
        ``"<all|test>_<first|last>"`` -> median milliseconds.
    """
    seconds: dict[str, list[float]] = {}
    for split in (None, "test"):
        for end in ("first", "last"):
            name = f"{split or 'all'}_{end}"
            seconds[name] = []
            for _ in range(repeats):
                start = time.perf_counter()
                store.search_patients(
                    split=split,
                    model_version=model_version,
                    limit=PICKER_PAGE + 1,
                    from_end=end == "last",
                )
                seconds[name].append(time.perf_counter() - start)
    result = {name: round(1000 * statistics.median(v), 2) for name, v in seconds.items()}
    logger.info("bench: picker page reads (ms, median of %d): %s", repeats, result)
    return result
