"""Serving a fusion version's logistic baseline: ``riskfusion activate --baseline logistic``.

Owns :func:`activate_baseline`. When the logistic regression beats the fused model beyond noise
(:mod:`fusion.training.logistic_baseline`), the user can serve it instead. It becomes a fusion
version of its own (params ``model_type: logistic`` and ``served_from``), so every page, the
scorer and the registry work unchanged: its risk for every stored patient, its exact linear
SHAP per patient (``shap.LinearExplainer``) with the similar-patient index, the parent's
single-modality baselines and its fused LightGBM (part ``lightgbm``) as comparison rows on the
performance page, and the same completion check and one-transaction activation as a trained
version. It has no risk interval and no treatment forecast (those were built for the LightGBM
model): the pages say so. Activating it again later reuses the served version. Must not import
streamlit.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from data.artifacts import file_digest
from data.store import AuditEntry, CohortStore, ModelRecord
from fusion.features import FeatureSet, build_feature_matrix, image_scores
from fusion.logistic import LogisticBaseline
from fusion.training.logistic_baseline import LOGISTIC_KIND, LOGISTIC_PART
from fusion.training.serving_artifacts import EXPLANATIONS_SUFFIX, store_explanations
from fusion.training.train import new_version
from fusion.training.versions import (
    PLANNED_PARAM,
    activate_version,
    check_version,
    completion_record,
)

__all__ = [
    "FUSED_PART",
    "MODEL_TYPE_PARAM",
    "SERVED_FROM_PARAM",
    "activate_baseline",
    "served_baseline",
]

MODEL_TYPE_PARAM = "model_type"
"""Fusion-version params key: ``logistic`` for a served baseline (absent: LightGBM)."""
SERVED_FROM_PARAM = "served_from"
"""Fusion-version params key: ``{"fusion_version": parent, "baseline": name}``."""
FUSED_PART = "lightgbm"
"""Part of a served baseline's version: the parent's fused LightGBM, a comparison row."""
BASELINES_SERVED = {LOGISTIC_PART: LOGISTIC_KIND}


def _served_version(
    records: dict[str, ModelRecord], artifacts_dir: Path, parent: str, name: str
) -> str | None:
    """A complete version that already serves ``parent``'s baseline ``name``, if any."""
    for version, record in records.items():
        source = record.params.get(SERVED_FROM_PARAM)
        if (
            record.kind == "fusion"
            and source == {"fusion_version": parent, "baseline": name}
            and check_version(records, artifacts_dir, version).complete
        ):
            return version
    return None


def activate_baseline(
    store: CohortStore,
    artifacts_dir: Path,
    name: str = LOGISTIC_PART,
    *,
    fusion_version: str | None = None,
    audit: AuditEntry | None = None,
    random_state: int = 0,
) -> str:
    """Serve the baseline ``name`` of a fusion version (default: the active one).

    Parameters
    ----------
    store : CohortStore
        The cohort store.
    artifacts_dir : Path
        Root of the model files.
    name : str, default="logistic"
        The baseline to serve (only ``logistic`` can serve).
    fusion_version : str, optional
        The fusion version whose baseline is served (default: the active version).
    audit : AuditEntry, optional
        Written with the activation (action ``activate_model``), in its transaction.
    random_state : int, default=0
        Seed of the similar-patient reference set.

    Returns
    -------
    str
        The fusion version that serves the baseline, now active.

    Raises
    ------
    ValueError
        If ``name`` cannot serve, or the version has no such baseline (retrain).
    KeyError
        If ``fusion_version`` is not a registered fusion version.
    """
    if name not in BASELINES_SERVED:
        raise ValueError(
            f"Baseline {name!r} cannot be served; choose one of {sorted(BASELINES_SERVED)}."
        )
    records = {record.version: record for record in store.list_models()}
    parent = fusion_version or store.active_model("fusion").version
    fusion = records.get(parent)
    if fusion is None or fusion.kind != "fusion":
        known = [v for v, r in records.items() if r.kind == "fusion"]
        raise KeyError(f"{parent!r} is not a registered fusion version; registered: {known}.")
    if SERVED_FROM_PARAM in fusion.params:
        raise ValueError(
            f"{parent} already serves the {fusion.params[SERVED_FROM_PARAM]['baseline']} "
            "baseline of "
            f"{fusion.params[SERVED_FROM_PARAM]['fusion_version']}; nothing else to activate."
        )
    part = records.get(f"{parent}-{name}")
    if part is None or part.kind != BASELINES_SERVED[name]:
        raise ValueError(
            f"Fusion version {parent} has no {name} baseline (it was trained before baselines "
            "were kept); run `riskfusion train` to fit one."
        )
    existing = _served_version(records, artifacts_dir, parent, name)
    if existing is not None:
        activate_version(store, artifacts_dir, existing, audit=audit)
        return existing
    return _build_served_version(store, artifacts_dir, records, fusion, part, audit, random_state)


