"""``riskfusion bench`` (``make bench``): measured figures of the demo on this machine.

Owns the benchmark: wall time of ``riskfusion demo --no-serve`` in a fresh temporary home, the
test AUROC of fusion vs each single modality vs the oracle (from that build), and the warm
latency of one patient's risk + SHAP + Grad-CAM. Prints them and writes ``bench.json``. Speed is
measured here, never asserted in tests. Must not import streamlit.
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

from fusion.fairness import audit
from fusion.service import RiskService
from fusion.settings import Settings

__all__ = ["run_bench"]

logger = logging.getLogger(__name__)

LATENCY_PATIENTS = 20


def run_bench(settings: Settings, *, n_patients: int = 2000, out: Path | None = None) -> int:
    """Build the demo from scratch in a temporary home, then time per-patient work.

    Parameters
    ----------
    settings : Settings
        Where ``bench.json`` goes (``settings.artifacts_dir``) unless ``out`` is given.
    n_patients : int, default=2000
        Cohort size of the timed build.
    out : Path, optional
        Output JSON file.

    Returns
    -------
    int
        Exit status (0 on success).
    """
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

    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
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
        "audit_seconds": time_audit(),
    }
    target = out or settings.artifacts_dir / "bench.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    logger.info("bench: wrote %s", target)
    return 0


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


def _map_trust_section(service: RiskService, patient_ids: list[str]) -> dict[str, Any]:
    """Issue 3: trust in the maps (measured by the build on the test split) and occlusion speed."""
    seconds = []
    for pid in patient_ids:
        start = time.perf_counter()
        service.image_maps(pid, "occlusion")
        seconds.append(time.perf_counter() - start)
    report = service.map_trust()
    return {
        "measured_at_build_on": "lesion-positive test scans (fusion.explain_eval)",
        **({} if report is None else report.to_metrics()),
        "occlusion_ms_per_patient_median": round(1000 * statistics.median(seconds), 1),
        "occlusion_ms_per_patient_p90": round(1000 * float(np.percentile(seconds, 90)), 1),
    }


def time_audit(
    sizes: tuple[int, ...] = (100_000, 1_000_000), *, n_resamples: int = 200, seed: int = 0
) -> dict[str, float]:
    """Seconds of one bias audit of synthetic predictions per size (sex x ethnicity, 10 groups).

    Returns
    -------
    dict of str to float
        ``"<n>"`` -> wall seconds of :func:`fusion.fairness.audit` with ``n_resamples``.
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
