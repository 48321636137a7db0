"""Readable numbers and words for the pages and reports: one place for display formatting.

Owns how a value is written for people: risks and intervals with a precision that suits small
risks (0.5% stays "0.5%", not "0%"), model inputs with their unit and a sensible number of
decimals ("81 years", not "80.70"), coded inputs as words ("Sex = male", "Smoking status =
current"), confidence intervals as "0.798 (0.747-0.847)", the screening-threshold sentence,
a plain sentence for the risk interval, and metric tables with readable column names. Pure
functions: values and DataFrames in, strings and DataFrames out. Must not import streamlit or
the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from data.vocabulary import FEATURE_SPECS, FeatureSpec

if TYPE_CHECKING:
    from fusion.uncertainty import RiskInterval

__all__ = [
    "AUDIT_COLUMN_LABELS",
    "CODE_WORDS",
    "COLUMN_LABELS",
    "DISPLAY_LABELS",
    "feature_choices",
    "feature_label",
    "format_ci",
    "format_feature_value",
    "format_percent",
    "format_risk_interval",
    "interval_sentence",
    "no_interval_sentence",
    "readable_table",
    "threshold_sentence",
]

_SPECS: Final[Mapping[str, FeatureSpec]] = MappingProxyType({s.name: s for s in FEATURE_SPECS})

CODE_WORDS: Final[Mapping[str, Mapping[int, str]]] = MappingProxyType(
    {
        "sex_male": MappingProxyType({0: "female", 1: "male"}),
        "smoking": MappingProxyType({0: "never", 1: "former", 2: "current"}),
    }
)
"""Words of the coded inputs whose codes are not plain no/yes."""

_BINARY_WORDS: Final[Mapping[int, str]] = MappingProxyType({0: "no", 1: "yes"})

DISPLAY_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {"sex_male": "Sex", "image_score": "Scan score"}
)
"""Labels that read better than the catalogue's once the code is a word ("Sex = male")."""

_UNIT_DECIMALS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "years": 0,
        "mmHg": 0,
        "bpm": 0,
        "mL/min/1.73m²": 0,
        "kg/m²": 1,
        "%": 1,
        "mmol/L": 1,
        "mg/L": 1,
        "g/dL": 1,
        "logit": 2,
    }
)

COLUMN_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "auroc": "AUROC",
        "auprc": "AUPRC",
        "brier": "Brier score",
        "ece": "ECE",
        "tpr": "Sensitivity",
        "fpr": "False positive rate",
        "ppv": "PPV",
        "npv": "NPV",
        "n": "Patients",
        "pointing_game": "Pointing game (hit rate)",
        "energy_inside": "Energy inside lesion",
        "mean_risk_drop": "Mean risk drop",
        "pehe": "PEHE",
        "spearman": "Spearman",
    }
)
"""Readable names of metric columns; other columns get their underscores replaced."""

AUDIT_COLUMN_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        **COLUMN_LABELS,
        "group": "Group",
        "reference": "Reference",
        "prevalence": "Prevalence",
        "selection_rate": "Selection rate",
        "calibration_in_the_large": "Calibration in the large",
        "equalized_odds": "Equalized odds",
    }
)
"""Readable names of the bias audit's table columns (pages and tests read the same names)."""


def format_percent(probability: float | None) -> str:
    """A probability as a percentage with two significant digits in the tails.

    Whole percent from 10% to 90%, one decimal below 10% and above 90%, and "<0.1%" or
    ">99.9%" at the extremes, so a small risk never reads as "0%".

    Examples
    --------
    >>> [format_percent(p) for p in (0.005, 0.047, 0.2391, 0.903, 0.9971, 0.0004, 0.99996)]
    ['0.5%', '4.7%', '24%', '90.3%', '99.7%', '<0.1%', '>99.9%']
    >>> format_percent(float("nan"))
    'n/a'
    """
    if probability is None or math.isnan(probability):
        return "n/a"
    percent = 100.0 * probability
    if percent < 0.05:
        return "<0.1%" if percent > 0 else "0%"
    if percent >= 99.95:
        return ">99.9%" if percent < 100 else "100%"
    if 10.0 <= percent <= 90.0:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def format_risk_interval(low: float, high: float) -> str:
    """An interval of risks, e.g. ``'0.5% to 12%'``, with :func:`format_percent` precision.

    Examples
    --------
    >>> format_risk_interval(0.0049, 0.121)
    '0.5% to 12%'
    """
    return f"{format_percent(low)} to {format_percent(high)}"


def format_ci(value: float, low: float, high: float, *, decimals: int = 3) -> str:
    """An estimate with its confidence interval: ``'0.798 (0.747-0.847)'``.

    Examples
    --------
    >>> format_ci(0.79812, 0.7471, 0.8468)
    '0.798 (0.747-0.847)'
    >>> format_ci(0.5, float("nan"), float("nan"))
    '0.500'
    """
    if value is None or math.isnan(value):
        return "n/a"
    text = f"{value:.{decimals}f}"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return text
    return f"{text} ({low:.{decimals}f}-{high:.{decimals}f})"


