"""Fixed parameters of the synthetic world.

Owns every number the simulation and the renderer draw from: the category codes of the
``patients`` frame, the random-stream numbers, recruitment and site shares, missingness rates,
the recorded-value spreads the demo bias scales, the standardisation of the logit components,
treatment effects, lesion geometry and the sites' scanners. Constants only; imports nothing from
the project beyond :mod:`data.vocabulary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from data.vocabulary import ETHNICITIES, FEATURE_SPECS, SEXES, SITES, TREATMENTS, FeatureSpec

# Columns of ``patients`` held as codes during simulation, and their values.
CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "sex": SEXES,
    "ethnicity": ETHNICITIES,
    "site": SITES,
    "treatment": TREATMENTS,
}

MIN_PATIENTS: Final[int] = 10
MAX_PATIENTS: Final[int] = 9_999_999  # patient ids have seven digits
MIN_IMAGE_SIZE: Final[int] = 16


EHR_SPECS: Final[tuple[FeatureSpec, ...]] = tuple(s for s in FEATURE_SPECS if s.modality == "ehr")
N_SNPS: Final[int] = sum(1 for spec in FEATURE_SPECS if spec.kind == "genotype")

CAUSAL_SNPS: Final[Mapping[str, float]] = MappingProxyType(
    {"snp_004": 0.45, "snp_012": 0.40, "snp_023": -0.40, "snp_037": 0.40, "snp_051": 0.35}
)
"""Per-minor-allele log-odds effects (before scaling) of the causal germline variants."""

# Streams of the seed sequence: tabular simulation and per-patient rendering never share draws.
TABULAR_STREAM: Final[int] = 0
RENDER_STREAM: Final[int] = 1
NOISE_BANK_STREAM: Final[int] = 2
RECORDING_STREAM: Final[int] = 3  # the demo bias's recording errors (drawn only under bias)

ETHNICITY_P: Final[tuple[float, ...]] = (0.60, 0.13, 0.10, 0.12, 0.05)
# P(site | ethnicity): site_c serves more minority patients and records fewer labs.
SITE_P_BY_ETHNICITY: Final[tuple[tuple[float, float, float], ...]] = (
    (0.55, 0.30, 0.15),
    (0.30, 0.25, 0.45),
    (0.40, 0.40, 0.20),
    (0.25, 0.25, 0.50),
    (0.45, 0.30, 0.25),
)
DIABETES_SHIFT_BY_ETHNICITY: Final[tuple[float, ...]] = (0.0, 0.4, 0.3, 0.5, 0.2)
EGFR_DRIVER_P_BY_ETHNICITY: Final[tuple[float, ...]] = (0.08, 0.08, 0.30, 0.10, 0.10)
KRAS_DRIVER_P: Final[float] = 0.14
TP53_DRIVER_P: Final[float] = 0.08
SITE_MISSING_FACTOR: Final[tuple[float, ...]] = (1.0, 1.2, 1.7)

# Missingness probabilities (site factor applied on top). Lipids are missing together.
P_MISSING: Final[dict[str, float]] = {
    "bmi": 0.05,
    "systolic_bp": 0.03,
    "diastolic_bp": 0.03,
    "heart_rate": 0.03,
    "egfr": 0.08,
    "hemoglobin": 0.10,
    "smoking": 0.08,
}
P_MISSING_LIPIDS: Final[float] = 0.15
P_MISSING_CRP_BASE: Final[float] = 0.30  # lower in sicker patients (measured when suspected)
P_MISSING_HBA1C: Final[tuple[float, float]] = (0.40, 0.05)  # non-diabetic, diabetic

# Recorded measurements (vitals and labs) that the demo bias's recording error reaches, with the
# population spread of each recorded value (standard deviation; of the logarithm for CRP, which
# is log-normal), measured once on 200,000 unbiased patients. The error standard deviation is
# DemoBias.record_noise times this spread.
RECORDED_SPREAD: Final[dict[str, float]] = {
    "bmi": 5.06,
    "systolic_bp": 17.55,
    "diastolic_bp": 10.56,
    "heart_rate": 10.95,
    "hba1c": 1.315,
    "egfr": 20.70,
    "ldl": 0.962,
    "hdl": 0.360,
    "crp": 1.161,
    "hemoglobin": 1.387,
}
LOG_RECORDED: Final[frozenset[str]] = frozenset({"crp"})

# Standardisation of the raw modality logits: (mean, standard deviation) of each raw score in
# the population (measured once on 2 million patients) and the target standard deviation of
# each component. Fixed constants, so a patient's truth never depends on the cohort size.
RAW_MOMENTS: Final[dict[str, tuple[float, float]]] = {
    "demographics": (0.1917, 0.8014),
    "ehr": (0.2390, 1.2478),
    "genomics": (0.8766, 0.6532),
    "imaging": (0.8139, 0.9586),
}
COMPONENT_SD: Final[dict[str, float]] = {
    "demographics": 0.75,
    "ehr": 0.95,
    "genomics": 0.85,
    "imaging": 0.95,
}
INTERCEPT: Final[float] = -1.45
STANDARD_EFFECT: Final[float] = -0.5
TARGETED_EFFECT_CARRIER: Final[float] = -1.5
TARGETED_EFFECT_NONCARRIER: Final[float] = -0.1
CENSOR_RANGE: Final[tuple[float, float]] = (1.0, 10.0)

# Lesions: Poisson count with log-rate LESION_LOG_RATE + LESION_SEVERITY_SLOPE * severity.
LESION_LOG_RATE: Final[float] = -0.1
LESION_SEVERITY_SLOPE: Final[float] = 0.9
MAX_LESIONS: Final[int] = 8
LESION_RADIUS_RANGE: Final[tuple[float, float]] = (0.03, 0.15)  # fraction of the image side
LESION_CONTRAST_RANGE: Final[tuple[float, float]] = (0.25, 0.80)
LESION_TEXTURE_RANGE: Final[tuple[float, float]] = (0.02, 0.50)
LESION_AREA_SCALE: Final[float] = 0.01  # burden unit of logit_imaging (fraction of image)
REFERENCE_CONTRAST: Final[float] = 0.45
# Lesion centres lie in this centred ellipse (semi-axes y, x) shrunk by the lesion radius, which
# sits inside every body outline the renderer draws.
LESION_REGION: Final[tuple[float, float]] = (0.29, 0.37)


@dataclass(frozen=True, slots=True)
class Scanner:
    """Scanner of one site: intensity response, sharpness and noise level.

    The response is ``gain * x * (1 + curve * (x - 0.45)) + offset`` (``curve`` changes the
    contrast of bright tissue). ``edge_px`` is the width of the point-spread blur at 128 px: it
    is rendered analytically as the softness of every sharp edge (body outline, rim, lesion
    borders), which equals blurring them since all other structures are already smooth.
    ``noise_sd`` is the standard deviation of the added Gaussian noise.
    """

    gain: float
    offset: float
    curve: float
    edge_px: float
    noise_sd: float


# Without bias the sites differ only in intensity response (removed by per-image normalisation);
# sharpness, noise and lesion contrast are the same, so no site's scans are less informative.
SITE_SCANNERS: Final[tuple[Scanner, ...]] = (
    Scanner(gain=1.00, offset=0.00, curve=0.00, edge_px=1.6, noise_sd=0.040),
    Scanner(gain=0.85, offset=0.08, curve=-0.15, edge_px=1.6, noise_sd=0.040),
    Scanner(gain=1.15, offset=-0.05, curve=0.25, edge_px=1.6, noise_sd=0.040),
)
