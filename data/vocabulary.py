"""Clinical vocabulary shared by the generator, the importer, the model and the pages.

Owns the modality set and its display labels, the tabular model inputs with their label, unit,
plausible range and modality (:class:`FeatureSpec`, :data:`FEATURE_SPECS`), the treatments, the
sensitive-attribute categories of the demo world, the prediction horizon and the words of an
outcome (:class:`OutcomeSpec`: the demo's :data:`DEMO_OUTCOME`, an imported cohort's own
declaration, :data:`UNDECLARED_OUTCOME` otherwise). Pure constants and one small record:
imports nothing from the project and nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

__all__ = [
    "DEMO_OUTCOME",
    "DRIVERS",
    "EHR_COLUMNS",
    "ETHNICITIES",
    "FEATURE_SPECS",
    "GENOMICS_COLUMNS",
    "HORIZON_YEARS",
    "MASKABLE_MODALITIES",
    "MODALITIES",
    "MODALITY_LABELS",
    "SEXES",
    "SITES",
    "TREATMENTS",
    "UNDECLARED_OUTCOME",
    "FeatureSpec",
    "MaskableModality",
    "Modality",
    "OutcomeSpec",
]

HORIZON_YEARS: Final[float] = 5.0
"""Prediction horizon in years: ``label`` is 1 if the event happens within it."""


@dataclass(frozen=True, slots=True)
class OutcomeSpec:
    """What ``label = 1`` means in a cohort: the words every page, report and export uses.

    Attributes
    ----------
    name : str
        Short name of the positive outcome, e.g. ``"5-year event"`` or ``"Current
        diagnosis"``; the risk is shown as "Fused risk (<name>)".
    description : str
        One sentence for tooltips and reports.
    horizon_years : float or None
        Prediction horizon in years when the label is an event within a time window; None for
        a cross-sectional outcome (present or not at the visit).

    Examples
    --------
    >>> OutcomeSpec("Current diagnosis").risk_label
    'Fused risk (Current diagnosis)'
    >>> OutcomeSpec("Current diagnosis").outcome_text(0)
    'Current diagnosis: no'
    >>> DEMO_OUTCOME.outcome_text(1)
    'event within 5 years'
    """

    name: str
    description: str = ""
    horizon_years: float | None = None

    @property
    def risk_label(self) -> str:
        """The risk's title, e.g. ``"Fused risk (5-year event)"``."""
        return f"Fused risk ({self.name})"

    @property
    def risk_help(self) -> str:
        """One sentence on what the risk is the probability of."""
        text = f"Probability of the outcome '{self.name}' from the fusion model."
        return f"{text} {self.description}".strip() if self.description else text

    def outcome_text(self, label: int) -> str:
        """The observed outcome in words (``label`` 1 or 0)."""
        if self == DEMO_OUTCOME:
            return "event within 5 years" if label else "no event within 5 years"
        return f"{self.name}: {'yes' if label else 'no'}"


DEMO_OUTCOME: Final[OutcomeSpec] = OutcomeSpec(
    "5-year event", "An event within 5 years of baseline (synthetic demo world).", 5.0
)
"""The outcome of the synthetic demo and of cohorts built from it."""

UNDECLARED_OUTCOME: Final[OutcomeSpec] = OutcomeSpec(
    "label = 1", "The cohort's schema declares no outcome ([outcome] in schema.toml)."
)
"""The words for an imported cohort whose schema declared no outcome."""

TREATMENTS: Final[tuple[str, ...]] = ("none", "standard", "targeted")
SEXES: Final[tuple[str, ...]] = ("F", "M")
ETHNICITIES: Final[tuple[str, ...]] = ("White", "Black", "Asian", "Hispanic", "Other")
SITES: Final[tuple[str, ...]] = ("site_a", "site_b", "site_c")

Modality = Literal["demographics", "ehr", "genomics", "imaging"]
MODALITIES: Final[tuple[Modality, ...]] = ("demographics", "ehr", "genomics", "imaging")
"""Every modality of a model input, in model order."""

MODALITY_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {"demographics": "Demographics", "ehr": "EHR", "genomics": "Genomics", "imaging": "Imaging"}
)
"""Display label of each of :data:`MODALITIES`."""

