"""``riskfusion bench`` section: fused vs logistic on the demo and on a 200-patient demo subsample.

Owns :func:`small_cohort_section`: the fused model's and its logistic baseline's test AUROC (the
paired comparison recorded at training), the capacity the cross-validation chose and the
metrics of the version's risk-interval part (printed as stored, whatever they are) for the
bench's full demo and for a 200-patient demo built with the same seed in a temporary home
(``riskfusion demo --no-serve --patients 200``: ``generate_cohort(200, seed)``). LightGBM tuned
for 2,000 patients overfitted about 120 (issue 15); this is where that is measured.
Streamlit is never imported here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from data.store import CohortStore, make_engine
from fusion.features import FeatureSet, image_scores
from fusion.settings import Settings
from fusion.training.logistic_baseline import LOGISTIC_PART, comparison_of
from fusion.training.serving_artifacts import INTERVAL_KIND

__all__ = ["SMALL_PATIENTS", "compare_capacities", "model_comparison", "small_cohort_section"]

logger = logging.getLogger(__name__)

SMALL_PATIENTS = 200


def _rounded(value: Any) -> Any:
    """Floats rounded to 4 digits, inside lists and mappings too."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def model_comparison(store: CohortStore) -> dict[str, Any]:
    """The active version's fused vs logistic test AUROC, capacity and interval metrics.

    Returns
    -------
    dict
        ``version``, ``fused_auroc`` with ``fused_auroc_ci``, ``logistic_auroc``,
        ``difference`` with ``difference_ci`` (paired bootstrap, fused minus logistic),
        ``baseline_better``, ``capacity`` (the chosen LightGBM settings and CV score) and
        ``interval`` (the interval part's metrics as stored; empty without one).
    """
    record = store.active_model("fusion")
    comparison = comparison_of(record.metrics)
    interval = store.artifact_of(record.version, INTERVAL_KIND)
    capacity = dict(record.params.get("capacity", {}))
    capacity.pop("grid", None)  # every grid point is in the registry; the choice is enough here
    result: dict[str, Any] = {
        "version": record.version,
        "n_test": record.metrics.get("n_test"),
        "fused_auroc": record.metrics.get("test_auroc"),
        "fused_auroc_ci": record.metrics.get("test_auroc_ci"),
        "logistic_auroc": record.metrics.get("baselines", {}).get(LOGISTIC_PART),
        "capacity": capacity,
        "interval": {} if interval is None else dict(interval.metrics),
    }
    if comparison is not None:
        result |= {
            "difference": comparison.difference,
            "difference_ci": [comparison.low, comparison.high],
            "baseline_better": comparison.baseline_better,
        }
    return dict(_rounded(result))


def compare_capacities(
    store: CohortStore, *, min_child_samples: int | None = 20, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """The fusion stage refitted on a built store: fixed capacity vs the CV choice.

    Uses the active imaging version's stored image scores, so both fits see the same inputs
    (no imaging retraining); ``min_child_samples`` is the fixed setting compared (20: the demo
    build's; None: ``riskfusion train``'s former ``n_train // 20`` within 5-20). Returns, per
    setting, the LightGBM settings used and every model's test AUROC (logistic included).
    """
    from fusion.training.fusion_stage import fit_fusion_stage
    from fusion.training.train import BASELINES

    imaging = store.active_model("imaging")
    frame = store.load_patient_frame()
    scores = image_scores(store.load_embeddings(imaging.version), imaging.params["logit_scaling"])
    frame = frame.join(scores, on="patient_id")
    full = FeatureSet.from_catalog(store.feature_catalog())
    masks = {s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    baselines = {k: v for k, v in BASELINES.items() if set(v) <= set(full.modalities)}
    result: dict[str, dict[str, Any]] = {}
    for capacity in ("fixed", "cv"):
        stage = fit_fusion_stage(
            frame,
            full,
            baselines,
            masks,
            capacity=capacity,  # type: ignore[arg-type]
            min_child_samples=min_child_samples,
            seed=seed,
            say=logger.info,
        )
        result[capacity] = {
            "params": stage.capacity_params,
            "test_auroc": {k: round(v["auroc"], 4) for k, v in stage.test_auroc.items()},
            "fused_minus_logistic_ci": [stage.comparison.low, stage.comparison.high],
        }
    return result


def _log(name: str, figures: Mapping[str, Any]) -> None:
    logger.info(
        "bench: %s: test AUROC fused %s vs logistic %s; fused minus logistic %s (95%% CI %s); "
        "capacity %s",
        name,
        figures.get("fused_auroc"),
        figures.get("logistic_auroc"),
        figures.get("difference"),
        figures.get("difference_ci"),
        {k: v for k, v in figures.get("capacity", {}).items() if k != "method"},
    )
    interval = figures.get("interval", {})
    scalars = {k: v for k, v in interval.items() if not isinstance(v, Mapping | list)}
    nested = sorted(k for k in interval if k not in scalars)
    logger.info(
        "bench: %s: interval part metrics %s%s",
        name,
        scalars or "(no interval part)",
        f" (and {', '.join(nested)} in bench.json)" if nested else "",
    )


def small_cohort_section(
    demo_store: CohortStore, *, n_patients: int = SMALL_PATIENTS, seed: int = 0
) -> dict[str, Any]:
    """Fused vs logistic (and interval metrics) on the bench's demo and a small demo subsample.

    Parameters
    ----------
    demo_store : CohortStore
        The store of the bench's full demo build.
    n_patients : int, default=200
        Size of the small demo built in a temporary home.
    seed : int, default=0
        Its seed (the bench's demo seed: the same synthetic world, fewer patients).

    Returns
    -------
    dict
        ``{"demo": ..., "small": ...}``, each from :func:`model_comparison`; ``small`` also
        holds ``n_patients``.
    """
    demo = model_comparison(demo_store)
    _log("demo", demo)
    with tempfile.TemporaryDirectory(prefix="riskfusion-bench-small-") as home:
        env = {**os.environ, "RISKFUSION_HOME": home}
        env.pop("RISKFUSION_DATABASE_URL", None)
        command = [sys.executable, "-m", "fusion.cli", "demo", "--no-serve"]
        command += ["--patients", str(n_patients), "--seed", str(seed)]
        logger.info("bench: building a %d-patient demo (seed %d)", n_patients, seed)
        subprocess.run(command, env=env, check=True)
        settings = Settings.from_env({"RISKFUSION_HOME": home})
        store = CohortStore(make_engine(settings.database_url))
        try:
            small = {"n_patients": n_patients, **model_comparison(store)}
        finally:
            store.engine.dispose()
    _log(f"{n_patients}-patient demo", small)
    return {"demo": demo, "small": small}