def _build_served_version(
    store: CohortStore,
    artifacts_dir: Path,
    records: dict[str, ModelRecord],
    fusion: ModelRecord,
    part: ModelRecord,
    audit: AuditEntry | None,
    random_state: int,
) -> str:
    model = LogisticBaseline.load(artifacts_dir / part.artifact_path, expected_sha256=part.sha256)
    imaging = records[fusion.parent_version or ""]
    features = FeatureSet.from_catalog(store.feature_catalog())
    if list(features.names) != list(model.feature_names):
        raise ValueError(
            f"The {part.version} inputs differ from the store's feature catalogue (the cohort "
            "changed since training); run `riskfusion train` again."
        )
    frame = store.load_patient_frame()
    scores = image_scores(store.load_embeddings(imaging.version), imaging.params["logit_scaling"])
    X = build_feature_matrix(frame.join(scores, on="patient_id"), features)
    version = new_version("fusion")
    folder = artifacts_dir / "models" / version
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "logistic.json"
    shutil.copyfile(artifacts_dir / part.artifact_path, path)
    prefix = f"{fusion.version}-"
    name = part.version.removeprefix(prefix)
    copied = {
        r.version.removeprefix(prefix): r
        for r in records.values()
        if r.version.startswith(prefix) and r.kind.startswith("baseline_") and r.kind != part.kind
    }
    planned = [*copied, FUSED_PART, EXPLANATIONS_SUFFIX.removeprefix("-")]
    metrics: dict[str, Any] = {
        "test_auroc": part.metrics["test_auroc"],
        "test_auroc_ci": part.metrics.get("test_auroc_ci"),
        "threshold": part.metrics.get("threshold", 0.5),
        "baselines": {
            **{k: v for k, v in fusion.metrics.get("baselines", {}).items() if k != name},
            FUSED_PART: fusion.metrics["test_auroc"],
        },
        "oracle_test_auroc": fusion.metrics.get("oracle_test_auroc", {}),
        **{k: fusion.metrics[k] for k in ("n_train", "n_val", "n_test") if k in fusion.metrics},
    }
    store.register_artifact(
        version,
        "fusion",
        str(path.relative_to(artifacts_dir)),
        file_digest(path),
        metrics=metrics,
        params={
            MODEL_TYPE_PARAM: "logistic",
            SERVED_FROM_PARAM: {
                "fusion_version": fusion.version,
                "baseline": name,
            },
            "build": fusion.params.get("build", {}),
            "features": list(features.names),
            "training_data": fusion.params.get("training_data", {}),
            PLANNED_PARAM: planned,
        },
        parent_version=imaging.version,
    )
    comparison = store.split_predictions(
        [r.version for r in copied.values()] + [fusion.version], "test"
    )
    for suffix, record in [*copied.items(), (FUSED_PART, fusion)]:
        rows = comparison.loc[comparison["model_version"] == record.version]
        store.register_artifact(
            f"{version}-{suffix}",
            record.kind if record is not fusion else f"baseline_{FUSED_PART}",
            record.artifact_path,
            record.sha256,
            metrics={"test_auroc": record.metrics.get("test_auroc")},
            params={**record.params, "copied_from": record.version},
            parent_version=version,
        )
        store.write_predictions(f"{version}-{suffix}", rows["patient_id"].tolist(), rows["risk"])
    store.write_predictions(version, X.index.tolist(), model.predict_proba(X)[:, 1])
    store_explanations(
        store,
        version,
        model,
        X,
        frame["split"].to_numpy(),
        folder / "similar.npz",
        artifacts_dir,
        random_state=random_state,
    )
    completion = completion_record(
        store,
        artifacts_dir,
        version,
        planned,
        n_patients=len(frame),
        n_embeddings=store.count_embeddings(imaging.version),
    )
    store.complete_version(
        version,
        completion,
        activate=[version, *completion["parts"]],
        audit=None if audit is None else replace(audit, model_version=version),
    )
    return version


def served_baseline(params: Mapping[str, Any]) -> dict[str, str] | None:
    """``{"fusion_version", "baseline"}`` of a version that serves a baseline, else None."""
    source = params.get(SERVED_FROM_PARAM)
    return {str(k): str(v) for k, v in source.items()} if isinstance(source, Mapping) else None
