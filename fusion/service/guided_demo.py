"""The guided demo's story: its steps and the deterministic choice of its patients.

Owns :data:`STORY` (the ordered steps a presenter walks through) and the pure selection rules
that pick the story's patients from candidate tables; :meth:`fusion.service.facade.RiskService.
guided_demo_patients` gathers the candidates. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

__all__ = [
    "STORY",
    "StoryPatient",
    "StoryRole",
    "StoryStep",
    "choose_high_risk",
    "choose_treatment_benefit",
]

StoryRole = Literal["high_risk", "treatment_benefit"]
StepKind = Literal["risk", "why", "where", "treatment", "what_if"]


@dataclass(frozen=True, slots=True)
class StoryPatient:
    """A patient the guided demo shows, and why it was chosen.

    Attributes
    ----------
    patient_id : str
        The patient.
    role : {"high_risk", "treatment_benefit"}
        Which part of the story the patient carries.
    reason : str
        One sentence for the presenter: how the patient was chosen.
    """

    patient_id: str
    role: StoryRole
    reason: str


@dataclass(frozen=True, slots=True)
class StoryStep:
    """One step of the guided demo.

    Attributes
    ----------
    kind : {"risk", "why", "where", "treatment", "what_if"}
        What the step shows.
    title : str
        Step heading.
    role : {"high_risk", "treatment_benefit"}
        Which story patient the step is about.
    narration : str
        What the presenter says, in one or two sentences.
    """

    kind: StepKind
    title: str
    role: StoryRole
    narration: str


STORY: Final[tuple[StoryStep, ...]] = (
    StoryStep(
        "risk",
        "1. The risk",
        "high_risk",
        "One model fuses the scan, the health record and the genome into a single 5-year "
        "risk. This test-set patient, never seen in training, is among the highest-risk ones.",
    ),
    StoryStep(
        "why",
        "2. Why",
        "high_risk",
        "Exact SHAP values split the risk into what each source of data adds: red bars raise "
        "the risk, blue bars lower it, and together they add up to the patient's score.",
    ),
    StoryStep(
        "where",
        "3. Where in the scan",
        "high_risk",
        "The saliency map shows which part of the scan drove the image score; in this "
        "synthetic cohort the true lesion is known, so we can check that the map points at it.",
    ),
    StoryStep(
        "treatment",
        "4. What each treatment would change",
        "treatment_benefit",
        "For a second patient, the forecast shows the risk over the next years under each "
        "treatment option, with its uncertainty band: the curve for the treatment received "
        "ends at the patient's fused risk, and the others show how much each option would "
        "change it, or that the options cannot be told apart.",
    ),
    StoryStep(
        "what_if",
        "5. What if",
        "high_risk",
        "Back to the first patient: change modifiable factors such as smoking or blood "
        "pressure and see the risk, its explanation and the forecast recomputed.",
    ),
)
"""The guided demo's steps, in order."""


def choose_high_risk(candidates: pd.DataFrame) -> StoryPatient:
    """The highest-risk candidate with a lesion (else with a scan, else the highest-risk one).

    Parameters
    ----------
    candidates : DataFrame
        ``patient_id, risk, has_scan, has_lesion`` (``has_lesion`` False when unknown).

    Returns
    -------
    StoryPatient
        Role ``"high_risk"``; ties in risk go to the smaller patient id.

    Raises
    ------
    ValueError
        If ``candidates`` is empty.

    Examples
    --------
    >>> frame = pd.DataFrame({"patient_id": ["P1", "P2"], "risk": [0.9, 0.8],
    ...                       "has_scan": [True, True], "has_lesion": [False, True]})
    >>> choose_high_risk(frame).patient_id
    'P2'
    """
    if candidates.empty:
        raise ValueError(
            "No candidate patients for the guided demo; build the demo (`riskfusion demo`) so "
            "the test split has scored patients."
        )
    ordered = candidates.sort_values(["risk", "patient_id"], ascending=[False, True])
    for column, reason in (
        ("has_lesion", "the highest-risk test patient whose scan shows a lesion"),
        ("has_scan", "the highest-risk test patient with a scan"),
    ):
        chosen = ordered.loc[ordered[column].astype(bool)]
        if len(chosen):
            return StoryPatient(str(chosen["patient_id"].iloc[0]), "high_risk", reason.capitalize())
    return StoryPatient(
        str(ordered["patient_id"].iloc[0]), "high_risk", "The highest-risk test patient"
    )


def choose_treatment_benefit(
    candidates: pd.DataFrame, *, exclude: str | None = None
) -> StoryPatient:
    """The candidate whose best treatment has the largest estimated absolute risk reduction.

    Parameters
    ----------
    candidates : DataFrame
        ``patient_id, risk, arr`` (``arr``: model-estimated absolute risk reduction of the best
        option vs no treatment at the horizon; NaN when unknown).
    exclude : str, optional
        A patient not to choose (the story's other patient), unless it is the only candidate.

    Returns
    -------
    StoryPatient
        Role ``"treatment_benefit"``; ties go to the smaller patient id. Without any finite
        ``arr``, the highest-risk remaining candidate.

    Raises
    ------
    ValueError
        If ``candidates`` is empty.

    Examples
    --------
    >>> frame = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "risk": [0.9, 0.8, 0.7],
    ...                       "arr": [0.30, 0.10, 0.20]})
    >>> choose_treatment_benefit(frame, exclude="P1").patient_id
    'P3'
    """
    if candidates.empty:
        raise ValueError(
            "No candidate patients for the guided demo; build the demo (`riskfusion demo`) so "
            "the test split has scored patients."
        )
    pool = candidates.loc[candidates["patient_id"] != exclude]
    pool = pool if len(pool) else candidates
    finite = pool.loc[np.isfinite(pool["arr"].to_numpy(dtype=np.float64))]
    if len(finite):
        best = finite.sort_values(["arr", "patient_id"], ascending=[False, True]).iloc[0]
        return StoryPatient(
            str(best["patient_id"]),
            "treatment_benefit",
            f"Of the {len(candidates)} highest-risk test patients, the one whose best option "
            f"lowers the estimated risk most ({float(best['arr']):.1%} absolute)",
        )
    best = pool.sort_values(["risk", "patient_id"], ascending=[False, True]).iloc[0]
    return StoryPatient(
        str(best["patient_id"]),
        "treatment_benefit",
        "The highest-risk remaining test patient (no treatment effect estimate available)",
    )