def feature_label(feature: str, label: str) -> str:
    """The label to show with a word value (``'Sex'`` for ``sex_male``), else ``label``.

    Examples
    --------
    >>> feature_label("sex_male", "Male sex"), feature_label("bmi", "BMI")
    ('Sex', 'BMI')
    """
    return DISPLAY_LABELS.get(feature, label)


def feature_choices(feature: str) -> dict[float, str] | None:
    """Code -> word of a coded input (binary or categorical), or None for a measured one.

    Examples
    --------
    >>> feature_choices("smoking")
    {0.0: 'never', 1.0: 'former', 2.0: 'current'}
    >>> feature_choices("on_statin"), feature_choices("bmi")
    ({0.0: 'no', 1.0: 'yes'}, None)
    """
    spec = _SPECS.get(feature)
    if feature in CODE_WORDS:
        return {float(code): word for code, word in CODE_WORDS[feature].items()}
    if spec is not None and spec.kind == "binary":
        return {float(code): word for code, word in _BINARY_WORDS.items()}
    return None


def format_feature_value(feature: str, value: float | None, unit: str = "") -> str:
    """A model input's value as a person reads it: unit, sensible decimals, codes as words.

    Parameters
    ----------
    feature : str
        Column name (e.g. ``"age"``, ``"smoking"``, ``"image_score"``).
    value : float or None
        The value; NaN or None when not recorded.
    unit : str, default=""
        Unit from the feature catalogue (``"logit"`` for the scan score).

    Returns
    -------
    str
        ``'missing'`` when not recorded; words for coded inputs; ``'2 minor alleles'`` for
        genotypes; whole counts; otherwise the number with the unit's usual decimals (three
        significant digits for an unknown unit) followed by the unit.

    Examples
    --------
    >>> format_feature_value("age", 80.7, "years")
    '81 years'
    >>> format_feature_value("sex_male", 1.0), format_feature_value("diabetes", 1.0)
    ('male', 'yes')
    >>> format_feature_value("smoking", 2.0), format_feature_value("snp_004", 1.0)
    ('current', '1 minor allele')
    >>> format_feature_value("hba1c", 7.234, "%"), format_feature_value("image_score", 1.5, "logit")
    ('7.2%', '+1.50')
    >>> format_feature_value("bmi", float("nan"), "kg/m²")
    'missing'
    """
    if value is None or math.isnan(float(value)):
        return "missing"
    number = float(value)
    choices = feature_choices(feature)
    if choices is not None and number in choices:
        return choices[number]
    spec = _SPECS.get(feature)
    kind = spec.kind if spec is not None else "numeric"
    if kind == "genotype" and number.is_integer():
        return f"{number:.0f} minor allele{'' if number == 1 else 's'}"
    if kind == "count" and number.is_integer():
        return f"{number:.0f}"
    if unit == "logit":
        return f"{number:+.{_UNIT_DECIMALS['logit']}f}"
    decimals = _UNIT_DECIMALS.get(unit)
    text = f"{number:.3g}" if decimals is None else f"{number:.{decimals}f}"
    return f"{text}%" if unit == "%" else f"{text} {unit}".strip()


def threshold_sentence(risk: float, threshold: float) -> str:
    """Where a risk lies against the model's screening threshold, without a clinical category.

    Examples
    --------
    >>> threshold_sentence(0.58, 0.2234)
    "above the model's screening threshold of 22%"
    >>> threshold_sentence(0.05, 0.2234)
    "below the model's screening threshold of 22%"
    """
    side = "above" if risk >= threshold else "below"
    return f"{side} the model's screening threshold of {format_percent(threshold)}"


def interval_sentence(interval: RiskInterval) -> str:
    """One plain sentence: what the interval's level means and why it is wide.

    Examples
    --------
    >>> from fusion.uncertainty import RiskInterval
    >>> interval_sentence(RiskInterval(0.24, 0.9, 0.9, "cross_conformal_logit",
    ...                                target="true_risk", n_calibration=400))[:60]
    'For about 9 in 10 patients like this one, the true risk lies'
    """
    level = interval.level
    in_ten = round(10 * level)
    share = f"about {in_ten} in 10" if abs(10 * level - in_ten) < 0.05 else f"{level:.0%} of"
    span = format_risk_interval(interval.low, interval.high)
    if interval.target == "true_risk":
        return (
            f"For {share} patients like this one, the true risk lies inside such an interval "
            f"({span}); it is wide because patients with the same record and scan still differ "
            "in their true risk, and the interval has to cover that spread."
        )
    return (
        f"Among patients given this predicted risk, the event rate lies in {span} with about "
        f"{level:.0%} confidence (the range always includes this patient's risk); it is wide "
        "because only some of the patients it was calibrated on had a similar predicted risk "
        "and their outcomes vary."
    )


