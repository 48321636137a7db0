"""``riskfusion bench`` section: the risk interval's coverage and width, from the registry.

Owns :func:`interval_figures` (the figures a bench prints, picked from the metrics that
:func:`fusion.training.serving_artifacts.build_interval` registers on the ``<version>-interval``
part), :func:`interval_figures_of` (the same for any stored fusion version, e.g. a smaller
cohort's build) and :func:`interval_section` (the active version of a service). Nothing is
measured again here: the numbers are those of the build. Streamlit is never imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from data.store import CohortStore
from fusion.training.serving_artifacts import INTERVAL_KIND

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["FIGURES", "interval_figures", "interval_figures_of", "interval_section"]

logger = logging.getLogger(__name__)

FIGURES = (
    "available",
    "reason",
    "method",
    "target",
    "level",
    "n_calibration",
    "calibration_split",
    "folds",
    "min_calibration",
    "n_test",
    "test_coverage_true_risk",
    "test_coverage_event_rate",
    "test_mean_width",
    "test_strict_share",
    "test_outcome_rate",
    "test_mean_low",
    "test_mean_high",
)
"""Registered metric names a bench prints (absent ones are left out)."""


def interval_figures(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The bench figures of one interval part's registered metrics.

    Adds ``coverage_by_missing`` (coverage of the true risk, else mean width, of the served
    target for every set of missing modalities) when the build measured it.

    Examples
    --------
    >>> interval_figures({"available": True, "level": 0.9, "test_mean_width": 0.5, "x": 1})
    {'available': True, 'level': 0.9, 'test_mean_width': 0.5}
    >>> interval_figures(None)
    {'available': False, 'reason': 'no interval part registered'}
    """
    if metrics is None:
        return {"available": False, "reason": "no interval part registered"}
    figures = {name: metrics[name] for name in FIGURES if name in metrics}
    by_missing = metrics.get("by_missing")
    target = metrics.get("target")
    if by_missing and target:
        figures["coverage_by_missing"] = {
            key: round(entry[target].get("coverage_true_risk", float("nan")), 4)
            for key, entry in by_missing.items()
            if target in entry
        }
        figures["width_by_missing"] = {
            key: round(entry[target]["mean_width"], 4)
            for key, entry in by_missing.items()
            if target in entry
        }
    return figures


def interval_figures_of(store: CohortStore, fusion_version: str) -> dict[str, Any]:
    """:func:`interval_figures` of a stored fusion version's interval part."""
    record = store.artifact_of(fusion_version, INTERVAL_KIND)
    return interval_figures(None if record is None else record.metrics)


def interval_section(service: RiskService) -> dict[str, Any]:
    """:func:`interval_figures` of the service's active version, logged in one line."""
    figures = interval_figures(service.interval_metrics())
    logger.info(
        "bench: interval %s, coverage of the true risk %s, mean width %s (n=%s)",
        figures.get("method", "none"),
        figures.get("test_coverage_true_risk", "n/a"),
        figures.get("test_mean_width", "n/a"),
        figures.get("n_calibration", 0),
    )
    return figures