MaskableModality = Literal["imaging", "genomics", "ehr"]
MASKABLE_MODALITIES: Final[tuple[MaskableModality, ...]] = ("imaging", "genomics", "ehr")
"""Modalities a patient may lack (demographics are always known), in what-if toggle order.

Interval calibrations and the what-if without a test are keyed by combinations of these, in
this order.
"""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Metadata of one tabular model input.

    Attributes
    ----------
    name : str
        Column name (snake_case), e.g. ``"hba1c"``.
    modality : {"demographics", "ehr", "genomics"}
        Modality the input belongs to.
    label : str
        Readable name, e.g. ``"HbA1c"``.
    unit : str
        Unit, e.g. ``"%"`` or ``"mmHg"``; ``""`` if unitless.
    kind : {"numeric", "binary", "count", "categorical", "genotype"}
        Value type. Categorical inputs are integer codes (see ``description``); genotypes count
        minor alleles (0, 1 or 2).
    low, high : float or None
        Plausible range of the value (inclusive), for validation and what-if edits.
    description : str
        One sentence for tooltips and documentation.
    """

    name: str
    modality: Literal["demographics", "ehr", "genomics"]
    label: str
    unit: str
    kind: Literal["numeric", "binary", "count", "categorical", "genotype"]
    low: float | None
    high: float | None
    description: str


_N_SNPS: Final[int] = 60

_DEMOGRAPHIC_SPECS: Final[tuple[FeatureSpec, ...]] = (
    FeatureSpec("age", "demographics", "Age", "years", "numeric", 18.0, 95.0, "Age at baseline."),
    FeatureSpec(
        "sex_male", "demographics", "Male sex", "", "binary", 0.0, 1.0, "1 if male, 0 if female."
    ),
)

_EHR_SPECS: Final[tuple[FeatureSpec, ...]] = (
    FeatureSpec("bmi", "ehr", "BMI", "kg/m²", "numeric", 15.0, 60.0, "Body-mass index."),
    FeatureSpec(
        "systolic_bp", "ehr", "Systolic BP", "mmHg", "numeric", 80.0, 220.0, "Systolic pressure."
    ),
    FeatureSpec(
        "diastolic_bp", "ehr", "Diastolic BP", "mmHg", "numeric", 40.0, 130.0, "Diastolic pressure."
    ),
    FeatureSpec("heart_rate", "ehr", "Heart rate", "bpm", "numeric", 35.0, 180.0, "Resting pulse."),
    FeatureSpec("hba1c", "ehr", "HbA1c", "%", "numeric", 4.0, 15.0, "Glycated haemoglobin."),
    FeatureSpec(
        "egfr",
        "ehr",
        "eGFR",
        "mL/min/1.73m²",
        "numeric",
        5.0,
        140.0,
        "Estimated glomerular filtration rate (kidney function).",
    ),
    FeatureSpec("ldl", "ehr", "LDL cholesterol", "mmol/L", "numeric", 0.5, 8.0, "LDL cholesterol."),
    FeatureSpec("hdl", "ehr", "HDL cholesterol", "mmol/L", "numeric", 0.3, 3.5, "HDL cholesterol."),
    FeatureSpec("crp", "ehr", "CRP", "mg/L", "numeric", 0.1, 200.0, "C-reactive protein."),
    FeatureSpec(
        "hemoglobin", "ehr", "Haemoglobin", "g/dL", "numeric", 6.0, 19.0, "Blood haemoglobin."
    ),
    FeatureSpec(
        "smoking",
        "ehr",
        "Smoking status",
        "",
        "categorical",
        0.0,
        2.0,
        "Smoking status code: 0 never, 1 former, 2 current.",
    ),
    FeatureSpec("diabetes", "ehr", "Diabetes", "", "binary", 0.0, 1.0, "Diagnosed diabetes."),
    FeatureSpec(
        "prior_events",
        "ehr",
        "Prior events",
        "",
        "count",
        0.0,
        20.0,
        "Number of earlier hospital admissions for the disease.",
    ),
    FeatureSpec("on_statin", "ehr", "On statin", "", "binary", 0.0, 1.0, "Takes a statin."),
)

DRIVERS: Final[tuple[str, ...]] = ("driver_egfr", "driver_kras", "driver_tp53")
"""Somatic driver-mutation flags (binary genomics inputs)."""

_DRIVER_LABELS: Final[dict[str, str]] = {
    "driver_egfr": "EGFR driver",
    "driver_kras": "KRAS driver",
    "driver_tp53": "TP53 driver",
}

_GENOMIC_SPECS: Final[tuple[FeatureSpec, ...]] = tuple(
    FeatureSpec(
        f"snp_{j:03d}",
        "genomics",
        f"SNP {j:03d}",
        "",
        "genotype",
        0.0,
        2.0,
        f"Minor-allele count (0, 1 or 2) at germline variant {j:03d}.",
    )
    for j in range(1, _N_SNPS + 1)
) + tuple(
    FeatureSpec(
        name,
        "genomics",
        _DRIVER_LABELS[name],
        "",
        "binary",
        0.0,
        1.0,
        f"1 if the tumour carries a {_DRIVER_LABELS[name].split()[0]} driver mutation.",
    )
    for name in DRIVERS
)

FEATURE_SPECS: Final[tuple[FeatureSpec, ...]] = _DEMOGRAPHIC_SPECS + _EHR_SPECS + _GENOMIC_SPECS
"""Every tabular model input, in model order: demographics, EHR, genomics.

``age`` is the ``patients`` column of that name and ``sex_male`` is ``patients.sex == "M"``;
ethnicity and site are sensitive attributes, not model inputs.
"""

EHR_COLUMNS: Final[tuple[str, ...]] = tuple(spec.name for spec in _EHR_SPECS)
GENOMICS_COLUMNS: Final[tuple[str, ...]] = tuple(spec.name for spec in _GENOMIC_SPECS)
