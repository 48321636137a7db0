"""Seeded synthetic multimodal cohort with a known ground truth.

This module owns the synthetic world of the demo and the tests: patients with demographics,
EHR measurements, genotypes and a lazily rendered scan, a treatment assigned with confounding
by severity, and an outcome drawn from a true risk that is the sum of one additive logit
component per modality. Because the truth is known, every model can be compared with the
oracle (:func:`oracle_aurocs`).

The cohort is a pure function of ``(n_patients, seed, bias)``: the same inputs give
bit-identical frames and pixels. The tabular part is vectorised (a million patients in
seconds); scans are rendered per chunk from a per-patient random stream, so any chunk renders
the same pixels as the full cohort and memory stays bounded.

The world, in short:

* A latent disease severity (correlated with age) drives the EHR values, treatment choice and
  diabetes; a separate latent imaging severity (correlation about 0.3 with it) drives the
  lesions, so the scan carries information that the table does not.
* ``logit_demographics`` depends on age and sex, ``logit_ehr`` on the true (pre-missingness)
  EHR values, ``logit_genomics`` on five causal SNPs and three driver mutations, and
  ``logit_imaging`` on the contrast-weighted lesion area that the renderer draws.
* ``standard`` treatment lowers the logit by 0.5; ``targeted`` by 1.5 for ``driver_egfr``
  carriers and by 0.1 otherwise.
* The event time is exponential with the constant hazard that makes
  ``P(event time <= HORIZON_YEARS) = true_risk``, so ``label`` (event within
  :data:`HORIZON_YEARS`) is ``Bernoulli(true_risk)``: events of positives fall in the horizon,
  those of negatives in the exponential tail beyond it. ``label`` is known for every patient,
  censored or not: the full-information ground truth only a synthetic world allows.
  ``event_time`` and ``event`` observe the same event time under independent
  ``Uniform(1, 10)``-year censoring, for survival models.
* Scans show a body outline with a bright rim, organ-like blobs, smooth tissue texture and
  bright textured elliptical lesions; each site's scanner has its own gain, offset and contrast
  curve (differences that per-image normalisation removes) and, without bias, the same
  sharpness and noise level.
* A documented, deliberate bias (:class:`DemoBias`, on by default, ``bias=None`` turns it off)
  changes only what is *observed*, never the truth: one site's older scanner shows lesions at
  reduced contrast, blurred and under more noise, so the imaging evidence there is weaker and
  biased low; the same site's poorer data capture records vitals and labs with extra error and
  more gaps and holds only part of its patients' history (drawn from a stream of its own, after
  the rest of the world); and one ethnic group is under-recruited. ``true_risk``, the logit
  components and ``label`` keep their meaning (they come from the true values and lesions).

This module is the bottom layer: it must not import torch, streamlit or any other riskfusion
package.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

from data.vocabulary import (
    ETHNICITIES,
    FEATURE_SPECS,
    HORIZON_YEARS,
    MODALITIES,
    SEXES,
    SITES,
    TREATMENTS,
    FeatureSpec,
)

__all__ = [
    "CAUSAL_SNPS",
    "DEMO_BIAS",
    "DemoBias",
    "SyntheticCohort",
    "assign_splits",
    "generate_cohort",
    "oracle_aurocs",
    "truth_aurocs",
]

logger = logging.getLogger(__name__)


# Columns of ``patients`` held as codes during simulation, and their values.
_CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "sex": SEXES,
    "ethnicity": ETHNICITIES,
    "site": SITES,
    "treatment": TREATMENTS,
}

MIN_PATIENTS: Final[int] = 10
MAX_PATIENTS: Final[int] = 9_999_999  # patient ids have seven digits
MIN_IMAGE_SIZE: Final[int] = 16


_EHR_SPECS: Final[tuple[FeatureSpec, ...]] = tuple(s for s in FEATURE_SPECS if s.modality == "ehr")
_N_SNPS: Final[int] = sum(1 for spec in FEATURE_SPECS if spec.kind == "genotype")

CAUSAL_SNPS: Final[Mapping[str, float]] = MappingProxyType(
    {"snp_004": 0.45, "snp_012": 0.40, "snp_023": -0.40, "snp_037": 0.40, "snp_051": 0.35}
)
"""Per-minor-allele log-odds effects (before scaling) of the causal germline variants."""

# --- World constants -------------------------------------------------------------------------
# Streams of the seed sequence: tabular simulation and per-patient rendering never share draws.
_TABULAR_STREAM: Final[int] = 0
_RENDER_STREAM: Final[int] = 1
_NOISE_BANK_STREAM: Final[int] = 2
_RECORDING_STREAM: Final[int] = 3  # the demo bias's recording errors (drawn only under bias)

_ETHNICITY_P: Final[tuple[float, ...]] = (0.60, 0.13, 0.10, 0.12, 0.05)
# P(site | ethnicity): site_c serves more minority patients and records fewer labs.
_SITE_P_BY_ETHNICITY: Final[tuple[tuple[float, float, float], ...]] = (
    (0.55, 0.30, 0.15),
    (0.30, 0.25, 0.45),
    (0.40, 0.40, 0.20),
    (0.25, 0.25, 0.50),
    (0.45, 0.30, 0.25),
)
_DIABETES_SHIFT_BY_ETHNICITY: Final[tuple[float, ...]] = (0.0, 0.4, 0.3, 0.5, 0.2)
_EGFR_DRIVER_P_BY_ETHNICITY: Final[tuple[float, ...]] = (0.08, 0.08, 0.30, 0.10, 0.10)
_KRAS_DRIVER_P: Final[float] = 0.14
_TP53_DRIVER_P: Final[float] = 0.08
_SITE_MISSING_FACTOR: Final[tuple[float, ...]] = (1.0, 1.2, 1.7)

# Missingness probabilities (site factor applied on top). Lipids are missing together.
_P_MISSING: Final[dict[str, float]] = {
    "bmi": 0.05,
    "systolic_bp": 0.03,
    "diastolic_bp": 0.03,
    "heart_rate": 0.03,
    "egfr": 0.08,
    "hemoglobin": 0.10,
    "smoking": 0.08,
}
_P_MISSING_LIPIDS: Final[float] = 0.15
_P_MISSING_CRP_BASE: Final[float] = 0.30  # lower in sicker patients (measured when suspected)
_P_MISSING_HBA1C: Final[tuple[float, float]] = (0.40, 0.05)  # non-diabetic, diabetic

# Recorded measurements (vitals and labs) that the demo bias's recording error reaches, with the
# population spread of each recorded value (standard deviation; of the logarithm for CRP, which
# is log-normal), measured once on 200,000 unbiased patients. The error standard deviation is
# DemoBias.record_noise times this spread.
_RECORDED_SPREAD: Final[dict[str, float]] = {
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
_LOG_RECORDED: Final[frozenset[str]] = frozenset({"crp"})

# Standardisation of the raw modality logits: (mean, standard deviation) of each raw score in
# the population (measured once on 2 million patients) and the target standard deviation of
# each component. Fixed constants, so a patient's truth never depends on the cohort size.
_RAW_MOMENTS: Final[dict[str, tuple[float, float]]] = {
    "demographics": (0.1917, 0.8014),
    "ehr": (0.2390, 1.2478),
    "genomics": (0.8766, 0.6532),
    "imaging": (0.8139, 0.9586),
}
_COMPONENT_SD: Final[dict[str, float]] = {
    "demographics": 0.75,
    "ehr": 0.95,
    "genomics": 0.85,
    "imaging": 0.95,
}
_INTERCEPT: Final[float] = -1.45
_STANDARD_EFFECT: Final[float] = -0.5
_TARGETED_EFFECT_CARRIER: Final[float] = -1.5
_TARGETED_EFFECT_NONCARRIER: Final[float] = -0.1
_CENSOR_RANGE: Final[tuple[float, float]] = (1.0, 10.0)

# Lesions: Poisson count with log-rate _LESION_LOG_RATE + _LESION_SEVERITY_SLOPE * severity.
_LESION_LOG_RATE: Final[float] = -0.1
_LESION_SEVERITY_SLOPE: Final[float] = 0.9
_MAX_LESIONS: Final[int] = 8
_LESION_RADIUS_RANGE: Final[tuple[float, float]] = (0.03, 0.15)  # fraction of the image side
_LESION_CONTRAST_RANGE: Final[tuple[float, float]] = (0.25, 0.80)
_LESION_TEXTURE_RANGE: Final[tuple[float, float]] = (0.02, 0.50)
_LESION_AREA_SCALE: Final[float] = 0.01  # burden unit of logit_imaging (fraction of image)
_REFERENCE_CONTRAST: Final[float] = 0.45
# Lesion centres lie in this centred ellipse (semi-axes y, x) shrunk by the lesion radius, which
# sits inside every body outline the renderer draws.
_LESION_REGION: Final[tuple[float, float]] = (0.29, 0.37)


@dataclass(frozen=True, slots=True)
class _Scanner:
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
_SITE_SCANNERS: Final[tuple[_Scanner, ...]] = (
    _Scanner(gain=1.00, offset=0.00, curve=0.00, edge_px=1.6, noise_sd=0.040),
    _Scanner(gain=0.85, offset=0.08, curve=-0.15, edge_px=1.6, noise_sd=0.040),
    _Scanner(gain=1.15, offset=-0.05, curve=0.25, edge_px=1.6, noise_sd=0.040),
)


@dataclass(frozen=True, slots=True)
class DemoBias:
    """A documented bias injected into what the synthetic demo observes (never into the truth).

    Well-known failure modes of clinical cohorts, so that a bias audit finds something real:

    * **Degraded scanner at one site.** ``degraded_site``'s older scanner has poorer
      low-contrast detectability: lesions appear at ``lesion_contrast`` times their contrast,
      edges are ``blur_factor`` times softer and the noise is ``noise_factor`` times higher.
      The lesions (and so ``logit_imaging``, ``true_risk`` and ``label``) are unchanged, so the
      imaging score is less informative and biased low there: the model misses more of that
      site's events (lower TPR and AUROC, negative calibration-in-the-large).
    * **Poorer data capture at the same site.** ``degraded_site`` records its patients' vitals
      and labs (BMI, blood pressure, heart rate, HbA1c, eGFR, lipids, CRP, haemoglobin) with
      extra measurement error of ``record_noise`` times each value's population spread
      (uncalibrated point-of-care devices, values copied from old results, transcription
      slips), leaves each of them unrecorded with an extra probability ``record_missing``, and,
      since its patients are also treated elsewhere (fragmented care), holds only
      ``history_capture`` of their prior admissions and diabetes diagnoses. The true values
      still drive ``logit_ehr``, ``true_risk`` and ``label``; only the record is worse, so the
      strongest modality is less informative there and under-states the disease: the model
      ranks that site's patients worse and misses more of its events (lower AUROC and TPR).
    * **Under-represented group.** ``rare_ethnicity`` is recruited at ``rare_share`` of the
      cohort instead of its population share (the freed share goes to the largest group), so
      its metrics carry wide intervals and its intersections are small cells. It is also the
      group most often seen at the degraded site (45%).

    Attributes
    ----------
    degraded_site : str, default="site_c"
        One of :data:`SITES`.
    lesion_contrast : float, default=0.35
        Factor in (0, 1] on the lesion contrast in that site's scans.
    blur_factor : float, default=2.0
        Factor >= 1 on the width of the scanner's point-spread blur.
    noise_factor : float, default=2.5
        Factor >= 1 on the scanner noise standard deviation.
    record_noise : float, default=2.0
        Measurement-error standard deviation of that site's recorded vitals and labs, in
        multiples of each value's population spread (CRP: multiplicative, on the log scale);
        in [0, 5], 0 for none.
    record_missing : float, default=0.5
        Extra probability in [0, 0.9] that each of those values goes unrecorded at that site
        (the lipid panel as one), on top of the usual missingness.
    history_capture : float, default=0.3
        Probability in (0, 1] that each prior admission, and a diabetes diagnosis, of a patient
        of that site is in its record (1 for a complete record).
    rare_ethnicity : str, default="Black"
        One of :data:`ETHNICITIES` except the largest.
    rare_share : float, default=0.03
        Cohort share of ``rare_ethnicity``, in (0, its population share].

    Raises
    ------
    ValueError
        If a site or group is unknown, or a factor or share is out of range.

    Examples
    --------
    >>> DemoBias(lesion_contrast=0.5).degraded_site
    'site_c'
    """

    degraded_site: str = "site_c"
    lesion_contrast: float = 0.35
    blur_factor: float = 2.0
    noise_factor: float = 2.5
    record_noise: float = 2.0
    record_missing: float = 0.5
    history_capture: float = 0.3
    rare_ethnicity: str = "Black"
    rare_share: float = 0.03

    def __post_init__(self) -> None:
        if self.degraded_site not in SITES:
            raise ValueError(
                f"Unknown degraded_site {self.degraded_site!r}; choose one of {SITES}."
            )
        largest = ETHNICITIES[int(np.argmax(_ETHNICITY_P))]
        if self.rare_ethnicity not in ETHNICITIES or self.rare_ethnicity == largest:
            raise ValueError(
                f"rare_ethnicity={self.rare_ethnicity!r}; choose one of "
                f"{[e for e in ETHNICITIES if e != largest]} (the largest group cannot be rare)."
            )
        population = _ETHNICITY_P[ETHNICITIES.index(self.rare_ethnicity)]
        # (name, value, lowest allowed, highest allowed, whether the lowest is allowed itself)
        checks = (
            ("lesion_contrast", self.lesion_contrast, 0.0, 1.0, False),
            ("blur_factor", self.blur_factor, 1.0, 10.0, True),
            ("noise_factor", self.noise_factor, 1.0, 10.0, True),
            ("record_noise", self.record_noise, 0.0, 5.0, True),
            ("record_missing", self.record_missing, 0.0, 0.9, True),
            ("history_capture", self.history_capture, 0.0, 1.0, False),
            ("rare_share", self.rare_share, 0.0, population, False),
        )
        for name, value, low, high, closed in checks:
            if not (low <= value <= high) or (value == low and not closed):
                interval = f"{'[' if closed else '('}{low}, {high}]"
                raise ValueError(
                    f"{name}={value!r} is out of range; pass a number in {interval} "
                    f"(default {_BIAS_DEFAULTS[name]})."
                )

    def ethnicity_p(self) -> tuple[float, ...]:
        """Recruitment shares of :data:`ETHNICITIES` under this bias (summing to 1)."""
        shares = list(_ETHNICITY_P)
        rare = ETHNICITIES.index(self.rare_ethnicity)
        shares[int(np.argmax(_ETHNICITY_P))] += shares[rare] - self.rare_share
        shares[rare] = self.rare_share
        return tuple(shares)

    def scanners(self) -> tuple[_Scanner, ...]:
        """Per-site scanners with ``degraded_site``'s blur and noise raised."""
        out = list(_SITE_SCANNERS)
        site = SITES.index(self.degraded_site)
        base = out[site]
        out[site] = _Scanner(
            gain=base.gain,
            offset=base.offset,
            curve=base.curve,
            edge_px=base.edge_px * self.blur_factor,
            noise_sd=base.noise_sd * self.noise_factor,
        )
        return tuple(out)

    def lesion_contrasts(self) -> tuple[float, ...]:
        """Per-site factor on the rendered lesion contrast."""
        return tuple(self.lesion_contrast if site == self.degraded_site else 1.0 for site in SITES)

    def record(
        self,
        ehr: Mapping[str, npt.NDArray[np.float64]],
        site_codes: npt.NDArray[np.int64],
        seed: int,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """The EHR as ``degraded_site`` records it: noisier, less complete, history under-held.

        Parameters
        ----------
        ehr : mapping of str to ndarray of shape (n_patients,)
            Every EHR column of :data:`EHR_COLUMNS` after the usual missingness (NaN where
            missing); not modified.
        site_codes : ndarray of int of shape (n_patients,)
            Index of each patient's site in :data:`SITES`.
        seed : int
            Seed of the world; the errors come from their own stream of it, so the rest of the
            world is drawn exactly as without the bias.

        Returns
        -------
        dict of str to ndarray of shape (n_patients,)
            The recorded columns; other sites' values are returned unchanged.
        """
        rng = np.random.default_rng([seed, _RECORDING_STREAM])
        n = site_codes.size
        here = site_codes == SITES.index(self.degraded_site)
        recorded = {name: np.array(values, dtype=np.float64) for name, values in ehr.items()}
        ranges = {spec.name: (spec.low, spec.high) for spec in _EHR_SPECS}
        # Every patient gets its draws, at any site and for any knob value, so they stay aligned.
        errors = rng.standard_normal((len(_RECORDED_SPREAD), n))
        lost = rng.random((len(_RECORDED_SPREAD), n)) < self.record_missing
        lost[list(_RECORDED_SPREAD).index("hdl")] = lost[list(_RECORDED_SPREAD).index("ldl")]
        for row, (name, spread) in enumerate(_RECORDED_SPREAD.items()):
            true = recorded[name]
            error = self.record_noise * spread * errors[row]
            noisy = true * np.exp(error) if name in _LOG_RECORDED else true + error
            noisy = np.clip(noisy, *ranges[name])
            noisy[lost[row]] = np.nan
            recorded[name] = np.where(here, noisy, true)
        admissions = rng.binomial(recorded["prior_events"].astype(np.int64), self.history_capture)
        coded = rng.random(n) < self.history_capture
        recorded["prior_events"] = np.where(here, admissions, recorded["prior_events"])
        recorded["diabetes"] = np.where(here & ~coded, 0.0, recorded["diabetes"])
        return recorded


_BIAS_DEFAULTS: Final[dict[str, object]] = {f.name: f.default for f in fields(DemoBias)}

DEMO_BIAS: Final[DemoBias] = DemoBias()
"""The bias the demo injects by default (see :class:`DemoBias`; ``bias=None`` turns it off)."""
_N_ANATOMY_DRAWS: Final[int] = 24
_LOW_FREQUENCY_CELLS: Final[int] = 3  # smooth tissue texture: B-spline cells across the image
_TEXTURE_CELL_PX: Final[int] = 8  # lesion texture grain in pixels
# Pixels per vectorised render batch: temporaries of at most 128 KiB are recycled by the allocator
# instead of being mapped afresh (which costs page faults that dominate the render time).
_RENDER_BATCH_PIXELS: Final[int] = 32_768


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(special.expit(x), dtype=np.float64)


def _snp_mafs() -> npt.NDArray[np.float64]:
    """Minor-allele frequencies, shape ``(len(ETHNICITIES), _N_SNPS)``.

    Population MAFs spread evenly over [0.05, 0.5] (golden-ratio sequence); each ancestry group
    shifts them by at most 0.04 (population stratification).
    """
    j = np.arange(_N_SNPS, dtype=np.float64)
    base = 0.05 + 0.45 * np.mod(0.1 + j * 0.6180339887498949, 1.0)
    group = np.arange(len(ETHNICITIES), dtype=np.float64)[:, None]
    shift = 0.04 * np.sin(1.7 * j[None, :] * (group + 1.0) + group) * (group > 0)
    return np.clip(base[None, :] + shift, 0.03, 0.5)


def _standardise(raw: npt.NDArray[np.float64], modality: str) -> npt.NDArray[np.float64]:
    mean, sd = _RAW_MOMENTS[modality]
    return (raw - mean) * (_COMPONENT_SD[modality] / sd)


def _patient_ids(n: int) -> npt.NDArray[np.str_]:
    """Identifiers ``P0000001`` ... built digit by digit (fast for millions)."""
    number = np.arange(1, n + 1, dtype=np.int64)
    powers = 10 ** np.arange(6, -1, -1, dtype=np.int64)
    chars = np.empty((n, 8), dtype=np.uint8)
    chars[:, 0] = ord("P")
    chars[:, 1:] = (number[:, None] // powers) % 10 + ord("0")
    return np.asarray(chars.view("S8").ravel().astype(np.str_))


@dataclass(frozen=True, slots=True)
class _Tabular:
    """Every simulated per-patient and per-lesion array, before framing."""

    columns: dict[str, npt.NDArray[np.generic]]
    ehr: dict[str, npt.NDArray[np.float64]]
    genomics: dict[str, npt.NDArray[np.int8]]
    truth: dict[str, npt.NDArray[np.generic]]
    lesions: dict[str, npt.NDArray[np.float64]]
    lesion_patient: npt.NDArray[np.int64]


def _simulate(n: int, seed: int, bias: DemoBias | None) -> _Tabular:
    """Simulate the whole tabular world for ``n`` patients (see the module docstring)."""
    rng = np.random.default_rng([seed, _TABULAR_STREAM])

    # Demographics and latent severities. The bias changes recruitment shares only: choice()
    # draws one uniform per patient either way, so every later draw stays aligned.
    age = np.round(np.clip(rng.normal(61.0, 13.0, n), 18.0, 95.0), 1)
    male = rng.random(n) < 0.48
    shares = _ETHNICITY_P if bias is None else bias.ethnicity_p()
    ethnicity = rng.choice(len(ETHNICITIES), size=n, p=shares)
    site_cdf = np.cumsum(np.asarray(_SITE_P_BY_ETHNICITY), axis=1)
    site = (rng.random(n)[:, None] > site_cdf[ethnicity, :-1]).sum(axis=1)
    age_z = (age - 61.0) / 13.0
    severity = 0.35 * age_z + math.sqrt(1.0 - 0.35**2) * rng.standard_normal(n)
    imaging_severity = 0.3 * severity + math.sqrt(1.0 - 0.3**2) * rng.standard_normal(n)

    # EHR: true values, physiology-shaped, clipped to the plausible ranges.
    diabetes_shift = np.asarray(_DIABETES_SHIFT_BY_ETHNICITY)[ethnicity]
    diabetes = rng.random(n) < _sigmoid(
        -1.6 + 0.9 * severity + 0.02 * (age - 61.0) + diabetes_shift
    )
    smoking_latent = 0.5 * severity + 0.2 * male + rng.standard_normal(n)
    smoking = np.digitize(smoking_latent, [0.35, 1.15]).astype(np.float64)
    bmi = 27.0 + 1.8 * severity + 2.5 * diabetes + 4.5 * rng.standard_normal(n)
    systolic = 124.0 + 0.5 * (age - 61.0) + 7.0 * severity + 0.4 * (bmi - 27.0)
    systolic = systolic + 13.0 * rng.standard_normal(n)
    diastolic = 20.0 + 0.45 * systolic + 7.0 * rng.standard_normal(n)
    heart_rate = 72.0 + 4.0 * severity + 3.0 * (smoking == 2) + 10.0 * rng.standard_normal(n)
    hba1c = np.where(
        diabetes,
        np.clip(7.3 + 0.5 * severity + 1.1 * rng.standard_normal(n), 5.7, 15.0),
        np.clip(5.4 + 0.15 * severity + 0.3 * rng.standard_normal(n), 4.0, 6.4),
    )
    egfr = 100.0 - 0.9 * (age - 50.0) - 6.0 * severity - 8.0 * diabetes
    egfr = egfr + 13.0 * rng.standard_normal(n)
    prior_events = np.minimum(rng.poisson(np.exp(-1.3 + 0.7 * severity)), 20).astype(np.float64)
    on_statin = rng.random(n) < _sigmoid(
        -1.8 + 0.7 * severity + 1.0 * diabetes + 0.03 * (age - 61.0) + 0.6 * (prior_events > 0)
    )
    ldl = 3.3 + 0.3 * severity - 1.1 * on_statin + 0.85 * rng.standard_normal(n)
    hdl = 1.45 - 0.1 * severity - 0.22 * male - 0.12 * diabetes + 0.32 * rng.standard_normal(n)
    log_crp = 0.6 + 0.55 * severity + 0.25 * (smoking == 2) + 0.065 * (bmi - 27.0)
    crp = np.exp(log_crp + 0.9 * rng.standard_normal(n))
    hemoglobin = 13.2 + 1.4 * male - 0.45 * severity - 0.5 * (egfr < 45.0)
    hemoglobin = hemoglobin + 1.1 * rng.standard_normal(n)
    raw_ehr: dict[str, npt.NDArray[np.float64]] = {
        "bmi": bmi,
        "systolic_bp": systolic,
        "diastolic_bp": diastolic,
        "heart_rate": heart_rate,
        "hba1c": hba1c,
        "egfr": egfr,
        "ldl": ldl,
        "hdl": hdl,
        "crp": crp,
        "hemoglobin": hemoglobin,
        "smoking": smoking,
        "diabetes": diabetes.astype(np.float64),
        "prior_events": prior_events,
        "on_statin": on_statin.astype(np.float64),
    }
    ehr_true: dict[str, npt.NDArray[np.float64]] = {}
    for spec in _EHR_SPECS:
        low = -np.inf if spec.low is None else spec.low
        high = np.inf if spec.high is None else spec.high
        ehr_true[spec.name] = np.clip(raw_ehr[spec.name], low, high)

    # Genomics: Hardy-Weinberg genotypes with ancestry-specific MAFs, then driver mutations.
    # One uniform per genotype: 0 below (1 - p)**2, 2 above 1 - p**2, else 1.
    mafs = _snp_mafs()
    below_one = ((1.0 - mafs) ** 2).astype(np.float32)
    below_two = (1.0 - mafs**2).astype(np.float32)
    genomics: dict[str, npt.NDArray[np.int8]] = {}
    for j in range(_N_SNPS):
        draw = rng.random(n, dtype=np.float32)
        genotype = (draw >= below_one[ethnicity, j]).astype(np.int8)
        genotype += draw >= below_two[ethnicity, j]
        genomics[f"snp_{j + 1:03d}"] = genotype
    egfr_p = np.asarray(_EGFR_DRIVER_P_BY_ETHNICITY)[ethnicity]
    genomics["driver_egfr"] = (rng.random(n) < egfr_p).astype(np.int8)
    genomics["driver_kras"] = (rng.random(n) < _KRAS_DRIVER_P).astype(np.int8)
    genomics["driver_tp53"] = (rng.random(n) < _TP53_DRIVER_P).astype(np.int8)

    # Imaging: lesion count, geometry and appearance from the imaging severity.
    rate = np.exp(_LESION_LOG_RATE + _LESION_SEVERITY_SLOPE * imaging_severity)
    lesion_count = np.minimum(rng.poisson(rate), _MAX_LESIONS).astype(np.int64)
    lesion_patient = np.repeat(np.arange(n, dtype=np.int64), lesion_count)
    n_lesions = lesion_patient.size
    lesion_severity = imaging_severity[lesion_patient]
    r_low, r_high = _LESION_RADIUS_RANGE
    radius = 0.055 * np.exp(0.25 * lesion_severity + 0.35 * rng.standard_normal(n_lesions))
    aspect = np.exp(np.clip(0.25 * rng.standard_normal(n_lesions), -0.5, 0.5))
    ry = np.clip(radius * np.sqrt(aspect), r_low, r_high)
    rx = np.clip(radius / np.sqrt(aspect), r_low, r_high)
    angle = rng.uniform(0.0, math.pi, n_lesions)
    contrast = np.clip(
        0.45 + 0.08 * lesion_severity + 0.10 * rng.standard_normal(n_lesions),
        *_LESION_CONTRAST_RANGE,
    )
    texture = np.clip(
        0.18 + 0.06 * lesion_severity + 0.07 * rng.standard_normal(n_lesions),
        *_LESION_TEXTURE_RANGE,
    )
    reach = np.maximum(ry, rx)
    rho = np.sqrt(rng.random(n_lesions))
    phi = rng.uniform(0.0, 2.0 * math.pi, n_lesions)
    cy = 0.5 + (_LESION_REGION[0] - reach) * rho * np.sin(phi)
    cx = 0.5 + (_LESION_REGION[1] - reach) * rho * np.cos(phi)
    area = math.pi * ry * rx
    lesion_area = np.bincount(lesion_patient, weights=area, minlength=n)
    burden = np.bincount(lesion_patient, weights=area * contrast / _REFERENCE_CONTRAST, minlength=n)

    # Additive true logit components (fixed standardisation, see _RAW_MOMENTS).
    raw_demographics = 0.06 * (age - 61.0) + 0.4 * male
    raw_ehr_logit = (
        0.018 * (ehr_true["systolic_bp"] - 130.0)
        + 0.30 * (ehr_true["hba1c"] - 6.0)
        + 0.03 * np.maximum(60.0 - ehr_true["egfr"], 0.0)
        + 0.30 * (ehr_true["ldl"] - 3.0)
        - 0.70 * (ehr_true["hdl"] - 1.3)
        + 0.30 * np.log(ehr_true["crp"] / 2.0)
        + 0.012 * (ehr_true["heart_rate"] - 72.0)
        + 0.003 * (ehr_true["bmi"] - 25.0) ** 2
        + 0.20 * (ehr_true["smoking"] == 1)
        + 0.55 * (ehr_true["smoking"] == 2)
        + 0.25 * ehr_true["diabetes"]
        + 0.30 * np.minimum(ehr_true["prior_events"], 5.0)
        - 0.25 * ehr_true["on_statin"]
        + 0.15 * np.maximum(12.0 - ehr_true["hemoglobin"], 0.0)
    )
    raw_genomics = 0.35 * genomics["driver_egfr"] + 0.55 * genomics["driver_kras"]
    raw_genomics = raw_genomics + 0.9 * genomics["driver_tp53"]
    for name, effect in CAUSAL_SNPS.items():
        raw_genomics = raw_genomics + effect * genomics[name]
    raw_imaging = np.log1p(burden / _LESION_AREA_SCALE)
    components = {
        "demographics": _standardise(raw_demographics, "demographics"),
        "ehr": _standardise(raw_ehr_logit, "ehr"),
        "genomics": _standardise(raw_genomics, "genomics"),
        "imaging": _standardise(raw_imaging, "imaging"),
    }
    base_logit = _INTERCEPT + sum(components.values(), np.zeros(n))

    # Treatment, confounded by severity and visible disease; targeted therapy for EGFR carriers.
    carrier = genomics["driver_egfr"] == 1
    treated = rng.random(n) < _sigmoid(-0.4 + 0.9 * severity + 0.5 * (lesion_count > 0))
    targeted = rng.random(n) < _sigmoid(-1.6 + 2.6 * carrier + 0.2 * severity)
    treatment = np.where(treated, np.where(targeted, 2, 1), 0)
    effects = np.stack(
        [
            np.zeros(n),
            np.full(n, _STANDARD_EFFECT),
            np.where(carrier, _TARGETED_EFFECT_CARRIER, _TARGETED_EFFECT_NONCARRIER),
        ],
        axis=1,
    )
    risk_by_treatment = _sigmoid(base_logit[:, None] + effects)
    true_risk = risk_by_treatment[np.arange(n), treatment]

    # Outcome: exponential event time with P(T <= horizon) = true_risk; uniform censoring.
    hazard = -np.log1p(-np.minimum(true_risk, 1.0 - 1e-12)) / HORIZON_YEARS
    event_time_true = rng.exponential(1.0, n) / np.maximum(hazard, 1e-12)
    censor_time = rng.uniform(*_CENSOR_RANGE, n)
    label = (event_time_true <= HORIZON_YEARS).astype(np.int64)

    # Missingness: site-dependent, lipids together, CRP more often measured in the sick,
    # HbA1c mostly measured in diabetics.
    factor = np.asarray(_SITE_MISSING_FACTOR)[site]
    ehr_observed = {name: values.copy() for name, values in ehr_true.items()}
    for name, p_missing in _P_MISSING.items():
        ehr_observed[name][rng.random(n) < p_missing * factor] = np.nan
    lipids_missing = rng.random(n) < _P_MISSING_LIPIDS * factor
    ehr_observed["ldl"][lipids_missing] = np.nan
    ehr_observed["hdl"][lipids_missing] = np.nan
    p_crp = np.clip(_P_MISSING_CRP_BASE * factor * np.exp(-0.4 * severity), 0.0, 0.9)
    ehr_observed["crp"][rng.random(n) < p_crp] = np.nan
    p_hba1c = np.where(diabetes, _P_MISSING_HBA1C[1], _P_MISSING_HBA1C[0]) * factor
    ehr_observed["hba1c"][rng.random(n) < p_hba1c] = np.nan
    if bias is not None:  # the degraded site's poorer record (after every tabular draw)
        ehr_observed = bias.record(ehr_observed, site, seed)

    columns: dict[str, npt.NDArray[np.generic]] = {
        "age": age,
        "sex": male.astype(np.int64),
        "ethnicity": ethnicity,
        "site": site,
        "treatment": treatment,
        "label": label,
        "event_time": np.minimum(event_time_true, censor_time),
        "event": (event_time_true <= censor_time).astype(np.int64),
    }
    truth: dict[str, npt.NDArray[np.generic]] = {
        "true_risk": true_risk,
        "true_risk_none": risk_by_treatment[:, 0],
        "true_risk_standard": risk_by_treatment[:, 1],
        "true_risk_targeted": risk_by_treatment[:, 2],
        **{f"logit_{name}": values for name, values in components.items()},
        "lesion_count": lesion_count,
        "lesion_area": lesion_area,
        "severity": severity,
        "imaging_severity": imaging_severity,
    }
    lesions = {
        "cy": cy,
        "cx": cx,
        "ry": ry,
        "rx": rx,
        "angle": angle,
        "contrast": contrast,
        "texture": texture,
    }
    return _Tabular(columns, ehr_observed, genomics, truth, lesions, lesion_patient)


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticCohort:
    """A synthetic multimodal cohort with its ground truth; scans are rendered on demand.

    Build it with :func:`generate_cohort`. All frames are row-aligned by patient (row ``i`` of
    every per-patient frame is the same patient) except ``lesions``, which has one row per lesion
    sorted by patient.

    Attributes
    ----------
    n_patients : int
        Number of patients.
    seed : int
        Seed of the world; with ``n_patients`` and ``bias`` it determines everything.
    image_size : int
        Side ``H = W`` of the rendered scans in pixels.
    patients : pandas.DataFrame
        ``patient_id`` (``"P0000001"``...), ``age`` (years), ``sex`` (``"F"``/``"M"``),
        ``ethnicity``, ``site``, ``treatment`` (one of :data:`TREATMENTS`), ``label`` (1 if the
        event happens within :data:`HORIZON_YEARS`; known for every patient), ``event_time``
        (years, ``min(event time, censoring time)``) and ``event`` (1 if the event was observed
        before censoring).
    ehr : pandas.DataFrame
        ``patient_id`` and the EHR inputs of :data:`FEATURE_SPECS` (float64, NaN where missing)
        as recorded: under ``bias``, the degraded site's record is noisier and less complete
        (:meth:`DemoBias.record`); ``truth`` comes from the true values.
    genomics : pandas.DataFrame
        ``patient_id`` and the ``snp_*`` and ``driver_*`` inputs (int8, never missing).
    truth : pandas.DataFrame
        ``patient_id``; ``true_risk`` (probability of the event within the horizon under the
        received treatment) and ``true_risk_none``, ``true_risk_standard``,
        ``true_risk_targeted`` (the same under each treatment); the additive logit components
        ``logit_demographics``, ``logit_ehr``, ``logit_genomics``, ``logit_imaging``;
        ``lesion_count``, ``lesion_area`` (summed ellipse area ``pi * ry * rx`` as a fraction of
        the image, overlaps counted twice) and the latent ``severity`` and ``imaging_severity``.
    lesions : pandas.DataFrame
        One row per lesion: ``patient_id``, centre ``cy``, ``cx`` and semi-axes ``ry``, ``rx``
        (fractions of the image side), ``angle`` (radians), ``contrast`` (intensity above the
        tissue) and ``texture`` (relative intensity heterogeneity). ``contrast`` is the true
        contrast; a degraded scanner (``bias``) shows it reduced.
    bias : DemoBias or None, default=None
        The bias injected into what is observed (recruitment, scans and records), or None.
    """

    n_patients: int
    seed: int
    image_size: int
    patients: pd.DataFrame
    ehr: pd.DataFrame
    genomics: pd.DataFrame
    truth: pd.DataFrame
    lesions: pd.DataFrame
    bias: DemoBias | None = None
    _lesion_offsets: npt.NDArray[np.int64] = field(init=False, repr=False)
    _lesion_params: npt.NDArray[np.float64] = field(init=False, repr=False)
    _site_codes: npt.NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frames = {
            "patients": self.patients,
            "ehr": self.ehr,
            "genomics": self.genomics,
            "truth": self.truth,
        }
        for name, frame in frames.items():
            if len(frame) != self.n_patients:
                raise ValueError(
                    f"Frame {name!r} has {len(frame)} rows but n_patients={self.n_patients}; "
                    "build cohorts with generate_cohort()."
                )
        counts = self.truth["lesion_count"].to_numpy(dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if offsets[-1] != len(self.lesions):
            raise ValueError(
                f"truth.lesion_count sums to {offsets[-1]} but lesions has {len(self.lesions)} "
                "rows; build cohorts with generate_cohort()."
            )
        params = self.lesions[["cy", "cx", "ry", "rx", "angle", "contrast", "texture"]]
        site_codes = pd.Categorical(self.patients["site"], categories=SITES).codes
        if np.any(site_codes < 0):
            raise ValueError(f"patients.site holds values outside {SITES}.")
        object.__setattr__(self, "_lesion_offsets", offsets)
        object.__setattr__(self, "_lesion_params", params.to_numpy(dtype=np.float64))
        object.__setattr__(self, "_site_codes", np.asarray(site_codes, dtype=np.int64))

    def render(
        self, start: int, stop: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """Render the scans and true lesion masks of patients ``start`` to ``stop - 1``.

        Each patient's pixels come from a random stream seeded by ``(seed, patient index)``, so
        rendering any chunk gives the same pixels as rendering the whole cohort.

        Parameters
        ----------
        start, stop : int
            Row range of ``patients`` (``0 <= start <= stop <= n_patients``).

        Returns
        -------
        images : numpy.ndarray of shape (stop - start, H, W), float32
            Scans: body outline, organ-like structures, smooth texture and bright textured
            lesions, with the site's scanner gain, offset, contrast curve, sharpness and noise
            (and, at a degraded site under ``bias``, fainter lesions, more blur and noise).
            Not normalised: air is about 0 (site offset), soft tissue about 0.4, lesions 0.25
            to 0.8 brighter than the tissue around them.
        masks : numpy.ndarray of shape (stop - start, H, W), uint8
            1 inside the union of the patient's lesion ellipses, else 0.

        Raises
        ------
        ValueError
            If the range is outside ``[0, n_patients]`` or ``start > stop``.
        """
        if not (0 <= start <= stop <= self.n_patients):
            raise ValueError(
                f"Invalid patient range start={start}, stop={stop}; "
                f"need 0 <= start <= stop <= n_patients={self.n_patients}."
            )
        return _render(
            seed=self.seed,
            bias=self.bias,
            indices=np.arange(start, stop, dtype=np.int64),
            site_codes=self._site_codes[start:stop],
            lesion_params=self._lesion_params[
                self._lesion_offsets[start] : self._lesion_offsets[stop]
            ],
            lesion_counts=np.diff(self._lesion_offsets[start : stop + 1]),
            size=self.image_size,
        )

    def iter_scans(
        self, chunk_size: int = 256
    ) -> Iterator[tuple[list[str], npt.NDArray[np.float32], npt.NDArray[np.uint8]]]:
        """Render the cohort chunk by chunk, in patient order.

        Parameters
        ----------
        chunk_size : int, default=256
            Patients per chunk; peak memory is about ``5 * chunk_size * H * W`` floats.

        Yields
        ------
        patient_ids : list of str
            Identifiers of the chunk's patients.
        images : numpy.ndarray of shape (n, H, W), float32
            Their scans (see :meth:`render`).
        masks : numpy.ndarray of shape (n, H, W), uint8
            Their true lesion masks.

        Raises
        ------
        ValueError
            If ``chunk_size < 1``.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(
                f"chunk_size must be a positive int, got {chunk_size!r}; use e.g. 256."
            )
        ids = self.patients["patient_id"].tolist()
        for start in range(0, self.n_patients, chunk_size):
            stop = min(start + chunk_size, self.n_patients)
            images, masks = self.render(start, stop)
            yield [str(pid) for pid in ids[start:stop]], images, masks


def _check_int(name: str, value: object, low: int, high: int | None, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}; {hint}.")
    number = int(value)
    if number < low or (high is not None and number > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {allowed}, got {number}; {hint}.")
    return number


def generate_cohort(
    n_patients: int = 2000,
    seed: int = 0,
    *,
    image_size: int = 128,
    bias: DemoBias | None = DEMO_BIAS,
) -> SyntheticCohort:
    """Generate the synthetic cohort, a pure function of ``(n_patients, seed, bias)``.

    The tabular data and ground truth are simulated at once (vectorised); scans are rendered
    lazily by :meth:`SyntheticCohort.render` / :meth:`SyntheticCohort.iter_scans`.

    Parameters
    ----------
    n_patients : int, default=2000
        Number of patients, between 10 and 9,999,999.
    seed : int, default=0
        Non-negative seed of the world.
    image_size : int, default=128
        Side of the rendered scans in pixels (at least 16). It changes only the pixels, never
        the tabular data or the truth.
    bias : DemoBias or None, default=DEMO_BIAS
        Deliberate, documented bias in what is observed (see :class:`DemoBias`): a degraded
        scanner and poorer data capture at one site, and an under-recruited group. None gives
        the unbiased world: the same patients draw for draw, except those whose ethnicity the
        recruitment bias changes (and everything that depends on it), with scans of equal
        quality and complete, unperturbed records at every site.

    Returns
    -------
    SyntheticCohort
        Frames ``patients``, ``ehr``, ``genomics``, ``truth`` and ``lesions``.

    Raises
    ------
    TypeError
        If an argument is not an int.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> cohort = generate_cohort(100, seed=1, image_size=32)
    >>> cohort.patients["patient_id"].iloc[0]
    'P0000001'
    >>> images, masks = cohort.render(0, 4)
    >>> images.shape, masks.dtype
    ((4, 32, 32), dtype('uint8'))
    """
    n = _check_int(
        "n_patients", n_patients, MIN_PATIENTS, MAX_PATIENTS, "pass e.g. n_patients=2000"
    )
    seed = _check_int("seed", seed, 0, None, "pass a non-negative seed such as 0")
    size = _check_int("image_size", image_size, MIN_IMAGE_SIZE, 1024, "use e.g. image_size=128")

    if bias is not None and not isinstance(bias, DemoBias):
        raise TypeError(
            f"bias must be a DemoBias or None, got {type(bias).__name__} {bias!r}; pass "
            "DEMO_BIAS (default) or None to turn the bias off."
        )
    world = _simulate(n, seed, bias)
    ids = pd.array(_patient_ids(n), dtype="str")
    columns = {
        name: pd.array(list(_CATEGORIES[name]), dtype="str").take(values.astype(np.intp))
        if name in _CATEGORIES
        else values
        for name, values in world.columns.items()
    }
    patients = pd.DataFrame({"patient_id": ids, **columns})
    ehr = pd.DataFrame({"patient_id": ids, **world.ehr})
    genomics = pd.DataFrame({"patient_id": ids, **world.genomics})
    truth = pd.DataFrame({"patient_id": ids, **world.truth})
    lesions = pd.DataFrame({"patient_id": ids.take(world.lesion_patient), **world.lesions})
    logger.info(
        "Generated synthetic cohort: n_patients=%d seed=%d bias=%s prevalence=%.3f lesions=%d",
        n,
        seed,
        "off" if bias is None else "on",
        float(world.columns["label"].mean()),
        len(lesions),
    )
    return SyntheticCohort(n, seed, size, patients, ehr, genomics, truth, lesions, bias)


# --- Rendering ---------------------------------------------------------------------------------


@functools.cache
def _noise_bank(size: int) -> npt.NDArray[np.float32]:
    """Fixed field of white Gaussian noise, ``(side, side)`` with ``side = max(512, 2 * size)``.

    Each scan takes its noise from a window of this field at a random offset, randomly flipped:
    as random as fresh noise for any model, at a fraction of the cost of drawing it.
    """
    side = max(512, 2 * size)
    rng = np.random.default_rng([_NOISE_BANK_STREAM, side])
    return rng.standard_normal((side, side), dtype=np.float32)


@functools.cache
def _spline_basis(size: int, cells: int) -> npt.NDArray[np.float32]:
    """Cubic B-spline basis ``(size, cells + 3)`` mapping coarse noise onto ``size`` pixels.

    Rows are scaled so that white coarse noise gives a smooth field of unit variance.
    """
    position = (np.arange(size, dtype=np.float64) + 0.5) / size * cells
    cell = np.floor(position)
    f = (position - cell)[:, None]
    weights = np.concatenate(
        [
            (1 - f) ** 3 / 6,
            (3 * f**3 - 6 * f**2 + 4) / 6,
            (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
            f**3 / 6,
        ],
        axis=1,
    )
    weights /= np.sqrt((weights**2).sum(axis=1, keepdims=True))
    basis = np.zeros((size, cells + 3), dtype=np.float32)
    np.put_along_axis(basis, cell.astype(np.intp)[:, None] + np.arange(4), weights, axis=1)
    return basis


def _spline_taps(size: int, cells: int, start: int, stop: int) -> slice:
    """Coarse nodes that pixels ``start:stop`` depend on (the basis is zero elsewhere)."""
    first = math.floor((start + 0.5) / size * cells)
    last = math.floor((stop - 0.5) / size * cells)
    return slice(first, last + 4)


def _spline_field(
    coarse: npt.NDArray[np.float32],
    basis_y: npt.NDArray[np.float32],
    basis_x: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Smooth field ``(..., h, w)`` from coarse noise ``(..., g, g)`` and two spline bases.

    ``basis_y`` has shape ``(h, g)`` and ``basis_x`` shape ``(w, g)`` (rows of
    :func:`_spline_basis`, columns cut to the nodes in use).

    Only broadcast multiply-adds (no BLAS), so a patient's field is bit-identical in any batch.
    """
    across = coarse[..., :, :1] * basis_x[:, 0]
    for k in range(1, basis_x.shape[1]):
        across += coarse[..., :, k : k + 1] * basis_x[:, k]
    field_ = across[..., :1, :] * basis_y[:, :1]
    for k in range(1, basis_y.shape[1]):
        field_ += across[..., k : k + 1, :] * basis_y[:, k : k + 1]
    return field_


def _gaussian_profile(
    coordinate: npt.NDArray[np.float32],
    centre: npt.NDArray[np.float32],
    sigma: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """One-dimensional Gaussian profiles, shape ``(n, size)``."""
    return np.asarray(
        np.exp(-0.5 * ((coordinate[None, :] - centre[:, None]) / sigma[:, None]) ** 2),
        dtype=np.float32,
    )


def _draw_lesion(
    layer: npt.NDArray[np.float32],
    mask: npt.NDArray[np.uint8],
    params: npt.NDArray[np.float64],
    texture: npt.NDArray[np.float32],
    edge_px: float,
) -> None:
    """Draw one lesion into a patient's lesion layer and mask (in place, on its bounding box).

    The mask is the hard ellipse; the intensity falls off over ``edge_px`` across its border.
    """
    size = layer.shape[0]
    cy, cx, ry, rx, angle, contrast, heterogeneity = params.tolist()
    ry_px = max(ry * size, 1.0)  # at least one pixel, so every lesion shows at small sizes
    rx_px = max(rx * size, 1.0)
    reach = max(ry_px, rx_px) + edge_px + 1.0
    y0, y1 = max(math.floor(cy * size - reach), 0), min(math.ceil(cy * size + reach), size)
    x0, x1 = max(math.floor(cx * size - reach), 0), min(math.ceil(cx * size + reach), size)
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy * size)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx * size)[None, :]
    cos, sin = math.cos(angle), math.sin(angle)
    along = dy * (cos / ry_px) + dx * (sin / ry_px)
    across = dx * (cos / rx_px) - dy * (sin / rx_px)
    q = along * along + across * across
    cells = texture.shape[-1] - 3
    basis = _spline_basis(size, cells)
    taps_y, taps_x = _spline_taps(size, cells, y0, y1), _spline_taps(size, cells, x0, x1)
    grain = _spline_field(texture[taps_y, taps_x], basis[y0:y1, taps_y], basis[x0:x1, taps_x])
    # Depth inside the border in pixels is about (1 - sqrt(q)) * radius.
    border = (1.0 - np.sqrt(q)) * (math.sqrt(ry_px * rx_px) / edge_px) + 0.5
    value = np.minimum(np.maximum(border, 0.0), 1.0) * contrast
    value *= 0.8 + 0.2 * np.maximum(1.0 - q, 0.0)
    value *= np.maximum(1.0 + heterogeneity * grain, 0.3)
    box = layer[y0:y1, x0:x1]
    np.maximum(box, value, out=box)
    mask[y0:y1, x0:x1][q <= 1.0] = 1


def _render(
    *,
    seed: int,
    bias: DemoBias | None,
    indices: npt.NDArray[np.int64],
    site_codes: npt.NDArray[np.int64],
    lesion_params: npt.NDArray[np.float64],
    lesion_counts: npt.NDArray[np.int64],
    size: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Render the scans of the given patients, in batches of :data:`_RENDER_BATCH_PIXELS`.

    Each patient's randomness comes from its own stream and every operation is per image, so the
    pixels of a patient never depend on which chunk or batch it is rendered in.
    """
    n = indices.size
    images = np.empty((n, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    first_lesion = np.concatenate([[0], np.cumsum(lesion_counts)]).astype(np.int64)
    batch = max(1, _RENDER_BATCH_PIXELS // (size * size))
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        rows = slice(start, stop)
        images[rows] = _render_batch(
            seed=seed,
            bias=bias,
            indices=indices[rows],
            site_codes=site_codes[rows],
            lesion_params=lesion_params[first_lesion[start] : first_lesion[stop]],
            lesion_counts=lesion_counts[rows],
            masks=masks[rows],
        )
    return images, masks


def _render_batch(
    *,
    seed: int,
    bias: DemoBias | None,
    indices: npt.NDArray[np.int64],
    site_codes: npt.NDArray[np.int64],
    lesion_params: npt.NDArray[np.float64],
    lesion_counts: npt.NDArray[np.int64],
    masks: npt.NDArray[np.uint8],
) -> npt.NDArray[np.float32]:
    """Render one batch: images ``(n, H, W)`` returned, lesion masks written into ``masks``."""
    n, size = masks.shape[0], masks.shape[1]
    texture_cells = max(2, size // _TEXTURE_CELL_PX)
    uniforms = np.empty((n, _N_ANATOMY_DRAWS), dtype=np.float32)
    low = np.empty((n, _LOW_FREQUENCY_CELLS + 3, _LOW_FREQUENCY_CELLS + 3), dtype=np.float32)
    texture = np.empty((n, texture_cells + 3, texture_cells + 3), dtype=np.float32)
    bank = _noise_bank(size)
    noise = np.empty((n, size, size), dtype=np.float32)
    for row, index in enumerate(indices.tolist()):
        rng = np.random.default_rng([seed, _RENDER_STREAM, index])
        rng.random(dtype=np.float32, out=uniforms[row])
        rng.standard_normal(dtype=np.float32, out=low[row])
        rng.standard_normal(dtype=np.float32, out=texture[row])
        top, left, flip = rng.integers(0, [bank.shape[0] - size, bank.shape[1] - size, 4])
        window = bank[top : top + size, left : left + size]
        noise[row] = window[:: -1 if flip & 1 else 1, :: -1 if flip & 2 else 1]
    u = uniforms.T  # one row per anatomical parameter, one column per patient
    scanners = _SITE_SCANNERS if bias is None else bias.scanners()
    lesion_gain = (1.0,) * len(SITES) if bias is None else bias.lesion_contrasts()
    scanner = np.asarray(
        [
            [s.gain, s.offset, s.curve, s.edge_px, s.noise_sd, g]
            for s, g in zip(scanners, lesion_gain, strict=True)
        ],
        dtype=np.float32,
    )[site_codes].T[:, :, None, None]
    gain, offset, curve, edge_px, noise_sd, lesion_visibility = scanner
    edge_px = np.maximum(edge_px * (size / 128), 0.5)

    coordinate = (np.arange(size, dtype=np.float32) + 0.5) / size
    # Body: slightly rotated ellipse; soft outline and a brighter rim (subcutaneous layer).
    # (1 - r**2) * 0.19 * size approximates the depth below the outline in pixels.
    body_cy, body_cx = 0.5 + 0.015 * (2 * u[0] - 1), 0.5 + 0.015 * (2 * u[1] - 1)
    body_ay, body_ax = 0.33 + 0.05 * u[2], 0.42 + 0.05 * u[3]
    theta = 0.08 * (2 * u[4] - 1)
    dy = (coordinate[None, :] - body_cy[:, None])[:, :, None]
    dx = (coordinate[None, :] - body_cx[:, None])[:, None, :]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    ay, ax = body_ay[:, None, None], body_ax[:, None, None]
    along = dy * (cos / ay) + dx * (sin / ay)
    across = dx * (cos / ax) - dy * (sin / ax)
    depth = (1.0 - along**2 - across**2) * (0.19 * size)
    body = np.clip(depth / edge_px + 0.5, 0.0, 1.0)
    rim = 0.12 * np.clip(np.minimum(depth, 0.03 * size - depth) / edge_px + 0.5, 0.0, 1.0)

    # Tissue with smooth low-frequency texture, two darker paired organs, a brighter organ and a
    # bright spine; Gaussian organs are separable, so each costs two full-size operations.
    low_basis = _spline_basis(size, _LOW_FREQUENCY_CELLS)
    tissue = (0.42 + 0.06 * u[5])[:, None, None] * (
        1.0 + 0.10 * _spline_field(low, low_basis, low_basis)
    )
    organs = (
        (
            -0.17,
            0.47 + 0.03 * (2 * u[6] - 1),
            0.33 - 0.02 * u[7],
            0.09 + 0.02 * u[8],
            0.05 + 0.01 * u[9],
        ),
        (
            -0.17,
            0.47 + 0.03 * (2 * u[10] - 1),
            0.67 + 0.02 * u[11],
            0.09 + 0.02 * u[12],
            0.05 + 0.01 * u[13],
        ),
        (
            0.08,
            0.36 + 0.04 * u[14],
            0.5 + 0.05 * (2 * u[15] - 1),
            0.06 + 0.02 * u[16],
            0.09 + 0.02 * u[17],
        ),
        (
            0.26,
            0.74 + 0.02 * u[18],
            0.5 + 0.01 * (2 * u[19] - 1),
            0.025 + 0.005 * u[20],
            0.025 + 0.005 * u[20],
        ),
    )
    for level, centre_y, centre_x, sigma_y, sigma_x in organs:
        profile_y = level * _gaussian_profile(coordinate, centre_y, sigma_y)
        profile_x = _gaussian_profile(coordinate, centre_x, sigma_x)
        tissue += profile_y[:, :, None] * profile_x[:, None, :]
    clean = body * (tissue + rim)

    # Lesions, each drawn on its bounding box; overlapping lesions keep the brighter value.
    first = 0
    for row, count in enumerate(lesion_counts.tolist()):
        layer = np.zeros((size, size), dtype=np.float32)
        for params in lesion_params[first : first + count]:
            _draw_lesion(layer, masks[row], params, texture[row], float(edge_px[row, 0, 0]))
        clean[row] += layer * lesion_visibility[row]
        first += count

    # Each site's scanner: intensity response, then Gaussian noise.
    images = gain * clean * (1.0 + curve * (clean - 0.45)) + offset + noise_sd * noise
    return np.asarray(images, dtype=np.float32)


# --- Splits and oracle -------------------------------------------------------------------------


def assign_splits(
    labels: npt.ArrayLike,
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> npt.NDArray[np.str_]:
    """Assign each patient to ``"train"``, ``"val"`` or ``"test"``, stratified by label.

    Within each label class the patients are shuffled with ``seed`` and cut by ``fractions``
    (largest-remainder rounding), so every split has the class balance of the whole cohort.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class label of each patient (one row per patient, so splits are patient-level).
    seed : int, default=0
        Seed of the shuffle.
    fractions : sequence of 3 floats, default=(0.6, 0.2, 0.2)
        Train, validation and test fractions; positive and summing to 1.

    Returns
    -------
    numpy.ndarray of shape (n_samples,), dtype str
        ``"train"``, ``"val"`` or ``"test"`` per patient.

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D, ``fractions`` is invalid, or a split would be empty.

    Examples
    --------
    >>> splits = assign_splits([0, 1] * 10, seed=0)
    >>> sorted(set(splits.tolist()))
    ['test', 'train', 'val']
    >>> int((splits == "train").sum())
    12
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D of shape (n_samples,), got shape {y.shape}.")
    seed = _check_int("seed", seed, 0, None, "pass a non-negative seed such as 0")
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.shape != (3,) or np.any(shares <= 0) or not math.isclose(shares.sum(), 1.0):
        raise ValueError(
            f"fractions must be three positive numbers summing to 1 (train, val, test), got "
            f"{tuple(fractions)}; use e.g. (0.6, 0.2, 0.2)."
        )
    names = np.asarray(["train", "val", "test"])
    splits = np.empty(y.size, dtype="<U5")
    rng = np.random.default_rng([seed, 2])
    _, codes = np.unique(y, return_inverse=True)
    for code in range(int(codes.max(initial=-1)) + 1):
        members = np.flatnonzero(codes == code)
        ideal = shares * members.size
        counts = np.floor(ideal).astype(np.int64)
        remainder = members.size - int(counts.sum())
        counts[np.argsort(-(ideal - counts), kind="stable")[:remainder]] += 1
        splits[rng.permutation(members)] = np.repeat(names, counts)
    present = set(splits.tolist())
    if present != set(names.tolist()):
        raise ValueError(
            f"{y.size} samples are too few to fill all three splits with fractions "
            f"{tuple(fractions)}; pass more samples or larger val/test fractions."
        )
    return splits


def _auroc(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve via the Mann-Whitney rank statistic (ties count half)."""
    positives = int(y.sum())
    negatives = y.size - positives
    ranks = stats.rankdata(score)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def oracle_aurocs(cohort: SyntheticCohort, mask: npt.ArrayLike | None = None) -> dict[str, float]:
    """AUROC against ``label`` of the true risk and of each modality's true logit alone.

    These are the ceilings a model can reach: ``"all"`` scores with ``true_risk`` (all
    modalities plus the received treatment); ``"demographics"``, ``"ehr"``, ``"genomics"`` and
    ``"imaging"`` with that modality's additive logit component alone.

    Parameters
    ----------
    cohort : SyntheticCohort
        The cohort.
    mask : array-like of bool of shape (n_patients,), default=None
        Patients to score (e.g. ``splits == "test"``); all patients if None.

    Returns
    -------
    dict of str to float
        Keys ``"all"`` then :data:`MODALITIES`.

    Raises
    ------
    ValueError
        If ``mask`` has the wrong shape or dtype, or selects patients of only one class.

    Examples
    --------
    >>> cohort = generate_cohort(500, seed=0, image_size=16)
    >>> scores = oracle_aurocs(cohort)
    >>> list(scores)
    ['all', 'demographics', 'ehr', 'genomics', 'imaging']
    """
    y = cohort.patients["label"].to_numpy(dtype=np.int64)
    keep = np.ones(y.size, dtype=bool)
    if mask is not None:
        keep = np.asarray(mask)
        if keep.dtype != np.bool_ or keep.shape != y.shape:
            raise ValueError(
                f"mask must be a boolean array of shape ({y.size},), got dtype {keep.dtype} and "
                f"shape {keep.shape}; pass e.g. splits == 'test'."
            )
    y = y[keep]
    if y.size == 0 or y.min() == y.max():
        raise ValueError(
            f"The selected {y.size} patients hold a single label class; AUROC needs both. "
            "Select more patients."
        )
    return truth_aurocs(cohort.truth.loc[keep], y)


def truth_aurocs(truth: pd.DataFrame, y: npt.ArrayLike) -> dict[str, float]:
    """AUROC against ``y`` of ``true_risk`` and of each ``logit_<modality>`` column of ``truth``.

    The same figures as :func:`oracle_aurocs`, from a ground-truth table (e.g. the store's
    ``ground_truth`` rows of the test split); rows align with ``y``.

    Examples
    --------
    >>> logits = {f"logit_{m}": [0.0, 1.0] for m in MODALITIES}
    >>> truth = pd.DataFrame({"true_risk": [0.1, 0.9], **logits})
    >>> truth_aurocs(truth, [0, 1])["all"]
    1.0
    """
    labels = np.asarray(y, dtype=np.int64)
    scores = {"all": truth["true_risk"]} | {name: truth[f"logit_{name}"] for name in MODALITIES}
    return {
        name: _auroc(labels, values.to_numpy(dtype=np.float64)) for name, values in scores.items()
    }
