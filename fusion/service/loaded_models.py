"""The active models of one serving process, loaded once and verified against the registry.

Owns :class:`LoadedModels` (the fusion model, its TreeSHAP explainer, the imaging nets and their
Grad-CAM explainers, the feature set, the interval calibration and the similar-patient index of
the active version), :func:`load_models` (every file checked against its registered SHA-256),
:func:`with_explanations` (the newest similar-patient index, which ``riskfusion score``
refreshes under the same version) and :func:`model_info`. Must not import streamlit, the
dashboard or the other use-case modules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from data.artifacts import REBUILD_HINT, verified_file
from data.errors import ArtifactIntegrityError
from data.store import CohortStore, ModelRecord
from fusion.explain import RiskModel, make_explainer
from fusion.explanations.similar import SimilarityIndex, load_index
from fusion.features import FeatureSet
from fusion.interval_calibration import FORMAT_VERSION as CALIBRATION_FORMAT
from fusion.interval_calibration import IntervalCalibration, load_calibration
from fusion.logistic import LogisticBaseline
from fusion.model import FusionClassifier
from fusion.records import ModelInfo
from fusion.training.modality_value import unused_modalities
from fusion.training.serving_artifacts import EXPLANATIONS_KIND, INTERVAL_KIND
from models.gradcam import GradCamExplainer
from models.nets import RiskCNN, load_net

__all__ = [
    "NO_INTERVAL_REASON",
    "LoadedModels",
    "configure_threads",
    "load_models",
    "load_nets",
    "load_risk_model",
    "model_info",
    "with_explanations",
]

NO_INTERVAL_REASON = (
    "no interval: the active model was built without a calibrated risk interval (or with an "
    "older method); retrain it (`riskfusion train`) to calibrate one"
)


def configure_threads(torch_threads: int = 1) -> None:
    """Set torch's intra-op threads for per-request work (call once per serving process).

    One request explains one scan; with 2 cores shared by LightGBM's OpenMP threads and other
    sessions, a second torch thread oversubscribes the cores (``riskfusion bench``,
    ``patient_explorer.page_compute_ms_stored_patient``; see ``docs/models.md``).

    Raises
    ------
    ValueError
        If ``torch_threads`` is below 1.
    """
    if torch_threads < 1:
        raise ValueError(f"torch_threads={torch_threads}; pass a positive thread count (1).")
    torch.set_num_threads(torch_threads)


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """The active version's models and serving artifacts (read-only, shared by requests).

    Attributes
    ----------
    fusion_record, imaging_record : ModelRecord
        Registry rows of the active fusion and imaging models.
    model : FusionClassifier or LogisticBaseline
        The served model: the fused LightGBM, or the logistic baseline a user activated
        (``riskfusion activate --baseline logistic``; registry params ``model_type``).
    tree_explainer : shap.TreeExplainer or shap.LinearExplainer
        Its exact SHAP explainer (TreeSHAP; LinearSHAP for the logistic baseline).
    nets : tuple of RiskCNN
        One imaging net per fold.
    explainers : tuple of GradCamExplainer
        One Grad-CAM explainer per net.
    features : FeatureSet
        The model inputs in model order (names, labels, units, modalities).
    interval_record, explanations_record : ModelRecord or None
        The interval calibration and batch explanations built with the version (None if absent).
    interval_calibration : IntervalCalibration or None
        The risk interval's calibration (None if the version serves no interval).
    interval_reason : str
        Why no interval is served (too few patients to calibrate one, or none built); empty
        when one is.
    similarity_index : SimilarityIndex or None
        The similar-patient index (None if the version has none).
    """

    fusion_record: ModelRecord
    imaging_record: ModelRecord
    model: RiskModel
    tree_explainer: Any
    nets: tuple[RiskCNN, ...]
    explainers: tuple[GradCamExplainer, ...]
    features: FeatureSet
    interval_record: ModelRecord | None
    explanations_record: ModelRecord | None
    interval_calibration: IntervalCalibration | None
    similarity_index: SimilarityIndex | None
    interval_reason: str = ""

    @property
    def version(self) -> str:
        """The active fusion version."""
        return self.fusion_record.version

    @property
    def unused_modalities(self) -> tuple[str, ...]:
        """Modalities the risk does not use (dropped by the modality-value rule at training)."""
        return unused_modalities(self.fusion_record.metrics.get("modality_value"))

    @property
    def logit_scaling(self) -> Any:
        """How the imaging nets' logits become the image score (see ``image_scores``)."""
        return self.imaging_record.params["logit_scaling"]


