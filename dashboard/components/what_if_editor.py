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
)
from dashboard.resources import get_forecast
from dashboard.state import get_what_if_overrides, set_what_if_overrides
from fusion.access import Identity
from fusion.service import RiskService
from fusion.what_if import EDITABLE, editor_rows, validate_overrides

__all__ = ["render_what_if_comparison", "render_what_if_editor"]

N_COLUMNS = 4


def _widget_key(key: str, patient_id: str, feature: str) -> str:
    return f"{key}.{patient_id}.{feature}"


def _reset(key: str, patient_id: str, features: list[str]) -> None:
    set_what_if_overrides(key, patient_id, {})
    for feature in features:
        st.session_state.pop(_widget_key(key, patient_id, feature), None)


def render_what_if_editor(
    service: RiskService, patient_id: str, *, key: str, identity: Identity | None = None
) -> dict[str, float]:
    """Number inputs for the modifiable inputs, pre-filled; returns the applied edits.

    Edits take effect when **Apply** is pressed (validated with
    :func:`fusion.what_if.validate_overrides`; an invalid one shows the message and stops the
    page); **Reset** restores the recorded values. Non-modifiable inputs are listed read-only.
    Each applied edit is written to the audit trail as ``what_if`` when ``identity`` is given.
    """
    contributions = service.explain(patient_id).contributions
    recorded = dict(zip(contributions["feature"], contributions["value"], strict=True))
    rows = editor_rows(recorded)
    rows = rows.loc[rows["feature"].isin(recorded)]  # only inputs of this model
    entered: dict[str, float | None] = {}
    columns = st.columns(N_COLUMNS)
    for index, row in enumerate(rows.itertuples()):
        unit = f" {row.unit}" if row.unit else ""
        with columns[index % N_COLUMNS]:
            value = st.number_input(
                f"{row.label}{f' ({row.unit})' if row.unit else ''}",
                value=None if math.isnan(row.value) else float(row.value),
                step=float(row.step),
                format="%.0f" if row.step == 1 else "%.1f",
                placeholder="not recorded",
                help=f"{row.description} Allowed: {row.low:g} to {row.high:g}{unit}. "
                f"Recorded: {format_value(row.value, row.unit)}.",
                key=_widget_key(key, patient_id, str(row.feature)),
            )
            st.caption(f"allowed {row.low:g} to {row.high:g}{unit}")
        entered[str(row.feature)] = value
    buttons = st.columns([1, 1, 4])
    apply = buttons[0].button("Apply", type="primary", key=f"{key}.apply")
    buttons[1].button(
        "Reset",
        key=f"{key}.reset",
        on_click=_reset,
        args=(key, patient_id, list(rows["feature"])),
    )
    if apply:
        changed = {
            name: value
            for name, value in entered.items()
            if value is not None and value != recorded[name]
        }
        try:
            overrides = validate_overrides(changed)
        except ValueError as err:
            st.error(str(err))
            st.stop()
        set_what_if_overrides(key, patient_id, overrides)
        if identity is not None:
            detail = {"page": key, "overrides": overrides}
            service.record_event(identity, "what_if", patient_id=patient_id, detail=detail)
    fixed = contributions.loc[~contributions["feature"].isin(EDITABLE)]
    with st.expander(f"Not modifiable here ({len(fixed)} inputs, read-only)"):
        st.dataframe(
            pd.DataFrame(
                {
                    "input": fixed["label"],
                    "value": [
                        format_value(v, u)
                        for v, u in zip(fixed["value"], fixed["unit"], strict=True)
                    ],
                    "modality": fixed["modality"],
                }
            ),
            hide_index=True,
            key=f"{key}.fixed",
        )
    return get_what_if_overrides(key, patient_id)


def render_what_if_comparison(
    service: RiskService, patient_id: str, overrides: dict[str, float], *, key: str
) -> None:
    """Risk, SHAP (modality bars, waterfall) and forecast curves before and after the edits."""
    result = service.what_if(patient_id, overrides)
    version = service.model_info().version
    before_forecast = get_forecast(service, version, patient_id)
    after_forecast = get_forecast(service, version, patient_id, tuple(sorted(overrides.items())))
    st.dataframe(
        result.changes.assign(
            before=[
                format_value(v, u)
                for v, u in zip(result.changes["before"], result.changes["unit"], strict=True)
            ],
            after=[
                format_value(v, u)
                for v, u in zip(result.changes["after"], result.changes["unit"], strict=True)
            ],
        ).loc[:, ["label", "before", "after"]],
        hide_index=True,
        column_config={"label": "edited input"},
        key=f"{key}.changes",
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
                "Fused risk (5-year event)",
                f"{explanation.risk:.1%}",
                delta=delta,
                delta_color="inverse",
            )
            st.plotly_chart(make_modality_figure(explanation), key=f"{key}.{side}.modalities")
            st.plotly_chart(
                make_waterfall_figure(explanation, top_n=8), key=f"{key}.{side}.waterfall"
            )
            st.plotly_chart(
                make_forecast_figure(
                    forecast.curves,
                    horizon=forecast.horizon,
                    title=f"Forecast {side} the edits (model estimate)",
                ),
                key=f"{key}.{side}.forecast",
            )
