"""What the explorer page computes for one stored patient, as the benchmarks time it.

Owns :func:`explorer_page_compute`, shared by ``riskfusion bench`` and ``bench --scale`` so both
time the same work. Must not import streamlit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["explorer_page_compute"]


def explorer_page_compute(service: RiskService, patient_id: str) -> None:
    """The explorer's server-side compute for a stored patient (default widgets + a what-if).

    As the page does, the patient is loaded once (:meth:`RiskService.load_patient`) and every
    use case works on that case.
    """
    from fusion.reports.patient_report import render_patient_report

    case = service.load_patient(patient_id)
    result = service.predict(case)
    interval = service.risk_interval(case)
    explanation = service.explain(case)  # stored batch values
    what_if = service.modality_what_if(case)
    top = service.top_features(case, per_modality=3)
    maps = service.image_maps(case, "gradcam")
    service.similar_patients(case, k=5)
    render_patient_report(
        result=result,
        interval=interval,
        explanation=explanation,
        what_if=what_if,
        top_features=top,
        maps=maps,
        info=service.model_info(),
    )