def load_nets(record: ModelRecord, artifacts_dir: Path) -> tuple[RiskCNN, ...]:
    """The imaging nets named by the record's manifest, each verified against its SHA-256.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the manifest or a net is missing or differs from its registered SHA-256.
    """
    folder = artifacts_dir / record.artifact_path
    manifest = folder / "manifest.json"
    verified_file(manifest, record.sha256, what="Imaging manifest")
    nets: dict[str, str] = json.loads(manifest.read_text())["nets"]
    return tuple(load_net(folder / name, expected_sha256=sha) for name, sha in sorted(nets.items()))


def load_models(store: CohortStore, artifacts_dir: Path) -> LoadedModels:
    """Load the store's active fusion and imaging models and the version's serving artifacts.

    Raises
    ------
    data.errors.StoreNotBuiltError
        If no fusion or imaging model is active.
    data.errors.ArtifactIntegrityError
        If a model file is missing or differs from its registered SHA-256, or the fusion
        model's inputs differ from the store's feature catalogue.
    """
    fusion_record = store.active_model("fusion")
    imaging_record = store.active_model("imaging")
    model = load_risk_model(fusion_record, artifacts_dir)
    nets = load_nets(imaging_record, artifacts_dir)
    features = FeatureSet.from_catalog(store.feature_catalog())
    if list(features.names) != list(model.feature_names):
        raise ArtifactIntegrityError(
            "The fusion model's feature list differs from the store's feature catalogue; "
            f"{REBUILD_HINT}."
        )
    interval_record = store.artifact_of(fusion_record.version, INTERVAL_KIND)
    explanations_record = store.artifact_of(fusion_record.version, EXPLANATIONS_KIND)
    # A build from before the out-of-fold interval has none until it is retrained.
    calibration = (
        None
        if interval_record is None
        or interval_record.params.get("format_version") != CALIBRATION_FORMAT
        else load_calibration(
            artifacts_dir / interval_record.artifact_path, expected_sha256=interval_record.sha256
        )
    )
    reason = NO_INTERVAL_REASON if calibration is None else calibration.reason
    return LoadedModels(
        fusion_record=fusion_record,
        imaging_record=imaging_record,
        model=model,
        tree_explainer=make_explainer(model),
        nets=nets,
        explainers=tuple(GradCamExplainer(net) for net in nets),
        features=features,
        interval_record=interval_record,
        explanations_record=explanations_record,
        interval_calibration=calibration if calibration and calibration.available else None,
        similarity_index=_load_index(explanations_record, artifacts_dir),
        interval_reason=reason,
    )


def load_risk_model(record: ModelRecord, artifacts_dir: Path) -> RiskModel:
    """The model a fusion record serves, verified: LightGBM text, or the logistic JSON.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the file is missing or differs from the record's SHA-256.
    """
    path = artifacts_dir / record.artifact_path
    if record.params.get("model_type") == "logistic":
        return LogisticBaseline.load(path, expected_sha256=record.sha256)
    return FusionClassifier.load(path, expected_sha256=record.sha256)


def _load_index(record: ModelRecord | None, artifacts_dir: Path) -> SimilarityIndex | None:
    """The similar-patient index of an explanations record (verified), or None without one."""
    if record is None:
        return None
    return load_index(artifacts_dir / record.artifact_path, expected_sha256=record.sha256)


def with_explanations(
    store: CohortStore, models: LoadedModels, artifacts_dir: Path, explanations_version: str
) -> LoadedModels:
    """``models`` with the version's newest explanations artifact and similar-patient index.

    ``explanations_version`` is the newest one's registry version as the caller's data stamp
    read it (:class:`data.store.DataStamp`); when ``models`` already hold it they are returned
    as they are (no query), otherwise the newest artifact is read and its index loaded.

    Raises
    ------
    data.errors.ArtifactIntegrityError
        If the index file is missing or differs from its registered SHA-256.
    """
    held = models.explanations_record
    if (held.version if held is not None else "") == explanations_version:
        return models
    record = store.artifact_of(models.version, EXPLANATIONS_KIND)
    return replace(
        models,
        explanations_record=record,
        similarity_index=_load_index(record, artifacts_dir),
    )


def model_info(models: LoadedModels) -> ModelInfo:
    """The active fusion model, its test AUROC, baselines and threshold."""
    record, metrics = models.fusion_record, models.fusion_record.metrics
    ci = metrics.get("test_auroc_ci", [float("nan"), float("nan")])
    return ModelInfo(
        version=record.version,
        imaging_version=models.imaging_record.version,
        created_at=record.created_at.isoformat(timespec="seconds"),
        test_auroc=float(metrics["test_auroc"]),
        test_auroc_ci=(float(ci[0]), float(ci[1])),
        baselines={k: float(v) for k, v in metrics.get("baselines", {}).items()},
        oracle={k: float(v) for k, v in metrics.get("oracle_test_auroc", {}).items()},
        threshold=float(metrics.get("threshold", 0.5)),
        n_features=len(models.features.names),
    )
