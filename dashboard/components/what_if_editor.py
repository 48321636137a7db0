"""What-if editor (modifiable inputs, Apply / Reset) and the before/after comparison."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.figures import (
    format_value,
    make_forecast_figure,
    make_modality_figure,
    make_waterfall_figure,
    modality_range,
    waterfall_range,
)
from dashboard.resources import get_forecast
from dashboard.state import get_what_if_overrides, set_what_if_overrides
from data.vocabulary import MODALITY_LABELS
from fusion.admin.access import Identity
from fusion.display import feature_choices, feature_label
from fusion.service.cohort_words import cohort_words
from fusion.service.facade import RiskService
from fusion.service.patient_case import PatientCase
from fusion.what_if import EDITABLE, editor_rows, validate_overrides

__all__ = ["render_what_if_comparison", "render_what_if_editor"]

N_COLUMNS = 4


def _widget_key(key: str, patient_id: str, feature: str) -> str:
    return f"{key}.{patient_id}.{feature}"


def _recorded_input(value: float) -> float | None:
    """A recorded value as a widget holds it (None when not recorded)."""
    return None if value is None or math.isnan(value) else float(value)


def _reset(key: str, patient_id: str, recorded: dict[str, float | None]) -> None:
    """Clear the applied edits and put every input back to the patient's recorded value."""
    set_what_if_overrides(key, patient_id, {})
    for feature, value in recorded.items():
        st.session_state[_widget_key(key, patient_id, feature)] = value


def _edits(entered: dict[str, float | None], recorded: dict[str, float | None]) -> dict:
    """The inputs whose entered value differs from the recorded one (blank = unchanged)."""
    return {
        name: value
        for name, value in entered.items()
        if value is not None and value != recorded.get(name)
    }


def render_what_if_editor(
    service: RiskService, case: PatientCase, *, key: str, identity: Identity | None = None
) -> dict[str, float]:
    """Inputs for the modifiable factors, pre-filled; returns the applied edits.

    Measured inputs are number boxes with their unit and range; coded inputs (smoking status,
    statin use) are labelled choices. Edits take effect when **Apply** is pressed (validated
    with :func:`fusion.what_if.validate_overrides`; an invalid one shows the message and stops
    the page); **Reset** clears the applied edits and puts every input back to the recorded
    value. Non-modifiable inputs are listed read-only. Each applied edit is written to the
    audit trail as ``what_if`` when ``identity`` is given. The recorded values are the loaded
    ``case``'s model inputs.
    """
    patient_id = case.patient_id
    values = case.recorded_values()
    rows = editor_rows(values)
    rows = rows.loc[rows["feature"].isin(values)]  # only inputs of this model
    recorded = {
        str(f): _recorded_input(v) for f, v in zip(rows["feature"], rows["value"], strict=True)
    }
    entered: dict[str, float | None] = {}
    columns = st.columns(N_COLUMNS)
    for index, row in enumerate(rows.itertuples()):
        feature = str(row.feature)
        widget_key = _widget_key(key, patient_id, feature)
        if widget_key not in st.session_state:
            st.session_state[widget_key] = recorded[feature]
        shown = format_value(row.value, str(row.unit), feature)
        choices = feature_choices(feature)
        with columns[index % N_COLUMNS]:
            if choices is not None:
                value = st.selectbox(
                    str(row.label),
                    list(choices),
                    format_func=lambda code, words=choices: words.get(code, f"{code:g}"),
                    placeholder="not recorded",
                    help=f"{row.description} Recorded: {shown}.",
                    key=widget_key,
                )
            else:
                unit = f" {row.unit}" if row.unit else ""
                value = st.number_input(
                    f"{row.label}{f' ({row.unit})' if row.unit else ''}",
                    step=float(row.step),
                    format="%.0f" if row.step == 1 else "%.1f",
                    placeholder="not recorded",
                    help=f"{row.description} Allowed: {row.low:g} to {row.high:g}{unit}. "
                    f"Recorded: {shown}.",
                    key=widget_key,
                )
                st.caption(f"allowed {row.low:g} to {row.high:g}{unit}")
        entered[feature] = None if value is None else float(value)
    buttons = st.columns([1, 1, 4])
    apply = buttons[0].button("Apply", type="primary", key=f"{key}.apply")
    buttons[1].button(
        "Reset", key=f"{key}.reset", on_click=_reset, args=(key, patient_id, recorded)
    )
    if apply:
        try:
            overrides = validate_overrides(_edits(entered, recorded))
        except ValueError as err:
            st.error(str(err))
            st.stop()
        set_what_if_overrides(key, patient_id, overrides)
        if identity is not None:
            detail = {"page": key, "overrides": overrides}
            service.record_event(identity, "what_if", patient_id=patient_id, detail=detail)
    features = service.features
    inputs = pd.DataFrame(
        {
            "feature": list(features.names),
            "label": list(features.labels),
            "unit": list(features.units),
            "modality": list(features.modalities),
            "value": [values[name] for name in features.names],
        }
    )
    fixed = inputs.loc[~inputs["feature"].isin(EDITABLE)]
    with st.expander(f"Not modifiable here ({len(fixed)} inputs, read-only)"):
        st.dataframe(
            pd.DataFrame(
                {
                    "Input": [
                        feature_label(str(f), str(label))
                        for f, label in zip(fixed["feature"], fixed["label"], strict=True)
                    ],
                    "Value": [
                        format_value(v, str(u), str(f))
                        for f, v, u in zip(
                            fixed["feature"], fixed["value"], fixed["unit"], strict=True
                        )
                    ],
                    "Modality": [MODALITY_LABELS.get(str(m), str(m)) for m in fixed["modality"]],
                }
            ),
            hide_index=True,
            key=f"{key}.fixed",
        )
    return get_what_if_overrides(key, patient_id)


