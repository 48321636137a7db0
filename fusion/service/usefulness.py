"""Clinical usefulness of the active model: decision curves and calibration statistics.

Owns the use case behind the "Clinical usefulness" sections of the performance page and the bias
audit and their exports: net benefit against treat-all and treat-none
(:mod:`fusion.evaluation.net_benefit`) and calibration intercept, slope, O/E and ICI with a
smoothed curve (:mod:`fusion.evaluation.calibration_stats`), over the test split, overall or per
group of 1-3 audit attributes.

Disclosure follows the audit: a group is shown only where the audit shows its size and events
(the suppression floor of :meth:`fusion.service.facade.RiskService.min_cell_for`), and a
researcher's decision curve takes its counts at the allowed cut points of the view
(:func:`fusion.evaluation.groups.audit_threshold`), so no net benefit gives away a count the
audit hides. Must not import streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fusion.admin.access import Identity
from fusion.evaluation.calibration_stats import calibration_by_group_statistics
from fusion.evaluation.groups import audit_threshold, check_attributes, group_labels
from fusion.evaluation.net_benefit import decision_curves_by_group
from fusion.evaluation.performance import performance_threshold

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["ALL_PATIENTS", "UsefulnessView", "clinical_usefulness"]


ALL_PATIENTS = "All test patients"
"""Group label of the overall view."""


@dataclass(frozen=True)
class UsefulnessView:
    """Decision curves and calibration statistics of one view.

    Attributes
    ----------
    decision : DataFrame
        :func:`fusion.evaluation.net_benefit.decision_curves_by_group` (``group`` first).
    calibration : DataFrame
        :func:`fusion.evaluation.calibration_stats.calibration_by_group_statistics` table.
    calibration_curves : DataFrame
        Smoothed calibration curves, ``group, predicted, observed, low, high``.
    by : tuple of str
        The attributes (empty: all test patients).
    min_cell : int
        The suppression floor applied.
    cuts : tuple of float or None
        The cut points a researcher's decision curve takes its counts at; None unrestricted.
    n_hidden : int
        Groups left out because the audit suppresses their size or events.
    """

    decision: pd.DataFrame
    calibration: pd.DataFrame
    calibration_curves: pd.DataFrame
    by: tuple[str, ...]
    min_cell: int
    cuts: tuple[float, ...] | None
    n_hidden: int

    def note(self) -> str:
        """What the view shows and leaves out, in one or two sentences for the page."""
        parts = [
            "Net benefit = true positives/n - false positives/n x t/(1-t) at threshold "
            "probability t; bands and CIs are 95% bootstrap intervals (200 resamples)."
        ]
        if self.cuts is not None:
            parts.append(
                "For researchers the model treats the patients at or above the nearest allowed "
                "cut point at or above t, so the curve steps only where the audit's thresholds "
                "may."
            )
        if self.n_hidden:
            parts.append(
                f"{self.n_hidden} group(s) left out: fewer than {self.min_cell} patients, "
                "events or non-events."
            )
        return " ".join(parts)


def clinical_usefulness(
    service: RiskService,
    by: Sequence[str] = (),
    *,
    identity: Identity | None = None,
    min_cell: int | None = None,
    n_resamples: int = 200,
    random_state: int = 0,
) -> UsefulnessView:
    """Decision curves and calibration statistics of the test split, overall or by group.

    Parameters
    ----------
    service : RiskService
        The active version's service.
    by : sequence of str, default=()
        0-3 audit attributes; empty gives the whole test split as one group.
    identity : Identity, optional
        The viewer (None: a trusted caller such as the command line, as an admin).
    min_cell : int, optional
        A requested floor (raised, never lowered below the configured one unless admin).
    n_resamples, random_state : int
        Bootstrap resamples and seed.

    Returns
    -------
    UsefulnessView
    """
    names = check_attributes(by) if by else ()
    frame = service.test_predictions()
    floor = service.min_cell_for(identity, min_cell, view="usefulness")
    role = "admin" if identity is None else identity.role
    default = service.model_info().threshold
    if names:
        choice = audit_threshold(frame, names, default, role=role, default=default, min_cell=floor)
        labels = group_labels(frame, names).to_numpy()
        report = service.audit(names, min_cell=floor, identity=identity)
        hidden = report.by_group["suppressed"].to_numpy(dtype=bool).copy()
        if "prevalence" in report.hidden.columns:
            hidden |= report.hidden["prevalence"].to_numpy(dtype=bool)
        shown = dict(zip(report.by_group.index.astype(str), ~hidden, strict=True))
    else:
        choice = performance_threshold(frame, default, role=role, default=default, min_cell=floor)
        labels = np.full(len(frame), ALL_PATIENTS)
        events = int(frame["label"].sum())
        shown = {ALL_PATIENTS: min(events, len(frame) - events) >= floor or floor == 0}
    y = frame["label"].to_numpy()
    risk = frame["risk"].to_numpy()
    valid = pd.notna(labels)
    labels, y, risk = labels[valid].astype(str), y[valid], risk[valid]
    decision = decision_curves_by_group(
        y,
        risk,
        labels,
        shown=shown,
        cuts=choice.allowed,
        n_resamples=n_resamples,
        random_state=random_state,
    )
    calibration, curves = calibration_by_group_statistics(
        y, risk, labels, shown=shown, n_resamples=n_resamples, random_state=random_state
    )
    return UsefulnessView(
        decision=decision,
        calibration=calibration,
        calibration_curves=curves,
        by=tuple(names),
        min_cell=floor,
        cuts=choice.allowed,
        n_hidden=sum(not value for value in shown.values()),
    )
