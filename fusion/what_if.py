"""What-if edits of a patient's modifiable inputs.

Owns the set of inputs a what-if may change (:data:`EDITABLE`: lifestyle and treatable risk
factors), their plausible ranges (from :data:`data.vocabulary.FEATURE_SPECS`), the one validator
of ``overrides`` (:func:`validate_overrides`, also used by the treatment forecast), applying
overrides to a feature row, and the editor's rows; the result record
(:class:`fusion.records.WhatIfResult`) lives with the other records. Age, sex, genotypes, driver
mutations, diagnoses, history and the scan are not editable: the image embedding stays fixed.

Pure functions only; must not import streamlit or the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import pandas as pd

from data.vocabulary import FEATURE_SPECS, FeatureSpec
from fusion.display import feature_choices

__all__ = [
    "EDITABLE",
    "EDITABLE_SPECS",
    "NOT_A_CHOICE_MESSAGE",
    "NOT_EDITABLE_MESSAGE",
    "NOT_FINITE_MESSAGE",
    "NOT_INTEGER_MESSAGE",
    "NOT_IN_MODEL_MESSAGE",
    "OUT_OF_RANGE_MESSAGE",
    "UNKNOWN_MESSAGE",
    "apply_overrides",
    "editor_rows",
    "validate_overrides",
]

EDITABLE: Final[frozenset[str]] = frozenset(
    {"smoking", "bmi", "systolic_bp", "diastolic_bp", "hba1c", "ldl", "hdl", "on_statin"}
)
"""Inputs a what-if may change: modifiable by lifestyle or treatment."""

_SPECS: Final[Mapping[str, FeatureSpec]] = MappingProxyType({s.name: s for s in FEATURE_SPECS})

EDITABLE_SPECS: Final[tuple[FeatureSpec, ...]] = tuple(
    spec for spec in FEATURE_SPECS if spec.name in EDITABLE
)
"""Specs of the editable inputs, in model order."""

_INTEGER_KINDS: Final[frozenset[str]] = frozenset({"binary", "count", "categorical", "genotype"})

UNKNOWN_MESSAGE: Final[str] = (
    "Unknown override {name!r}: it is not a model input. Editable features are {allowed}; "
    "use one of these names."
)
NOT_EDITABLE_MESSAGE: Final[str] = (
    "{name!r} ({label}) is not modifiable and cannot be overridden; editable features are "
    "{allowed}. Remove {name!r} from the overrides."
)
NOT_FINITE_MESSAGE: Final[str] = (
    "{label} {value!r} is not a number; enter a value from {low:g} to {high:g}{unit}."
)
OUT_OF_RANGE_MESSAGE: Final[str] = (
    "{label} {value:g}{unit} is outside the plausible range {low:g} to {high:g}{unit}; "
    "enter a value in that range."
)
NOT_INTEGER_MESSAGE: Final[str] = (
    "{label} {value:g} must be a whole number from {low:g} to {high:g}; enter one of those."
)
NOT_A_CHOICE_MESSAGE: Final[str] = (
    "{label} {value:g} is not one of its choices ({choices}); choose one of these."
)
NOT_IN_MODEL_MESSAGE: Final[str] = (
    "Override {name!r} is editable but not an input of this model (inputs: {n} columns); "
    "rebuild the model with it or remove it from the overrides."
)


def _allowed() -> list[str]:
    return [spec.name for spec in EDITABLE_SPECS]


def _unit(spec: FeatureSpec) -> str:
    return f" {spec.unit}" if spec.unit else ""


def validate_overrides(overrides: Mapping[str, float]) -> dict[str, float]:
    """Check what-if edits and return them as floats.

    Parameters
    ----------
    overrides : mapping of str to float
        Input name -> new value, e.g. ``{"smoking": 0, "systolic_bp": 125}``. Names must be in
        :data:`EDITABLE`; values must be finite, inside the input's plausible range
        (:class:`data.vocabulary.FeatureSpec` ``low``/``high``) and whole numbers for coded
        inputs (smoking status, statin use).

    Returns
    -------
    dict of str to float
        The same edits, values converted to ``float``, in the given order.

    Raises
    ------
    ValueError
        For an unknown name, a non-modifiable input (age, sex, genotype ...), a value that is
        not a finite number, out of range, or not one of a coded input's choices. The message
        names the input by its label, the allowed set or range (codes with their words), and
        the fix.

    Examples
    --------
    >>> validate_overrides({"smoking": 0, "bmi": 24.5})
    {'smoking': 0.0, 'bmi': 24.5}
    >>> validate_overrides({"age": 40})
    Traceback (most recent call last):
    ...
    ValueError: 'age' (Age) is not modifiable and cannot be overridden; ...
    """
    checked: dict[str, float] = {}
    for name, raw in overrides.items():
        spec = _SPECS.get(name)
        if spec is None:
            raise ValueError(UNKNOWN_MESSAGE.format(name=name, allowed=_allowed()))
        if name not in EDITABLE:
            raise ValueError(
                NOT_EDITABLE_MESSAGE.format(name=name, label=spec.label, allowed=_allowed())
            )
        low = -math.inf if spec.low is None else spec.low
        high = math.inf if spec.high is None else spec.high
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(
                NOT_FINITE_MESSAGE.format(
                    label=spec.label, value=raw, low=low, high=high, unit=_unit(spec)
                )
            )
        choices = feature_choices(name)
        if choices is not None and value not in choices:
            raise ValueError(
                NOT_A_CHOICE_MESSAGE.format(
                    label=spec.label,
                    value=value,
                    choices=", ".join(f"{code:g} = {word}" for code, word in choices.items()),
                )
            )
        if not low <= value <= high:
            raise ValueError(
                OUT_OF_RANGE_MESSAGE.format(
                    label=spec.label, value=value, low=low, high=high, unit=_unit(spec)
                )
            )
        if spec.kind in _INTEGER_KINDS and not value.is_integer():
            raise ValueError(
                NOT_INTEGER_MESSAGE.format(label=spec.label, value=value, low=low, high=high)
            )
        checked[name] = value
    return checked


def apply_overrides(X: pd.DataFrame, overrides: Mapping[str, float]) -> pd.DataFrame:
    """A copy of feature rows with validated what-if edits applied to every row.

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
        Model inputs (e.g. :meth:`fusion.service.facade.RiskService.feature_row`).
    overrides : mapping of str to float
        Edits, checked with :func:`validate_overrides`.

    Returns
    -------
    DataFrame of shape (n_samples, n_features)
        ``X`` with the edited columns set; other inputs (the image score included) unchanged.

    Raises
    ------
    ValueError
        If an edit is invalid, or names an editable input that ``X`` lacks.

    Examples
    --------
    >>> X = pd.DataFrame({"age": [70.0], "smoking": [2.0]})
    >>> apply_overrides(X, {"smoking": 0}).to_dict("records")
    [{'age': 70.0, 'smoking': 0.0}]
    """
    checked = validate_overrides(overrides)
    edited = X.copy()
    for name, value in checked.items():
        if name not in edited.columns:
            raise ValueError(NOT_IN_MODEL_MESSAGE.format(name=name, n=len(edited.columns)))
        edited[name] = value
    return edited


def editor_rows(values: Mapping[str, float]) -> pd.DataFrame:
    """The editable inputs as an editor shows them, pre-filled with a patient's values.

    Parameters
    ----------
    values : mapping of str to float
        The patient's current inputs (NaN or absent when not recorded).

    Returns
    -------
    DataFrame
        One row per editable input in model order: ``feature, label, unit, kind, low, high,
        step, value, description``; ``step`` is 1 for coded inputs and 0.1 otherwise,
        ``value`` is NaN when not recorded.

    Examples
    --------
    >>> rows = editor_rows({"smoking": 2.0})
    >>> rows.loc[rows["feature"] == "smoking", ["low", "high", "step", "value"]].values.tolist()
    [[0.0, 2.0, 1.0, 2.0]]
    """
    return pd.DataFrame(
        {
            "feature": [s.name for s in EDITABLE_SPECS],
            "label": [s.label for s in EDITABLE_SPECS],
            "unit": [s.unit for s in EDITABLE_SPECS],
            "kind": [s.kind for s in EDITABLE_SPECS],
            "low": [math.nan if s.low is None else s.low for s in EDITABLE_SPECS],
            "high": [math.nan if s.high is None else s.high for s in EDITABLE_SPECS],
            "step": [1.0 if s.kind in _INTEGER_KINDS else 0.1 for s in EDITABLE_SPECS],
            "value": [float(values.get(s.name, math.nan)) for s in EDITABLE_SPECS],
            "description": [s.description for s in EDITABLE_SPECS],
        }
    )
