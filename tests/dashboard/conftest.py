from __future__ import annotations

from collections.abc import Iterator
from unittest.mock import patch

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _clear_streamlit_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def patched_service(tiny_service) -> Iterator[object]:
    with patch("dashboard.resources.get_risk_service", return_value=tiny_service):
        yield tiny_service
