"""The tabular synthetic world: demographics, EHR, genotypes, lesions, treatment and outcome.

Owns :func:`simulate_world`, the vectorised simulation of every per-patient and per-lesion array
(see :mod:`data.synthetic` for the world in short), and :func:`patient_ids`. Imports only
:mod:`data.vocabulary` and the sibling modules ``parameters`` and ``bias``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from data.synthetic.bias import DemoBias
from data.synthetic.parameters import (
    CAUSAL_SNPS,
    CENSOR_RANGE,
    COMPONENT_SD,
    DIABETES_SHIFT_BY_ETHNICITY,
    EGFR_DRIVER_P_BY_ETHNICITY,
    EHR_SPECS,
    ETHNICITY_P,
    INTERCEPT,
    KRAS_DRIVER_P,
    LESION_AREA_SCALE,
    LESION_CONTRAST_RANGE,
    LESION_LOG_RATE,
    LESION_RADIUS_RANGE,
    LESION_REGION,
    LESION_SEVERITY_SLOPE,
    LESION_TEXTURE_RANGE,
    MAX_LESIONS,
    N_SNPS,
    P_MISSING,
    P_MISSING_CRP_BASE,
    P_MISSING_HBA1C,
    P_MISSING_LIPIDS,
    RAW_MOMENTS,
    REFERENCE_CONTRAST,
    SITE_MISSING_FACTOR,
    SITE_P_BY_ETHNICITY,
    STANDARD_EFFECT,
    TABULAR_STREAM,
    TARGETED_EFFECT_CARRIER,
    TARGETED_EFFECT_NONCARRIER,
    TP53_DRIVER_P,
)
from data.vocabulary import ETHNICITIES, HORIZON_YEARS

__all__ = ["TabularWorld", "patient_ids", "simulate_world"]


def _snp_mafs() -> npt.NDArray[np.float64]:
    """Minor-allele frequencies, shape ``(len(ETHNICITIES), N_SNPS)``.

    Population MAFs spread evenly over [0.05, 0.5] (golden-ratio sequence); each ancestry group
    shifts them by at most 0.04 (population stratification).
    """
    j = np.arange(N_SNPS, dtype=np.float64)
    base = 0.05 + 0.45 * np.mod(0.1 + j * 0.6180339887498949, 1.0)
    group = np.arange(len(ETHNICITIES), dtype=np.float64)[:, None]
    shift = 0.04 * np.sin(1.7 * j[None, :] * (group + 1.0) + group) * (group > 0)
    return np.clip(base[None, :] + shift, 0.03, 0.5)


def _standardise(raw: npt.NDArray[np.float64], modality: str) -> npt.NDArray[np.float64]:
    mean, sd = RAW_MOMENTS[modality]
    return (raw - mean) * (COMPONENT_SD[modality] / sd)


def patient_ids(n: int) -> npt.NDArray[np.str_]:
    """Identifiers ``P0000001`` ... built digit by digit (fast for millions)."""
    number = np.arange(1, n + 1, dtype=np.int64)
    powers = 10 ** np.arange(6, -1, -1, dtype=np.int64)
    chars = np.empty((n, 8), dtype=np.uint8)
    chars[:, 0] = ord("P")
    chars[:, 1:] = (number[:, None] // powers) % 10 + ord("0")
    return np.asarray(chars.view("S8").ravel().astype(np.str_))


@dataclass(frozen=True, slots=True)
class TabularWorld:
    """Every simulated per-patient and per-lesion array, before framing."""

    columns: dict[str, npt.NDArray[np.generic]]
    ehr: dict[str, npt.NDArray[np.float64]]
    genomics: dict[str, npt.NDArray[np.int8]]
    truth: dict[str, npt.NDArray[np.generic]]
    lesions: dict[str, npt.NDArray[np.float64]]
    lesion_patient: npt.NDArray[np.int64]


def simulate_world(n: int, seed: int, bias: DemoBias | None) -> TabularWorld:
    """Simulate the whole tabular world for ``n`` patients (see the module docstring)."""
    rng = np.random.default_rng([seed, TABULAR_STREAM])

    # Demographics and latent severities. The bias changes recruitment shares only: choice()
    # draws one uniform per patient either way, so every later draw stays aligned.
    age = np.round(np.clip(rng.normal(61.0, 13.0, n), 18.0, 95.0), 1)
    male = rng.random(n) < 0.48
    shares = ETHNICITY_P if bias is None else bias.ethnicity_p()
    ethnicity = rng.choice(len(ETHNICITIES), size=n, p=shares)
    site_cdf = np.cumsum(np.asarray(SITE_P_BY_ETHNICITY), axis=1)
    site = (rng.random(n)[:, None] > site_cdf[ethnicity, :-1]).sum(axis=1)
    age_z = (age - 61.0) / 13.0
    severity = 0.35 * age_z + math.sqrt(1.0 - 0.35**2) * rng.standard_normal(n)
    imaging_severity = 0.3 * severity + math.sqrt(1.0 - 0.3**2) * rng.standard_normal(n)

    # EHR: true values, physiology-shaped, clipped to the plausible ranges.
    diabetes_shift = np.asarray(DIABETES_SHIFT_BY_ETHNICITY)[ethnicity]
    diabetes = rng.random(n) < special.expit(
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
    on_statin = rng.random(n) < special.expit(
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
    for spec in EHR_SPECS:
        low = -np.inf if spec.low is None else spec.low
        high = np.inf if spec.high is None else spec.high
        ehr_true[spec.name] = np.clip(raw_ehr[spec.name], low, high)

    # Genomics: Hardy-Weinberg genotypes with ancestry-specific MAFs, then driver mutations.
    # One uniform per genotype: 0 below (1 - p)**2, 2 above 1 - p**2, else 1.
    mafs = _snp_mafs()
    below_one = ((1.0 - mafs) ** 2).astype(np.float32)
    below_two = (1.0 - mafs**2).astype(np.float32)
    genomics: dict[str, npt.NDArray[np.int8]] = {}
    for j in range(N_SNPS):
        draw = rng.random(n, dtype=np.float32)
        genotype = (draw >= below_one[ethnicity, j]).astype(np.int8)
        genotype += draw >= below_two[ethnicity, j]
        genomics[f"snp_{j + 1:03d}"] = genotype
    egfr_p = np.asarray(EGFR_DRIVER_P_BY_ETHNICITY)[ethnicity]
    genomics["driver_egfr"] = (rng.random(n) < egfr_p).astype(np.int8)
    genomics["driver_kras"] = (rng.random(n) < KRAS_DRIVER_P).astype(np.int8)
    genomics["driver_tp53"] = (rng.random(n) < TP53_DRIVER_P).astype(np.int8)

    # Imaging: lesion count, geometry and appearance from the imaging severity.
    rate = np.exp(LESION_LOG_RATE + LESION_SEVERITY_SLOPE * imaging_severity)
    lesion_count = np.minimum(rng.poisson(rate), MAX_LESIONS).astype(np.int64)
    lesion_patient = np.repeat(np.arange(n, dtype=np.int64), lesion_count)
    n_lesions = lesion_patient.size
    lesion_severity = imaging_severity[lesion_patient]
    r_low, r_high = LESION_RADIUS_RANGE
    radius = 0.055 * np.exp(0.25 * lesion_severity + 0.35 * rng.standard_normal(n_lesions))
    aspect = np.exp(np.clip(0.25 * rng.standard_normal(n_lesions), -0.5, 0.5))
    ry = np.clip(radius * np.sqrt(aspect), r_low, r_high)
    rx = np.clip(radius / np.sqrt(aspect), r_low, r_high)
    angle = rng.uniform(0.0, math.pi, n_lesions)
    contrast = np.clip(
        0.45 + 0.08 * lesion_severity + 0.10 * rng.standard_normal(n_lesions),
        *LESION_CONTRAST_RANGE,
    )
    texture = np.clip(
        0.18 + 0.06 * lesion_severity + 0.07 * rng.standard_normal(n_lesions),
        *LESION_TEXTURE_RANGE,
    )
    reach = np.maximum(ry, rx)
    rho = np.sqrt(rng.random(n_lesions))
    phi = rng.uniform(0.0, 2.0 * math.pi, n_lesions)
    cy = 0.5 + (LESION_REGION[0] - reach) * rho * np.sin(phi)
    cx = 0.5 + (LESION_REGION[1] - reach) * rho * np.cos(phi)
    area = math.pi * ry * rx
    lesion_area = np.bincount(lesion_patient, weights=area, minlength=n)
    burden = np.bincount(lesion_patient, weights=area * contrast / REFERENCE_CONTRAST, minlength=n)

    # Additive true logit components (fixed standardisation, see RAW_MOMENTS).
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
    raw_imaging = np.log1p(burden / LESION_AREA_SCALE)
    components = {
        "demographics": _standardise(raw_demographics, "demographics"),
        "ehr": _standardise(raw_ehr_logit, "ehr"),
        "genomics": _standardise(raw_genomics, "genomics"),
        "imaging": _standardise(raw_imaging, "imaging"),
    }
    base_logit = INTERCEPT + sum(components.values(), np.zeros(n))

    # Treatment, confounded by severity and visible disease; targeted therapy for EGFR carriers.
    carrier = genomics["driver_egfr"] == 1
    treated = rng.random(n) < special.expit(-0.4 + 0.9 * severity + 0.5 * (lesion_count > 0))
    targeted = rng.random(n) < special.expit(-1.6 + 2.6 * carrier + 0.2 * severity)
    treatment = np.where(treated, np.where(targeted, 2, 1), 0)
    effects = np.stack(
        [
            np.zeros(n),
            np.full(n, STANDARD_EFFECT),
            np.where(carrier, TARGETED_EFFECT_CARRIER, TARGETED_EFFECT_NONCARRIER),
        ],
        axis=1,
    )
    risk_by_treatment = special.expit(base_logit[:, None] + effects)
    true_risk = risk_by_treatment[np.arange(n), treatment]

    # Outcome: exponential event time with P(T <= horizon) = true_risk; uniform censoring.
    hazard = -np.log1p(-np.minimum(true_risk, 1.0 - 1e-12)) / HORIZON_YEARS
    event_time_true = rng.exponential(1.0, n) / np.maximum(hazard, 1e-12)
    censor_time = rng.uniform(*CENSOR_RANGE, n)
    label = (event_time_true <= HORIZON_YEARS).astype(np.int64)

    # Missingness: site-dependent, lipids together, CRP more often measured in the sick,
    # HbA1c mostly measured in diabetics.
    factor = np.asarray(SITE_MISSING_FACTOR)[site]
    ehr_observed = {name: values.copy() for name, values in ehr_true.items()}
    for name, p_missing in P_MISSING.items():
        ehr_observed[name][rng.random(n) < p_missing * factor] = np.nan
    lipids_missing = rng.random(n) < P_MISSING_LIPIDS * factor
    ehr_observed["ldl"][lipids_missing] = np.nan
    ehr_observed["hdl"][lipids_missing] = np.nan
    p_crp = np.clip(P_MISSING_CRP_BASE * factor * np.exp(-0.4 * severity), 0.0, 0.9)
    ehr_observed["crp"][rng.random(n) < p_crp] = np.nan
    p_hba1c = np.where(diabetes, P_MISSING_HBA1C[1], P_MISSING_HBA1C[0]) * factor
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
    return TabularWorld(columns, ehr_observed, genomics, truth, lesions, lesion_patient)