def render_what_if_comparison(
    service: RiskService, case: PatientCase, overrides: dict[str, float], *, key: str
) -> None:
    """Risk, SHAP (modality bars, waterfall) and forecast curves before and after the edits."""
    result = service.what_if(case, overrides)
    version = service.model_info().version
    edits = tuple(sorted(overrides.items()))
    before_forecast = get_forecast(service, version, case.patient_id, _case=case)
    after_forecast = get_forecast(service, version, case.patient_id, edits, _case=case)
    changes = result.changes
    st.dataframe(
        pd.DataFrame(
            {
                "Edited input": [
                    feature_label(str(f), str(label))
                    for f, label in zip(changes["feature"], changes["label"], strict=True)
                ],
                "Before": [
                    format_value(v, str(u), str(f))
                    for f, v, u in zip(
                        changes["feature"], changes["before"], changes["unit"], strict=True
                    )
                ],
                "After": [
                    format_value(v, str(u), str(f))
                    for f, v, u in zip(
                        changes["feature"], changes["after"], changes["unit"], strict=True
                    )
                ],
            }
        ),
        hide_index=True,
        key=f"{key}.changes",
    )
    # One axis per kind of chart, shared by the two sides, so bars and curves compare by eye.
    shap_range = modality_range([result.before, result.after])
    steps_range = waterfall_range([result.before, result.after], top_n=8)
    risk_max = min(
        1.0,
        1.05
        * max(
            float(curves[["risk", "upper"]].max().max())
            for curves in (before_forecast.curves, after_forecast.curves)
        ),
    )
    sides = [
        ("Before (recorded values)", result.before, before_forecast, "before"),
        ("After the edits", result.after, after_forecast, "after"),
    ]
    for column, (title, explanation, forecast, side) in zip(
        st.columns(2, gap="large"), sides, strict=True
    ):
        with column:
            st.subheader(title)
            delta = None if side == "before" else f"{100 * result.risk_change:+.1f} pts"
            st.metric(
                cohort_words(service).outcome.risk_label,
                f"{explanation.risk:.1%}",
                delta=delta,
                delta_color="inverse",
            )
            st.plotly_chart(
                make_modality_figure(explanation, x_range=shap_range),
                key=f"{key}.{side}.modalities",
            )
            st.plotly_chart(
                make_waterfall_figure(explanation, top_n=8, x_range=steps_range),
                key=f"{key}.{side}.waterfall",
            )
            st.plotly_chart(
                make_forecast_figure(
                    forecast.curves,
                    horizon=forecast.horizon,
                    title=f"Forecast {side} the edits (model estimate)",
                    y_max=risk_max,
                ),
                key=f"{key}.{side}.forecast",
            )
