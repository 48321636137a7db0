"""The logistic baseline of a fusion version: fitted, stored, compared on the test split.

Owns what ``riskfusion train`` does with :class:`fusion.logistic.LogisticBaseline`: fit it on
the fused model's inputs over train+validation (its ``C`` chosen by CV inside them, never on
test), register it as a part of the fusion version (kind :data:`LOGISTIC_KIND`,
``parent_version`` the fusion version, JSON with its SHA-256), write its test-split risks like
the other baselines (the performance page's table reads them), and the paired bootstrap of the
test AUROC difference, fused minus logistic (:func:`compare_with_baseline`), whose words
``train`` and the performance page show. Must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.store import CohortStore
from fusion.evaluation.bootstrap import paired_draws, percentile_bounds
from fusion.evaluation.metrics import youden_threshold
from fusion.logistic import LogisticBaseline

__all__ = [
    "COMPARISON_METRIC",
    "LOGISTIC_FILE",
    "LOGISTIC_KIND",
    "LOGISTIC_PART",
    "BaselineComparison",
    "FittedLogistic",
    "compare_with_baseline",
    "comparison_of",
    "fit_logistic_baseline",
    "register_logistic_baseline",
]

LOGISTIC_PART = "logistic"
"""Part name: the registry version is ``<fusion version>-logistic``."""
LOGISTIC_KIND = "baseline_logistic"
LOGISTIC_FILE = "baseline_logistic.json"
COMPARISON_METRIC = "baseline_comparison"
"""Fusion-version metrics key holding :meth:`BaselineComparison.to_metrics`."""
COMPARISON_RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class BaselineComparison:
    """Test AUROC of the fused model against a baseline, paired bootstrap of the difference.

    Attributes
    ----------
    baseline : str
        The baseline's part name (``logistic``).
    fused_auroc, baseline_auroc : float
        Test AUROCs.
    difference : float
        ``fused_auroc - baseline_auroc``.
    low, high : float
        Percentile bootstrap 95% CI of the difference (patients resampled together).
    n_test : int
        Test patients.
    n_resamples : int
        Bootstrap resamples.
    """

    baseline: str
    fused_auroc: float
    baseline_auroc: float
    difference: float
    low: float
    high: float
    n_test: int
    n_resamples: int

    @property
    def baseline_better(self) -> bool:
        """Whether the baseline is better beyond noise (the CI lies entirely below 0)."""
        return bool(self.high < 0)

    def describe(self) -> str:
        """Plain words for ``riskfusion train`` and the performance page."""
        numbers = (
            f"test AUROC fused {self.fused_auroc:.3f} vs {self.baseline} regression "
            f"{self.baseline_auroc:.3f}; fused minus {self.baseline} {self.difference:+.3f} "
            f"(95% CI {self.low:+.3f} to {self.high:+.3f}, paired bootstrap over "
            f"{self.n_test} test patients)"
        )
        if self.baseline_better:
            return (
                f"The {self.baseline} regression baseline is better than the fused model beyond "
                f"noise: {numbers}. The fused model is the worse model for this cohort; "
                f"activate the baseline with `riskfusion activate --baseline {self.baseline}` "
                "(or on the performance page, as an admin)."
            )
        if self.low > 0:
            return f"The fused model is better than the {self.baseline} baseline: {numbers}."
        return (
            f"The fused model and the {self.baseline} baseline do not differ beyond noise: "
            f"{numbers}."
        )

    def to_metrics(self) -> dict[str, Any]:
        """JSON-ready record for the fusion version's metrics."""
        return asdict(self)


def comparison_of(metrics: Mapping[str, Any]) -> BaselineComparison | None:
    """The comparison stored in a fusion version's metrics (None before it was recorded)."""
    record = metrics.get(COMPARISON_METRIC)
    if not isinstance(record, Mapping):
        return None
    return BaselineComparison(**record)


