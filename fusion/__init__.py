"""Fusion layer: tabular features, the LightGBM fusion model, SHAP, evaluation and use cases.

Turns stored records and image scores into risk. ``fusion.service.facade.RiskService`` holds the use
cases the pages call; ``fusion.training.train`` trains and scores any stored cohort,
``fusion.training.demo_build`` builds the demo on it; ``fusion.cli`` is the ``riskfusion``
command line. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

from fusion.evaluation.fairness import FairnessReport, audit
from fusion.evaluation.metrics import AurocEstimate, auroc_with_ci, youden_threshold
from fusion.explain import ShapResult, make_explainer, modality_sums, shap_values
from fusion.features import IMAGE_FEATURE, FeatureSet, build_feature_matrix
from fusion.forecast.hazard import HazardForecaster, PatientForecast
from fusion.model import FusionClassifier
from fusion.service.facade import ImageMaps, ModelInfo, PatientExplanation, RiskResult, RiskService
from fusion.settings import Settings
from fusion.training.demo_build import BuildConfig, BuildSummary, build_demo
from fusion.training.train import TrainingConfig, TrainingSummary, score_cohort, train_cohort

__all__ = [
    "IMAGE_FEATURE",
    "AurocEstimate",
    "BuildConfig",
    "BuildSummary",
    "FairnessReport",
    "FeatureSet",
    "FusionClassifier",
    "HazardForecaster",
    "ImageMaps",
    "ModelInfo",
    "PatientExplanation",
    "PatientForecast",
    "RiskResult",
    "RiskService",
    "Settings",
    "ShapResult",
    "TrainingConfig",
    "TrainingSummary",
    "audit",
    "auroc_with_ci",
    "build_demo",
    "build_feature_matrix",
    "make_explainer",
    "modality_sums",
    "score_cohort",
    "shap_values",
    "train_cohort",
    "youden_threshold",
]
