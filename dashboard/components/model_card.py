"""The "Model card" downloads of the performance page: JSON, readable HTML and PDF."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard.resources import get_model_card, get_usefulness
from data.store import DataStamp
from fusion.admin.access import Identity
from fusion.reports.model_card_render import model_card_html, model_card_pdf
from fusion.reports.usefulness_figures import usefulness_figures
from fusion.service.facade import RiskService

__all__ = ["render_model_card"]


def render_model_card(
    service: RiskService, stamp: DataStamp, identity: Identity, *, key: str
) -> None:
    """Three download buttons; the card is built once per data stamp and viewer, on first click.

    Each download writes an ``export`` event to the audit trail (format ``model_card_<ext>``).
    """
    st.subheader("Model card")
    st.caption(
        "Intended use, data lineage, performance, calibration, net benefit, fairness summary, "
        "map trust and limitations of the active version, with the suppression of your role "
        "(schema: docs/model_card.md)."
    )

    def card() -> dict[str, Any]:
        return get_model_card(service, stamp, identity)

    def record(fmt: str) -> None:
        service.record_event(
            identity, "export", detail={"page": "performance", "format": f"model_card_{fmt}"}
        )

    def as_json() -> str:
        record("json")
        return json.dumps(card(), indent=2, allow_nan=False)

    def as_html() -> str:
        record("html")
        view = get_usefulness(service, stamp, (), None, identity)
        return model_card_html(card(), usefulness_figures(view))

    def as_pdf() -> bytes:
        record("pdf")
        return model_card_pdf(card())

    name = f"model-card-{service.model_info().version}"
    columns = st.columns(3)
    for column, label, data, ext, mime in (
        (columns[0], "Model card (PDF)", as_pdf, "pdf", "application/pdf"),
        (columns[1], "Model card (HTML)", as_html, "html", "text/html"),
        (columns[2], "Model card (JSON)", as_json, "json", "application/json"),
    ):
        column.download_button(
            label,
            data,
            file_name=f"{name}.{ext}",
            mime=mime,
            on_click="ignore",
            key=f"{key}.{ext}",
        )
