from __future__ import annotations

import pytest

from tests.e2e.conftest import OUTPUT

pytestmark = pytest.mark.e2e

APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _wait_for_run(page) -> None:
    page.wait_for_selector(APP_IDLE, timeout=90_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)


def _open(browser, app_url: str):
    """A page on the app's first page, with console errors and page errors collected."""
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Patient explorer").wait_for(timeout=90_000)
    return page, errors


def test_patient_explorer_in_chromium(app_url: str, browser) -> None:
    page, errors = _open(browser, app_url)
    page.get_by_text("Fused risk (5-year event)").wait_for(timeout=90_000)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.nth(2).wait_for(state="visible", timeout=90_000)
    _wait_for_run(page)
    assert charts.count() == 3
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(OUTPUT / "patient_explorer.png"), full_page=True)

    # Operate the main widgets: the map switch, then the lesion toggle.
    page.get_by_text("Grad-CAM++", exact=True).click()
    _wait_for_run(page)
    page.get_by_text("Show true lesion outline").click()
    _wait_for_run(page)
    page.get_by_text("Occlusion (fused risk)", exact=True).click()  # the fusion-aware map
    _wait_for_run(page)
    page.get_by_text("How much can these maps be trusted?").click()
    _wait_for_run(page)
    page.get_by_text("SHAP additivity").wait_for(state="visible", timeout=90_000)
    assert charts.count() == 3
    page.locator(".js-plotly-plot").nth(2).wait_for(state="visible", timeout=90_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(OUTPUT / "patient_explorer_gradcampp.png"), full_page=True)
    assert not errors, errors
    page.close()


@pytest.mark.parametrize(
    ("link", "min_charts", "shot"),
    [
        ("Model performance", 3, "performance.png"),
        # The tiny demo's test split is so small that small-cell suppression hides every group.
        ("Bias audit", 0, "fairness.png"),
    ],
)
def test_model_pages_in_chromium(
    app_url: str, browser, link: str, min_charts: int, shot: str
) -> None:
    page, errors = _open(browser, app_url)
    _wait_for_run(page)
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=link).wait_for(timeout=90_000)
    if min_charts:
        charts = page.locator('[data-testid="stPlotlyChart"]')
        charts.nth(min_charts - 1).wait_for(state="visible", timeout=90_000)
    _wait_for_run(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= min_charts
    page.screenshot(path=str(OUTPUT / shot), full_page=True)
    assert not errors, errors
    page.close()
