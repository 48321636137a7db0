"""Patient explorer without an interval: it shows none and the reason, never a fake range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from streamlit.testing.v1 import AppTest

from fusion.display import no_interval_sentence

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def few_patched(few_interval_service) -> Iterator[object]:
    with patch("dashboard.resources.get_risk_service", return_value=few_interval_service):
        yield few_interval_service


def test_the_page_says_why_there_is_no_interval(few_patched) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    select = at.selectbox(key="explorer.patient")
    select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Risk interval"] == "none"
    sentence = no_interval_sentence(few_patched.interval_reason)
    assert sentence.startswith("No interval: only 6 patients to calibrate a 90% interval")
    assert sentence in [c.value for c in at.caption]
    # A what-if has no interval either, and says why.
    at.toggle(key="explorer.available.imaging").set_value(False).run()
    assert not at.exception, at.exception
    assert "What-if risk" in [m.label for m in at.metric]
