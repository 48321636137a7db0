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
    # The tiny demo's 2-epoch imaging nets are no better than chance, so the explorer would say
    # its map is not informative and draw none; the map tests need the drawing path, so they
    # see the stored figures with an AUROC CI above 0.5 (tests/dashboard/
    # test_explorer_map_trust.py tests the real, uninformative record's words).
    import dataclasses

    stored = tiny_service.imaging_map_trust()
    informative = (
        None if stored is None else dataclasses.replace(stored, auroc_low=0.6, auroc_high=0.9)
    )
    with (
        patch("dashboard.resources.get_risk_service", return_value=tiny_service),
        patch.object(tiny_service, "imaging_map_trust", return_value=informative),
    ):
        yield tiny_service