def compare_with_baseline(
    y_test: npt.ArrayLike,
    fused_risk: npt.ArrayLike,
    baseline_risk: npt.ArrayLike,
    *,
    baseline: str = LOGISTIC_PART,
    n_resamples: int = COMPARISON_RESAMPLES,
    random_state: int = 0,
) -> BaselineComparison:
    """Paired bootstrap of the test AUROC difference, fused minus baseline.

    Uses the evaluation's bootstrap engine
    (:func:`fusion.evaluation.bootstrap.paired_draws`): every resample draws one set of
    test patients and scores both models on it.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 1] * 10)
    >>> fused = np.tile([0.3, 0.6, 0.2, 0.4, 0.7, 0.5], 10)
    >>> result = compare_with_baseline(y, fused, y * 0.5 + 0.2, n_resamples=200)
    >>> result.baseline_better, round(result.difference, 3)
    (True, -0.222)
    """
    y = np.asarray(y_test)
    points, samples = paired_draws(
        y,
        np.column_stack([fused_risk, baseline_risk]),
        n_resamples=n_resamples,
        random_state=random_state,
    )
    point, draws = points["auroc"], samples["auroc"]
    low, high = percentile_bounds((draws[:, 0] - draws[:, 1])[:, np.newaxis])
    return BaselineComparison(
        baseline=baseline,
        fused_auroc=float(point[0]),
        baseline_auroc=float(point[1]),
        difference=float(point[0] - point[1]),
        low=float(low[0]),
        high=float(high[0]),
        n_test=len(y),
        n_resamples=n_resamples,
    )


@dataclass(frozen=True, slots=True)
class FittedLogistic:
    """A fitted logistic baseline with its test risks and its OOF threshold."""

    model: LogisticBaseline
    test_risk: npt.NDArray[np.float64]
    threshold: float


def fit_logistic_baseline(
    X: pd.DataFrame,
    y: npt.ArrayLike,
    masks: Mapping[str, npt.NDArray[np.bool_]],
    *,
    random_state: int = 0,
) -> FittedLogistic:
    """Fit the logistic baseline on train+validation and score the test split.

    The decision threshold is Youden's J over its out-of-fold risks of train+validation (the
    model itself saw every one of those patients).
    """
    labels = np.asarray(y)
    fit_rows = masks["train"] | masks["val"]
    model = LogisticBaseline(random_state=random_state).fit(X[fit_rows], labels[fit_rows])
    oof = model.oof_risk(X[fit_rows], labels[fit_rows])
    return FittedLogistic(
        model=model,
        test_risk=model.predict_proba(X[masks["test"]])[:, 1],
        threshold=youden_threshold(labels[fit_rows], oof),
    )


def register_logistic_baseline(
    store: CohortStore,
    artifacts_dir: Path,
    fusion_version: str,
    fitted: FittedLogistic,
    test_ids: list[str],
    *,
    test_auroc: Mapping[str, float],
    build: Mapping[str, Any],
) -> str:
    """Save the baseline as JSON, register it under the fusion version, store its test risks.

    Returns
    -------
    str
        The part's registry version, ``<fusion version>-logistic``.
    """
    path = artifacts_dir / "models" / fusion_version / LOGISTIC_FILE
    sha = fitted.model.save(path)
    version = f"{fusion_version}-{LOGISTIC_PART}"
    store.register_artifact(
        version,
        LOGISTIC_KIND,
        str(path.relative_to(artifacts_dir)),
        sha,
        metrics={
            "test_auroc": float(test_auroc["auroc"]),
            "test_auroc_ci": [float(test_auroc["low"]), float(test_auroc["high"])],
            "threshold": fitted.threshold,
            "cv_logloss": fitted.model.cv_logloss_,
        },
        params={
            "build": dict(build),
            "model_type": "logistic",
            "C": fitted.model.C_,
            "Cs": [float(c) for c in fitted.model.Cs],
            "features": fitted.model.feature_names,
            "fitted_on": "train+val",
        },
        parent_version=fusion_version,
    )
    store.write_predictions(version, test_ids, fitted.test_risk)
    return version
