"""Treatment forecast section: curve controls, risk-over-time figure, effects table, caveats."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard.figures import make_forecast_figure
from fusion.forecast.patient import FORECAST_NOTE, PatientForecast

__all__ = [
    "CONFOUNDING_NOTE",
    "best_option_summary",
    "effects_table",
    "render_best_option",
    "render_forecast",
]

CONFOUNDING_NOTE = (
    "**Confounding assumption.** Treatment in an observational cohort is not randomised (in "
    "the synthetic demo, sicker patients were treated more often). The model adjusts for the "
    "measured confounders by conditioning on every fused input (the cohort's tabular inputs "
    "and the scan score) alongside the treatment. "
    "The estimates are only valid if there is no unmeasured confounder and every patient could "
    "have received each option."
)


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1%}"


def _distinguishable(forecast: PatientForecast) -> bool:
    return forecast.comparison is None or forecast.comparison.distinguishable


def best_option_summary(forecast: PatientForecast) -> tuple[str, str]:
    """Headline value and sentence about the lowest-risk option.

    Returns
    -------
    tuple of str
        ``(value, sentence)``: the option's name, or "Not distinguishable" when the options'
        risks differ by less than the model can tell apart
        (:class:`fusion.forecast.patient.OptionComparison`).
    """
    comparison = forecast.comparison
    if comparison is None:
        return (
            forecast.best_treatment,
            f"Lowest estimated risk at {forecast.horizon:g} years: {forecast.best_treatment}.",
        )
    value = comparison.best if comparison.distinguishable else "Not distinguishable"
    return value, comparison.describe(forecast.horizon)


def render_best_option(forecast: PatientForecast) -> None:
    """The headline metric of the option with the lowest estimated risk, honest about ties."""
    value, sentence = best_option_summary(forecast)
    st.metric("Lowest estimated risk", value, help=sentence)
    st.caption("A model estimate for research and demonstration, not treatment advice.")


def effects_table(forecast: PatientForecast, *, show_truth: bool) -> pd.DataFrame:
    """The effects at the horizon as display strings, one row per treatment."""
    effects = forecast.effects
    notes = []
    for treatment in effects["treatment"]:
        labels = []
        if treatment == forecast.best_treatment:
            labels.append(
                "lowest estimated risk"
                if _distinguishable(forecast)
                else "lowest estimate, not distinguishable"
            )
        if treatment == forecast.received_treatment:
            labels.append("received")
        notes.append(", ".join(labels))
    table = pd.DataFrame(
        {
            "treatment": effects["treatment"].astype(str),
            "risk": [
                f"{_percent(r)} ({_percent(lo)} to {_percent(hi)})"
                for r, lo, hi in zip(
                    effects["risk"], effects["lower"], effects["upper"], strict=True
                )
            ],
            "arr": [
                "reference" if t == "none" else ("n/a" if math.isnan(a) else f"{100 * a:+.1f} pts")
                for t, a in zip(effects["treatment"], effects["arr"], strict=True)
            ],
            "nnt": [
                "" if t == "none" else ("no benefit" if math.isnan(n) else f"{n:.0f}")
                for t, n in zip(effects["treatment"], effects["nnt"], strict=True)
            ],
            "note": notes,
        }
    )
    if show_truth and effects["true_risk"].notna().any():
        table.insert(2, "true risk", [_percent(v) for v in effects["true_risk"]])
    return table


def render_forecast(forecast: PatientForecast, *, key: str) -> None:
    """Controls, curve figure, effects table and the plain caveats of one patient's forecast."""
    treatments = list(dict.fromkeys(forecast.curves["treatment"].astype(str)))
    has_truth = bool(forecast.curves["true_risk"].notna().any())
    chosen = st.multiselect(
        "Treatments to show", treatments, default=treatments, key=f"{key}.treatments"
    )
    # The toggles get a row of their own: beside the list their labels are cut off at 1280 px.
    controls = st.columns(2)
    show_bands = controls[0].toggle("Uncertainty bands", value=True, key=f"{key}.bands")
    show_truth = controls[1].toggle(
        "True curves (demo)",
        value=False,
        key=f"{key}.truth",
        disabled=not has_truth,
        help="Synthetic cohort only: the true cumulative risk under each option, dashed.",
    )
    st.plotly_chart(
        make_forecast_figure(
            forecast.curves,
            treatments=chosen,
            show_bands=show_bands,
            show_truth=show_truth and has_truth,
            horizon=forecast.horizon,
        ),
        key=f"{key}.figure",
    )
    st.markdown(f"**Effect of each option at {forecast.horizon:g} years** (with the model's band)")
    st.dataframe(
        effects_table(forecast, show_truth=show_truth and has_truth),
        hide_index=True,
        column_config={
            "risk": f"risk at {forecast.horizon:g} y",
            "arr": "risk reduction vs none (ARR)",
            "nnt": "number needed to treat",
        },
        key=f"{key}.effects",
    )
    st.info(f"{best_option_summary(forecast)[1]} {FORECAST_NOTE}")
    if forecast.anchor_risk is not None and forecast.received_treatment is not None:
        st.caption(
            f"One risk for this patient: at {forecast.horizon:g} years the "
            f"'{forecast.received_treatment}' curve (the treatment received) reaches the fused "
            f"risk ({forecast.anchor_risk:.1%}) shown in the patient explorer; the other options "
            "apply the forecast model's estimated treatment effects on top of it."
        )
    st.markdown(CONFOUNDING_NOTE)
    st.caption(f"Method: {forecast.method} · forecast model `{forecast.model_version}`.")
