"""One patient, named the same everywhere, in a real browser (chromium against a real server).

Every way to change the patient (search, a complete id, the pager, the split switch, a similar
patient, a page switch, a reload) is followed by the same check: the selector, the header, the
sidebar and the numbers (the risk tile) belong to the one patient, as the store and the service
compute them for that id. The audit trail, read back from the store, holds a ``view_patient``
event for each deliberate choice and for nothing else. Screenshots at 1440x900 and 1280x720 go
to ``test-output/e2e/identity-*.png``; the header, picker and sidebar text must not be cut off.
"""

from __future__ import annotations

import re

import pytest

from fusion.service.patient_facts import identity_facts
from tests.e2e.conftest import CUT_OFF, OUTPUT
from tests.e2e.test_browser import _open, _wait_for_run

pytestmark = pytest.mark.e2e

PICKER = "Patient (★ test set"
HEADER = ".st-key-patient_header"
SIDEBAR = ".st-key-sidebar_patient"
PROMPT = "No patient is open."


def _open_ready(browser, app_url: str, width: int = 1440, height: int = 900):
    """The app's first page with its first run finished (console errors collected)."""
    page, errors = _open(browser, app_url, width, height)
    _wait_for_run(page)
    return page, errors


def _rerun(page, action) -> None:
    """Do ``action`` and wait until the script run it causes has finished.

    A fast run can start and end between two polls of the run state, so a mutation observer
    counts every change of it from before the action.
    """
    page.evaluate(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (window.__runObserver) window.__runObserver.disconnect();
            window.__runChanges = 0;
            window.__runObserver = new MutationObserver(m => { window.__runChanges += m.length; });
            window.__runObserver.observe(
                app, {attributes: true, attributeFilter: ['data-test-script-state']});
        }"""
    )
    action()
    page.wait_for_function("() => window.__runChanges > 0", timeout=90_000)
    _wait_for_run(page)


def _click(page, locator) -> None:
    _rerun(page, locator.click)


def _picker(page):
    return page.locator('[data-testid="stSelectbox"]').filter(has_text=PICKER)


def _selector_text(page) -> str:
    """What the patient selectbox shows (its input's value; empty shows the placeholder)."""
    return _picker(page).locator("input").input_value()


def _choose(page, patient_id: str) -> None:
    """Pick ``patient_id`` in the selectbox (typing filters its list, as a user would)."""
    _picker(page).locator("input").click()
    page.keyboard.type(patient_id)
    _click(page, page.get_by_role("option").filter(has_text=re.compile(f"^{patient_id}\\b")))


def _search(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Search by patient id")

    def type_and_submit() -> None:
        # Watch from before the first keystroke: a rerun that starts while typing counts too.
        box.fill(text)
        box.press("Enter")

    _rerun(page, type_and_submit)


def _listed(page) -> list[str]:
    """Patient ids the selectbox shows when opened, in order (its list is virtualised)."""
    _picker(page).locator("input").click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=30_000)
    ids = [text.strip().split(" ")[0] for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    return ids


def _metric(page, label: str) -> str:
    tile = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return tile.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _views(service, action: str = "view_patient") -> list[tuple[int, str]]:
    trail = service.audit_trail(limit=10_000, action=action)
    return sorted(zip(trail["event_id"].astype(int), trail["patient_id"], strict=True))


def _views_since(service, mark: int) -> list[str]:
    return [pid for event_id, pid in _views(service) if event_id > mark]


def _mark(service) -> int:
    return max((event_id for event_id, _ in _views(service)), default=0)


def _assert_names(page, service, patient_id: str, where: str = "explorer") -> None:
    """Selector, header, sidebar and the page's numbers all belong to ``patient_id``."""
    result = service.predict(patient_id)
    assert _selector_text(page).split(" ")[0] == patient_id, _selector_text(page)
    header = page.locator(HEADER).inner_text()
    assert f"Patient {patient_id}" in header, header
    assert " · ".join(identity_facts(result)) in header, header
    assert patient_id in page.locator(SIDEBAR).inner_text()
    if where == "explorer":
        assert _metric(page, "Fused risk") == f"{result.risk:.1%}"
    else:
        effects = service.forecast(patient_id).effects.set_index("treatment")
        expected = f"{effects.loc['none', 'risk']:.1%}"
        assert _metric(page, "without treatment") == expected


def _assert_no_patient(page) -> None:
    page.get_by_text(PROMPT).wait_for(timeout=30_000)
    assert _selector_text(page) == ""
    assert _picker(page).locator("input").get_attribute("placeholder") == "Choose a patient ..."
    assert page.locator(HEADER).count() == 0
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert "None: choose one" in page.locator(SIDEBAR).inner_text()


def _test_ids(service) -> list[str]:
    return service.search_patients(split="test", limit=50)["patient_id"].tolist()


def test_new_session_opens_no_patient_and_audits_none(app_url: str, browser, tiny_service):
    mark = _mark(tiny_service)
    page, errors = _open_ready(browser, app_url)
    _assert_no_patient(page)
    page.get_by_role("link", name="Treatment forecast").click()
    page.get_by_role("heading", name="Treatment forecast").wait_for(timeout=90_000)
    _wait_for_run(page)
    _assert_no_patient(page)
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Treatment forecast").wait_for(timeout=90_000)
    _wait_for_run(page)
    _assert_no_patient(page)
    assert _views_since(tiny_service, mark) == []  # nobody chose a patient: no view event
    assert not errors, errors
    page.close()


def test_search_pager_and_split_switch_keep_one_patient(app_url: str, browser, tiny_service):
    test_ids = _test_ids(tiny_service)
    mark = _mark(tiny_service)
    page, errors = _open_ready(browser, app_url)
    chosen = test_ids[3]
    _choose(page, chosen)
    _assert_names(page, tiny_service, chosen)

    # Search: a prefix lists other patients and keeps the open one; picking from it opens it.
    prefix = test_ids[-1][:-1]
    _search(page, prefix)
    listed = _listed(page)
    assert listed[0] == chosen
    assert all(pid.startswith(prefix) for pid in listed[1:])
    _assert_names(page, tiny_service, chosen)
    found = listed[-1]
    _choose(page, found)
    _assert_names(page, tiny_service, found)
    # A complete id typed in the search opens that patient.
    typed = test_ids[7]
    _search(page, typed)
    _assert_names(page, tiny_service, typed)
    _search(page, "")

    # Split switch: the list changes, the open patient does not.
    _click(page, page.get_by_text("All patients", exact=True))
    _assert_names(page, tiny_service, typed)
    # Pager: page 2 of all patients lists others; choose one there, then go on to page 3.
    next_page = page.get_by_role("button", name="›", exact=True)
    _click(page, next_page)
    listed = _listed(page)  # the rendered part of the (virtualised) list
    first_page = tiny_service.search_patients(limit=50)["patient_id"].tolist()
    second_page = tiny_service.search_patients(limit=50, after=first_page[-1])[
        "patient_id"
    ].tolist()
    assert listed[0] == typed
    assert len(listed) > 3
    assert listed[1:] == [pid for pid in second_page if pid != typed][: len(listed) - 1]
    training = next(
        pid
        for pid in second_page
        if tiny_service.patient(pid).split == "train" and pid not in test_ids
    )
    _choose(page, training)
    _assert_names(page, tiny_service, training)
    _click(page, next_page)
    _assert_names(page, tiny_service, training)
    # Back to the test set: a training patient stays open and named.
    _click(page, page.get_by_text("Test set", exact=True))
    _assert_names(page, tiny_service, training)
    assert _views_since(tiny_service, mark) == [chosen, found, typed, training]
    assert not errors, errors
    page.close()


def test_similar_patient_page_switch_and_reload(app_url: str, browser, tiny_service):
    test_ids = _test_ids(tiny_service)
    mark = _mark(tiny_service)
    page, errors = _open_ready(browser, app_url)
    first = test_ids[5]
    _choose(page, first)
    _assert_names(page, tiny_service, first)

    # A similar patient (it may be a training patient, absent from the test-set list).
    similar = tiny_service.similar_patients(first, k=5)["patient_id"].tolist()
    target = similar[2]
    _click(page, page.get_by_role("button", name=re.compile(f"^{target} ·")))
    _assert_names(page, tiny_service, target)

    # Page switch: the forecast opens the same patient; the guided demo names its own
    # patient and leaves the selection alone; back on the explorer it is still open.
    page.get_by_role("link", name="Treatment forecast").click()
    page.get_by_role("heading", name="Treatment forecast").wait_for(timeout=90_000)
    _wait_for_run(page)
    _assert_names(page, tiny_service, target, where="forecast")
    page.get_by_role("link", name="Guided demo").click()
    page.get_by_role("heading", name="Guided demo").wait_for(timeout=90_000)
    _wait_for_run(page)
    story = tiny_service.guided_demo_patients()[0].patient_id
    header = page.locator(HEADER).inner_text()
    assert f"Patient {story}" in header
    assert " · ".join(identity_facts(tiny_service.predict(story))) in header
    assert _metric(page, "Fused risk") == f"{tiny_service.predict(story).risk:.1%}"
    assert target in page.locator(SIDEBAR).inner_text()
    page.get_by_role("link", name="Patient explorer").click()
    page.get_by_role("heading", name="Patient explorer").wait_for(timeout=90_000)
    _wait_for_run(page)
    _assert_names(page, tiny_service, target)
    views = _views_since(tiny_service, mark)
    assert views[:2] == [first, target]
    assert set(views[2:]) <= {story}  # the guided demo's own view, once

    # Reload: a new session; no patient is shown or audited until one is chosen again.
    before_reload = _mark(tiny_service)
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("heading", name="Patient explorer").wait_for(timeout=90_000)
    _wait_for_run(page)
    _assert_no_patient(page)
    assert _views_since(tiny_service, before_reload) == []
    _choose(page, first)
    _assert_names(page, tiny_service, first)
    assert _views_since(tiny_service, before_reload) == [first]
    assert not errors, errors
    page.close()


def _cut_off(page, selector: str) -> list[str]:
    """Texts inside ``selector`` whose box is narrower than their content (clipped)."""
    return page.eval_on_selector_all(
        f"{selector} p, {selector} h4, {selector} code, {selector} span, {selector} input",
        """els => els.filter(e => e.offsetWidth > 0 && e.scrollWidth > e.clientWidth + 1
                               && getComputedStyle(e).overflow !== 'visible')
                    .map(e => (e.value || e.innerText || "").trim()).filter(t => t)""",
    )


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (1280, 720)])
def test_patient_pages_screenshots_nothing_cut_off(
    app_url: str, browser, tiny_service, width: int, height: int
) -> None:
    page, errors = _open_ready(browser, app_url, width, height)
    chosen = _test_ids(tiny_service)[1]
    _choose(page, chosen)
    _assert_names(page, tiny_service, chosen)
    pickers = {"Patient explorer": "explorer", "Treatment forecast": "forecast"}
    for name in ("Patient explorer", "Treatment forecast", "Guided demo"):
        if name != "Patient explorer":
            page.get_by_role("link", name=name).click()
            page.get_by_role("heading", name=name).wait_for(timeout=90_000)
            _wait_for_run(page)
        page.locator(HEADER).wait_for(timeout=90_000)
        slug = name.lower().replace(" ", "_")
        page.screenshot(path=str(OUTPUT / f"identity-{slug}-{width}x{height}.png"))
        selectors = [HEADER, SIDEBAR]
        if name in pickers:  # the key's dot becomes a dash in the CSS class
            selectors.append(f".st-key-{pickers[name]}-patient")
        for selector in selectors:
            assert page.locator(selector).count() == 1, (name, selector)
            assert _cut_off(page, selector) == [], (name, selector)
        # Every metric tile's label and value, and every table, fit (tests/e2e/conftest.py).
        assert page.locator('[data-testid="stMetricValue"]').count() > 0, name
        assert page.evaluate(CUT_OFF) == [], name
    assert not errors, errors
    page.close()
