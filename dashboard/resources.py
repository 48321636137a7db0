"""Composition root: every cached resource and data getter of the dashboard.

The only home of ``st.cache_resource`` / ``st.cache_data``. Cached resources are shared across
sessions and treated as read-only.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.settings import Settings
from fusion.service import RiskService

__all__ = ["get_risk_service", "get_settings", "search_patients"]


@st.cache_resource
def get_settings() -> Settings:
    """Settings, read once from the environment."""
    return Settings.from_env()


@st.cache_resource(show_spinner="Loading models ...")
def get_risk_service() -> RiskService:
    """The risk service over the active models (SHA-256 verified on load)."""
    return RiskService.from_settings(get_settings())


@st.cache_data(ttl=60, show_spinner=False)
def search_patients(
    _service: RiskService, model_version: str, query: str, split: str | None, offset: int
) -> pd.DataFrame:
    """One page of the patient list; ``model_version`` keys the cache."""
    return _service.search_patients(query, split=split, limit=PAGE_SIZE, offset=offset)


PAGE_SIZE = 50
