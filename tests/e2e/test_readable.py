"""Readable at 1280x720: no metric tile cut off and no table past the page, in chromium."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import OUTPUT

pytestmark = pytest.mark.e2e

APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# Elements whose text overflows their box (Streamlit cuts metric labels and values with "…")
# and tables wider than the window.
CUT_OFF = """() => {
  const found = [];
  for (const el of document.querySelectorAll(
      '[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *, '
      + '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')) {
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) found.push(el.textContent);
  }
  for (const el of document.querySelectorAll('[data-testid="stDataFrame"]')) {
    const box = el.getBoundingClientRect();
    if (box.right > window.innerWidth + 1) found.push('table past the page: ' + box.right);
  }
  return found;
}"""


def _wait_for_run(page) -> None:
    page.wait_for_selector(APP_IDLE, timeout=90_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("", "Patient explorer"),
        ("forecast", "Treatment forecast"),
        ("guided_demo", "Guided demo"),
        ("performance", "Model performance"),
        ("fairness", "Bias audit"),
    ],
)
def test_nothing_is_cut_off_at_1280x720(app_url: str, browser, path: str, heading: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{app_url}/{path}", wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).wait_for(timeout=90_000)
    page.wait_for_timeout(1_000)
    _wait_for_run(page)
    page.screenshot(path=str(OUTPUT / f"readable-{path or 'explorer'}-1280x720.png"))
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.evaluate(CUT_OFF) == []
    page.close()
