"""Figure builders tested on fig.data: one colour encoding for direction, readable labels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.figures import (
    LOWERS_COLOUR,
    MODALITY_COLOURS,
    RAISES_COLOUR,
    make_beeswarm_figure,
    make_modality_figure,
    make_waterfall_figure,
    modality_range,
    waterfall_range,
)
from fusion.evaluation.importance import MAX_BEESWARM_POINTS
from fusion.records import PatientExplanation


def _explanation(shap: dict[str, float], *, totals: dict[str, float]) -> PatientExplanation:
    meta = {
        "age": ("Age", "years", "demographics", 80.7),
        "sex_male": ("Male sex", "", "demographics", 1.0),
        "diabetes": ("Diabetes", "", "ehr", 1.0),
        "smoking": ("Smoking status", "", "ehr", 2.0),
        "systolic_bp": ("Systolic BP", "mmHg", "ehr", 141.6),
        "image_score": ("Scan score (CNN logit)", "logit", "imaging", 1.234),
    }
    contributions = pd.DataFrame(
        [
            {
                "feature": name,
                "label": meta[name][0],
                "unit": meta[name][1],
                "modality": meta[name][2],
                "value": meta[name][3],
                "shap": value,
            }
            for name, value in sorted(shap.items(), key=lambda item: -abs(item[1]))
        ]
    )
    base = -1.0
    margin = base + sum(shap.values())
    return PatientExplanation(1 / (1 + math.exp(-margin)), base, margin, contributions, totals)


EXPLANATION = _explanation(
    {
        "age": 0.6,
        "sex_male": 0.3,
        "diabetes": 0.2,
        "smoking": -0.5,
        "systolic_bp": -0.1,
        "image_score": 0.4,
    },
    totals={"demographics": 0.9, "ehr": 0.97, "genomics": -0.3, "imaging": 0.4},
)


def test_modality_bars_are_coloured_by_direction_not_by_modality() -> None:
    fig = make_modality_figure(
        _explanation({"age": 0.1}, totals={"ehr": 0.97, "genomics": -0.3, "imaging": -0.2})
    )
    bar = fig.data[0]
    assert list(bar.y) == ["EHR", "Genomics", "Imaging"]  # modality is the label
    assert list(bar.marker.color) == [RAISES_COLOUR, LOWERS_COLOUR, LOWERS_COLOUR]


def test_waterfall_uses_the_same_direction_colours() -> None:
    trace = make_waterfall_figure(EXPLANATION).data[0]
    assert trace.increasing.marker.color == RAISES_COLOUR
    assert trace.decreasing.marker.color == LOWERS_COLOUR


def test_no_modality_colour_is_red_or_blue() -> None:
    assert not {RAISES_COLOUR, LOWERS_COLOUR} & set(MODALITY_COLOURS.values())


def test_beeswarm_value_colours_are_not_the_direction_scale() -> None:
    beeswarm = pd.DataFrame(
        {
            "label": ["Age", "Age"],
            "shap": [0.1, -0.2],
            "value_rank": [0.1, 0.9],
            "value": [40.0, 80.0],
        }
    )
    scale = make_beeswarm_figure(beeswarm).data[0].marker.colorscale
    colours = {str(colour).lower() for _, colour in scale}
    assert not {"rgb(178,24,43)", "rgb(33,102,172)"} & colours  # RdBu's red and blue ends


def test_waterfall_labels_show_words_units_and_sensible_precision() -> None:
    labels = list(make_waterfall_figure(EXPLANATION).data[0].y)
    assert "Age = 81 years" in labels
    assert "Sex = male" in labels
    assert "Diabetes = yes" in labels
    assert "Smoking status = current" in labels
    assert "Systolic BP = 142 mmHg" in labels
    assert "Scan score = +1.23" in labels
    assert not any("80.70" in label or label[-3:] == "= 1" for label in labels)


def _cumulative(explanation: PatientExplanation) -> list[float]:
    points = [0.0, explanation.base_value]
    for value in explanation.contributions["shap"]:
        points.append(points[-1] + value)
    return points


def test_value_labels_have_room_inside_the_axis() -> None:
    """Negative bars' outside labels stay in the plot, off the axis labels on the left."""
    fig = make_waterfall_figure(EXPLANATION)
    low, high = fig.layout.xaxis.range
    points = _cumulative(EXPLANATION)
    span = max(points) - min(points)
    assert low < min(points) - 0.15 * span
    assert high > max(points) + 0.15 * span
    assert fig.data[0].textposition == "outside"


def test_before_and_after_share_one_axis() -> None:
    after = _explanation(
        {"age": 0.6, "smoking": 1.5, "systolic_bp": 0.9},
        totals={"demographics": 0.6, "ehr": 2.4, "imaging": 0.0},
    )
    pair = [EXPLANATION, after]
    steps = waterfall_range(pair, top_n=8)
    bars = modality_range(pair)
    for explanation in pair:
        assert (
            tuple(make_waterfall_figure(explanation, top_n=8, x_range=steps).layout.xaxis.range)
            == steps
        )
        assert tuple(make_modality_figure(explanation, x_range=bars).layout.xaxis.range) == bars
        points = _cumulative(explanation)
        assert steps[0] < min(points)
        assert steps[1] > max(points)
    assert bars[0] < -0.3
    assert bars[1] > 2.4
    assert np.isfinite(steps).all()


def test_beeswarm_of_200k_patients_draws_a_fixed_sample_and_says_so() -> None:
    n = 200_000
    rng = np.random.default_rng(3)
    beeswarm = pd.concat(
        [
            pd.DataFrame(
                {
                    "label": label,
                    "shap": rng.normal(size=n),
                    "value": rng.normal(size=n),
                    "value_rank": np.arange(1, n + 1) / n,
                }
            )
            for label in ("Age", "Systolic BP")
        ],
        ignore_index=True,
    )
    fig = make_beeswarm_figure(beeswarm, n_patients=n)
    assert [len(trace.x) for trace in fig.data] == [MAX_BEESWARM_POINTS] * 2
    assert "2,000 of 200,000 patients" in fig.layout.title.text
    small = make_beeswarm_figure(beeswarm.groupby("label").head(10), n_patients=10)
    assert small.layout.title.text == "SHAP beeswarm of the top inputs (test split)"