def no_interval_sentence(reason: str) -> str:
    """The sentence shown instead of a risk interval: the service's reason, as a sentence.

    Examples
    --------
    >>> no_interval_sentence("no interval: only 6 patients to calibrate a 90% interval; "
    ...                      "needs at least 9")
    'No interval: only 6 patients to calibrate a 90% interval; needs at least 9.'
    """
    text = reason.strip() or "no interval is available for this model"
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _column_label(name: str, labels: Mapping[str, str]) -> str:
    if name in labels:
        return labels[name]
    if name.endswith("_flag"):
        return f"{_column_label(name.removesuffix('_flag'), labels)} flagged"
    if name.startswith("diff_"):
        return f"{_column_label(name.removeprefix('diff_'), labels)} difference"
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def _number(value: object) -> float | None:
    """A cell as a float, or None when it is text (e.g. a suppression marker)."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if value is pd.NA:  # an empty cell of a nullable integer column (e.g. a hidden n)
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def readable_table(
    frame: pd.DataFrame,
    *,
    decimals: int = 3,
    percent: Sequence[str] = (),
    labels: Mapping[str, str] = COLUMN_LABELS,
    index_label: str | None = None,
) -> pd.DataFrame:
    """A metric table as strings: CIs merged, sensible decimals, readable column names.

    Parameters
    ----------
    frame : DataFrame
        Metrics; a column ``x`` with companions ``x_low`` and ``x_high`` becomes one column
        ``"<label of x> (95% CI)"`` reading ``'0.798 (0.747-0.847)'``.
    decimals : int, default=3
        Decimals of non-integer numbers that are not percentages.
    percent : sequence of str, default=()
        Columns (before renaming) that hold probabilities, shown with :func:`format_percent`.
    labels : mapping of str to str, default=COLUMN_LABELS
        Column name -> label; other names get their underscores replaced and a capital.
    index_label : str, optional
        Move the index into a first column of this name (e.g. ``"Model"``).

    Returns
    -------
    DataFrame
        Same rows, all cells strings (``'n/a'`` for missing numbers).

    Examples
    --------
    >>> frame = pd.DataFrame({"auroc": [0.79812], "auroc_low": [0.7471],
    ...                       "auroc_high": [0.8468], "n": [400], "tpr": [0.693]},
    ...                      index=pd.Index(["Fusion"], name="model"))
    >>> readable_table(frame, percent=["tpr"], index_label="Model").to_dict("records")
    [{'Model': 'Fusion', 'AUROC (95% CI)': '0.798 (0.747-0.847)', 'Patients': '400', \
'Sensitivity': '69%'}]
    """
    columns: dict[str, list[str]] = {}
    merged = {c for c in frame.columns if f"{c}_low" in frame and f"{c}_high" in frame}
    companions = {f"{c}{end}" for c in merged for end in ("_low", "_high")}
    for name in frame.columns:
        if name in companions:
            continue
        values = frame[name]
        label = _column_label(str(name), labels)
        if name in merged:
            low, high = frame[f"{name}_low"], frame[f"{name}_high"]
            cells = []
            for v, lo, hi in zip(values, low, high, strict=True):
                number, bottom, top = _number(v), _number(lo), _number(hi)
                if number is None:
                    cells.append(_cell(v, decimals))
                elif name in percent:
                    bounds = (
                        ""
                        if bottom is None or top is None or math.isnan(bottom) or math.isnan(top)
                        else f" ({format_risk_interval(bottom, top)})"
                    )
                    cells.append("n/a" if math.isnan(number) else format_percent(number) + bounds)
                else:
                    cells.append(
                        format_ci(
                            number,
                            math.nan if bottom is None else bottom,
                            math.nan if top is None else top,
                            decimals=decimals,
                        )
                    )
            columns[f"{label} (95% CI)"] = cells
        elif name in percent:
            columns[label] = [
                format_percent(number) if (number := _number(v)) is not None else _cell(v, 0)
                for v in values
            ]
        else:
            places = 0 if _whole(values) else decimals
            columns[label] = [_cell(v, places) for v in values]
    table = pd.DataFrame(columns, index=frame.index)
    if index_label is not None:
        table.index.name = index_label
        table = table.reset_index()
        table[index_label] = table[index_label].astype(str)
    return table


def _cell(value: object, decimals: int) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    number = _number(value)
    if number is None:
        return "n/a" if value is None else str(value)
    if math.isnan(number):
        return "n/a"
    if decimals == 0 and abs(number) >= 1e4:
        return f"{number:,.0f}"
    return f"{number:.{decimals}f}"


def _whole(values: pd.Series) -> bool:
    """Whether every numeric cell of a column is a whole number (counts)."""
    numbers = [n for n in map(_number, values) if n is not None and not math.isnan(n)]
    return bool(numbers) and all(n.is_integer() for n in numbers)
