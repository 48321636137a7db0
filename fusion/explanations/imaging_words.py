"""The words beside an imaging map: its stored trust figures, or why no map is drawn.

Owns :func:`imaging_trust_sentence` and :func:`not_informative_sentence` (the page and the
patient report show them). Pure: an :class:`~fusion.explanations.imaging_trust.ImagingMapTrust`
in, text out. Must not import streamlit or the dashboard.
"""

from __future__ import annotations

import numpy as np

from fusion.explanations.imaging_trust import (
    MAX_RANDOMISATION_CORRELATION,
    MAX_SPECIFICITY_CORRELATION,
    ImagingMapTrust,
)

__all__ = ["NOT_INFORMATIVE_TITLE", "imaging_trust_sentence", "not_informative_sentence"]

NOT_INFORMATIVE_TITLE = "The scan map is not informative for this model"


def not_informative_sentence(trust: ImagingMapTrust) -> str:
    """Why no map is drawn: the imaging model is not better than chance.

    Examples
    --------
    >>> import pandas as pd
    >>> trust = ImagingMapTrust(40, 0, "features.block3", 0.53, 0.46, 0.60, pd.DataFrame())
    >>> print(not_informative_sentence(trust))  # doctest: +NORMALIZE_WHITESPACE
    The scan map is not informative for this model: the imaging model is not better than
    chance on this cohort (out-of-fold AUROC 0.53, 95% CI 0.46-0.60, which includes 0.5), so a
    map of what it looks at would explain noise. No map is drawn.
    """
    return (
        f"{NOT_INFORMATIVE_TITLE}: the imaging model is not better than chance on this cohort "
        f"(out-of-fold AUROC {trust.auroc:.2f}, 95% CI {trust.auroc_low:.2f}-"
        f"{trust.auroc_high:.2f}, which includes 0.5), so a map of what it looks at would "
        "explain noise. No map is drawn."
    )


def imaging_trust_sentence(trust: ImagingMapTrust | None, method: str) -> str:
    """The stored trust figures of an imaging map (Grad-CAM or Grad-CAM++) in one paragraph.

    Examples
    --------
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"pointing_game": [0.9, 0.0, 0.25],
    ...     "lesion_share": [0.3, 0.03, 0.07], "foreground_share": [0.97, 0.5, 0.9],
    ...     "specificity": [0.2, 0.0, 1.0], "deletion_drop": [0.8, 0.1, np.nan],
    ...     "randomisation_correlation": [0.1, np.nan, np.nan]},
    ...     index=["gradcam", "random", "centre"])
    >>> trust = ImagingMapTrust(40, 20, "features.block3", 0.7, 0.65, 0.75, summary)
    >>> print(imaging_trust_sentence(trust, "gradcam"))  # doctest: +NORMALIZE_WHITESPACE
    Imaging-map trust, measured on 40 test scans when the imaging model was trained: the
    peak lies in the true lesion on 90% of 20 lesion scans (centre prior 25%) with 30% of the
    map inside the lesions; 97% of the map lies on the body; maps of different patients
    correlate 0.20 on average (patient-specific); with random weights the map correlates
    0.10 with this one (it depends on the training); removing its top pixels lowers the image
    score by 0.80 SD (random regions: 0.10).
    """
    if trust is None or method not in trust.summary.index:
        return (
            "No trust measurement for this map: the imaging model was trained before the "
            "check existed; retrain (`riskfusion train`) or rebuild the demo to measure it."
        )
    value = trust.value
    parts = [
        f"Imaging-map trust, measured on {trust.n_scans} test scans when the imaging model "
        "was trained: "
    ]
    hit = value(method, "pointing_game")
    if trust.n_lesion_scans and np.isfinite(hit):
        parts.append(
            f"the peak lies in the true lesion on {hit:.0%} of {trust.n_lesion_scans} lesion "
            f"scans (centre prior {value('centre', 'pointing_game'):.0%}) with "
            f"{value(method, 'lesion_share'):.0%} of the map inside the lesions; "
        )
    parts.append(f"{value(method, 'foreground_share'):.0%} of the map lies on the body; ")
    specificity = value(method, "specificity")
    if np.isfinite(specificity):
        verdict = (
            "patient-specific"
            if specificity < MAX_SPECIFICITY_CORRELATION
            else "too alike to be patient-specific"
        )
        parts.append(
            f"maps of different patients correlate {specificity:.2f} on average ({verdict}); "
        )
    randomised = value(method, "randomisation_correlation")
    if np.isfinite(randomised):
        verdict = (
            "it depends on the training"
            if randomised < MAX_RANDOMISATION_CORRELATION
            else "it fails the sanity check: the map barely depends on the training"
        )
        parts.append(
            f"with random weights the map correlates {randomised:.2f} with this one ({verdict}); "
        )
    drop, random_drop = value(method, "deletion_drop"), value("random", "deletion_drop")
    parts.append(
        f"removing its top pixels lowers the image score by {drop:.2f} SD "
        f"(random regions: {random_drop:.2f})."
    )
    return "".join(parts)
