"""The frozen result records that the use cases return and the pages and reports read.

Owns :class:`ModelInfo`, :class:`RiskResult`, :class:`PatientExplanation`, :class:`ImageMaps`,
:class:`WhatIfResult` and the map option names (:data:`MAP_METHODS`; the maskable
modalities are :data:`data.vocabulary.MASKABLE_MODALITIES`). Records only: numpy and pandas,
no model, no store; must not import any other ``fusion`` module, streamlit or the dashboard,
so that the service, the what-if and the reports can all import it without a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "MAP_METHODS",
    "ImageMaps",
    "MapMethod",
    "ModelInfo",
    "PatientExplanation",
    "RiskResult",
    "WhatIfResult",
]

MapMethod = Literal["gradcam", "gradcampp", "occlusion"]
MAP_METHODS: tuple[MapMethod, ...] = ("gradcam", "gradcampp", "occlusion")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The active fusion model as the pages describe it."""

    version: str
    imaging_version: str
    created_at: str
    test_auroc: float
    test_auroc_ci: tuple[float, float]
    baselines: Mapping[str, float]
    oracle: Mapping[str, float]
    threshold: float
    n_features: int


@dataclass(frozen=True, slots=True)
class RiskResult:
    """One patient's fused risk under the active model."""

    patient_id: str
    risk: float
    model_version: str
    threshold: float
    split: str
    label: int | None
    true_risk: float | None
    image_score: float | None
    age: float | None = None
    sex: str | None = None
    site: str | None = None
    cohort: str | None = None  # the identity facts above are read with the risk's inputs

    @property
    def flagged(self) -> bool:
        """Whether the risk is at or above the decision threshold."""
        return self.risk >= self.threshold


@dataclass(frozen=True, slots=True)
class PatientExplanation:
    """Exact TreeSHAP attribution of one patient's fused risk, in log-odds.

    Attributes
    ----------
    risk : float
        Fused risk.
    base_value : float
        Model's average margin (log-odds).
    margin : float
        ``base_value + contributions["shap"].sum()``; ``sigmoid(margin) == risk``.
    contributions : DataFrame
        One row per input, sorted by ``|shap|`` descending: ``feature, label, unit, modality,
        value, shap``.
    modality_totals : Mapping[str, float]
        SHAP summed per modality.
    source : {"live", "store"}
        ``"store"``: read from the batch explanations of the model version; ``"live"``:
        computed for this request (new patients, what-ifs).
    """

    risk: float
    base_value: float
    margin: float
    contributions: pd.DataFrame
    modality_totals: Mapping[str, float]
    source: Literal["live", "store"] = "live"


@dataclass(frozen=True, slots=True)
class ImageMaps:
    """A scan with one saliency map and, for synthetic cohorts, the true lesion mask.

    ``image`` is min-max scaled to [0, 1] for display; ``saliency`` is in [0, 1] with
    1 = most important; both have the scan's shape (H, W).
    """

    image: npt.NDArray[np.float32]
    saliency: npt.NDArray[np.float32]
    lesion_mask: npt.NDArray[np.uint8] | None
    method: MapMethod
    n_nets: int


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    """One patient's risk and SHAP attribution before and after what-if edits.

    Attributes
    ----------
    patient_id : str
        The patient.
    overrides : Mapping[str, float]
        The validated edits.
    before, after : PatientExplanation
        Risk, exact TreeSHAP values and per-modality sums of the recorded and the edited inputs
        (the image score is the same in both).
    changes : DataFrame
        One row per edited input: ``feature, label, unit, before, after`` (``before`` NaN when
        not recorded).
    """

    patient_id: str
    overrides: Mapping[str, float]
    before: PatientExplanation
    after: PatientExplanation
    changes: pd.DataFrame

    @property
    def risk_change(self) -> float:
        """Risk after minus risk before (probability points as a fraction)."""
        return self.after.risk - self.before.risk

    def modality_changes(self) -> dict[str, float]:
        """Change of each modality's summed SHAP value (log-odds), after minus before."""
        return {
            name: self.after.modality_totals[name] - total
            for name, total in self.before.modality_totals.items()
        }
