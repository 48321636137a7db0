"""The served model against its logistic baseline: what the performance page says and offers.

Owns :func:`baseline_status` (the paired test comparison recorded at training, and whether the
active version serves a baseline) and :func:`serve_baseline` (an admin's activation of the
logistic baseline from the page, with its audit event). Must not import streamlit or the
dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.store import AuditEntry, CohortStore
from fusion.admin.access import AccessDeniedError, Identity
from fusion.service.loaded_models import LoadedModels
from fusion.training.baseline_activation import activate_baseline, served_baseline
from fusion.training.logistic_baseline import BaselineComparison, comparison_of

__all__ = ["BaselineStatus", "baseline_status", "serve_baseline", "shap_method_words"]


@dataclass(frozen=True, slots=True)
class BaselineStatus:
    """The active version against its logistic baseline.

    Attributes
    ----------
    comparison : BaselineComparison or None
        The paired test comparison recorded at training (None for a version trained before it,
        or one that serves the baseline).
    served_from : dict of str to str or None
        ``{"fusion_version", "baseline"}`` when the active version serves a baseline.
    """

    comparison: BaselineComparison | None
    served_from: dict[str, str] | None

    @property
    def offer_baseline(self) -> bool:
        """Whether to offer serving the baseline (it is better beyond noise, not yet served)."""
        return (
            self.served_from is None
            and self.comparison is not None
            and self.comparison.baseline_better
        )

    def served_words(self) -> str | None:
        """Plain words for a version that serves a baseline (None otherwise)."""
        if self.served_from is None:
            return None
        return (
            f"This version serves the {self.served_from['baseline']} regression baseline of "
            f"{self.served_from['fusion_version']} (activated because it was better than the "
            "fused model on the test split). Its risks and SHAP values are the logistic "
            "model's; the row 'Fusion (all modalities)' below is that model, and 'Fused "
            "LightGBM' is the model it replaced. It has no risk interval and no treatment "
            "forecast."
        )


def baseline_status(models: LoadedModels) -> BaselineStatus:
    """The comparison and the served baseline of the active version (no query)."""
    record = models.fusion_record
    return BaselineStatus(
        comparison=comparison_of(record.metrics),
        served_from=served_baseline(record.params),
    )


def shap_method_words(models: LoadedModels) -> str:
    """What the SHAP values of the served model are, for captions."""
    if served_baseline(models.fusion_record.params) is not None:
        return (
            "Exact linear SHAP values of the logistic regression (served instead of the fused "
            "model)"
        )
    return "Exact TreeSHAP values of the fused model"


def serve_baseline(
    store: CohortStore,
    artifacts_dir: Path,
    models: LoadedModels,
    identity: Identity,
    name: str = "logistic",
) -> str:
    """Serve the active version's baseline ``name`` (admins only); return the new version.

    Raises
    ------
    fusion.admin.access.AccessDeniedError
        If ``identity`` is not an admin.
    ValueError
        If the version has no such baseline.
    """
    if identity.role != "admin":
        raise AccessDeniedError(
            f"Only an admin can change the served model; {identity.user!r} is a "
            f"{identity.role}. Ask an admin, or run `riskfusion activate --baseline {name}`."
        )
    return activate_baseline(
        store,
        artifacts_dir,
        name,
        fusion_version=models.version,
        audit=AuditEntry(
            actor=identity.user,
            role=identity.role,
            action="activate_model",
            patient_id=None,
            model_version=models.version,
            detail={"page": "performance", "baseline": name},
        ),
    )
