"""Readable at 1280x720: no metric tile cut off and no table past the page, in chromium."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CUT_OFF, OUTPUT

pytestmark = pytest.mark.e2e

APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _wait_for_run(page) -> None:
    page.wait_for_selector(APP_IDLE, timeout=90_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)


@pytest.mark.parametrize(
    ("path", "heading", "content"),
    [
        ("performance", "Model performance", '[data-testid="stMetricValue"]'),
        ("fairness", "Bias audit", '[data-testid="stMetricValue"]'),
    ],
)
def test_model_pages_cut_nothing_off_at_1280x720(
    app_url: str, browser, path: str, heading: str, content: str
) -> None:
    """The patient pages, with a patient open, are checked in test_patient_identity.py."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{app_url}/{path}", wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).wait_for(timeout=90_000)
    if path == "fairness":  # the tiny test split's groups are under 11: the admin lowers it
        _wait_for_run(page)
        floor = page.get_by_label("Smallest group shown", exact=True)
        floor.fill("3")
        floor.press("Enter")
    page.locator(content).first.wait_for(timeout=90_000)  # rendered, not a loading skeleton
    _wait_for_run(page)
    page.screenshot(path=str(OUTPUT / f"readable-{path}-1280x720.png"))
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator(content).count() > 0
    assert page.evaluate(CUT_OFF) == []
    page.close()
