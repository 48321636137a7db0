"""The shipped example cohort, imported and trained, in every page of a real browser.

Imports ``data/examples/cohort`` into a fresh store, trains it (one epoch, few bootstrap
members: the wiring, not model quality) and opens every admin page in chromium: no exception
element, no console error, the "not for clinical use" note, and the Data page's validation of
the same example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data.cohort_import import import_cohort
from data.store import CohortStore, make_engine
from fusion.training.train import TrainingConfig, train_cohort
from models.scans import read_scan
from models.train import TrainConfig
from tests.e2e.conftest import OUTPUT, serve
from tests.e2e.test_browser import ROLE_PAGES, _wait_for_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "examples" / "cohort"


@pytest.fixture(scope="module")
def imported_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("imported") / "home"
    home.mkdir()
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    store.create_schema()
    import_cohort(EXAMPLE, store, artifacts_dir=home, reader=read_scan, progress=False)
    config = TrainingConfig(
        imaging=TrainConfig(epochs=1, batch_size=32, patience=1), forecast_models=2
    )
    train_cohort(store, home, config)
    store.engine.dispose()
    with serve(home, "streamlit-imported.log") as url:
        yield url


def test_every_page_shows_the_imported_cohort(imported_url: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(imported_url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Patient explorer").wait_for(timeout=90_000)
    for name in ROLE_PAGES["admin"]:
        page.get_by_role("link", name=name).click()
        page.get_by_role("heading", name=name).first.wait_for(timeout=90_000)
        _wait_for_run(page)
        assert page.locator('[data-testid="stException"]').count() == 0, name
        assert page.get_by_text("not for clinical use").count() >= 1, name
        assert page.get_by_text("Synthetic demo").count() == 0, name  # not called a demo
        slug = name.lower().replace(" ", "_")
        page.screenshot(path=str(OUTPUT / f"imported-{slug}.png"), full_page=True)
    # The Data page validates the shipped example: 160 patients, 158 scans, warnings only.
    page.get_by_text("Shipped example", exact=True).click()
    _wait_for_run(page)
    page.get_by_role("button", name="Validate").click()
    # Validation runs as a background job; the page shows its table when the job ends.
    page.get_by_text("warning(s) only: the import is allowed").wait_for(timeout=300_000)
    _wait_for_run(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(OUTPUT / "imported-data-validated.png"), full_page=True)
    assert not errors, errors
    page.close()
