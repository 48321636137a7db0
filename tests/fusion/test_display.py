"""Display formatting: risks, intervals, input values, CIs and metric tables read as words."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fusion.display import (
    feature_choices,
    feature_label,
    format_ci,
    format_feature_value,
    format_percent,
    format_risk_interval,
    interval_sentence,
    readable_table,
    threshold_sentence,
)
from fusion.uncertainty import RiskInterval


@pytest.mark.parametrize(
    ("probability", "text"),
    [
        (0.005, "0.5%"),  # a small lower end is not "0%"
        (0.0004, "<0.1%"),
        (0.0, "0%"),
        (0.047, "4.7%"),
        (0.2391, "24%"),
        (0.5, "50%"),
        (0.903, "90.3%"),
        (0.9971, "99.7%"),
        (0.99996, ">99.9%"),
        (float("nan"), "n/a"),
    ],
)
def test_percent_keeps_two_significant_digits_in_the_tails(probability, text) -> None:
    assert format_percent(probability) == text


def test_risk_interval_shows_a_small_lower_end() -> None:
    assert format_risk_interval(0.005, 0.121) == "0.5% to 12%"
    assert format_risk_interval(0.24, 0.9) == "24% to 90%"


@pytest.mark.parametrize(
    ("feature", "value", "unit", "text"),
    [
        ("age", 80.7, "years", "81 years"),
        ("sex_male", 1.0, "", "male"),
        ("sex_male", 0.0, "", "female"),
        ("diabetes", 1.0, "", "yes"),
        ("on_statin", 0.0, "", "no"),
        ("smoking", 2.0, "", "current"),
        ("smoking", 0.0, "", "never"),
        ("driver_kras", 1.0, "", "yes"),
        ("snp_004", 2.0, "", "2 minor alleles"),
        ("prior_events", 3.0, "", "3"),
        ("systolic_bp", 141.6, "mmHg", "142 mmHg"),
        ("hba1c", 7.234, "%", "7.2%"),
        ("ldl", 3.456, "mmol/L", "3.5 mmol/L"),
        ("egfr", 88.44, "mL/min/1.73m²", "88 mL/min/1.73m²"),
        ("image_score", 1.234, "logit", "+1.23"),
        ("unknown_lab", 12.3456, "U/L", "12.3 U/L"),
        ("bmi", float("nan"), "kg/m²", "missing"),
    ],
)
def test_feature_values_carry_units_sensible_decimals_and_words(feature, value, unit, text) -> None:
    assert format_feature_value(feature, value, unit) == text


def test_coded_inputs_have_choices_and_readable_labels() -> None:
    assert feature_choices("smoking") == {0.0: "never", 1.0: "former", 2.0: "current"}
    assert feature_choices("on_statin") == {0.0: "no", 1.0: "yes"}
    assert feature_choices("bmi") is None
    assert feature_label("sex_male", "Male sex") == "Sex"
    assert feature_label("age", "Age") == "Age"


def test_ci_reads_like_value_then_bounds() -> None:
    assert format_ci(0.79812, 0.7471, 0.8468) == "0.798 (0.747-0.847)"
    assert format_ci(0.5, math.nan, math.nan) == "0.500"
    assert format_ci(math.nan, 0.1, 0.2) == "n/a"


def test_threshold_sentence_names_the_threshold_not_a_category() -> None:
    above = threshold_sentence(0.58, 0.2234)
    assert above == "above the model's screening threshold of 22%"
    assert "high risk" not in above
    assert threshold_sentence(0.05, 0.2234).startswith("below")


@pytest.mark.parametrize("target", ["true_risk", "event_rate"])
def test_interval_sentence_says_what_90_percent_means_and_why_it_is_wide(target) -> None:
    interval = RiskInterval(0.005, 0.9, 0.9, "m", target=target, n_calibration=400)
    sentence = interval_sentence(interval)
    assert "0.5% to 90%" in sentence
    assert "wide because" in sentence
    assert ("9 in 10" in sentence) or ("90% confidence" in sentence)


def test_readable_table_merges_cis_and_renames_columns() -> None:
    frame = pd.DataFrame(
        {
            "auroc": [0.79812, 0.61],
            "auroc_low": [0.7471, 0.55],
            "auroc_high": [0.8468, 0.67],
            "tpr": [0.6931, 0.5],
            "tpr_low": [0.63, 0.4],
            "tpr_high": [0.75, 0.6],
            "brier": [0.123456, math.nan],
            "n_patients": [400, 400],
        },
        index=pd.Index(["Fusion (all modalities)", "EHR only"], name="model"),
    )
    table = readable_table(frame, percent=["tpr"], index_label="Model")
    assert list(table.columns) == [
        "Model",
        "AUROC (95% CI)",
        "Sensitivity (95% CI)",
        "Brier score",
        "N patients",
    ]
    assert table.iloc[0].tolist() == [
        "Fusion (all modalities)",
        "0.798 (0.747-0.847)",
        "69% (63% to 75%)",
        "0.123",
        "400",
    ]
    assert table.loc[1, "Brier score"] == "n/a"
    assert not any("_" in column for column in table.columns)
