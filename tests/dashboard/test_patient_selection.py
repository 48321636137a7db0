"""AppTests of the one selected patient: chosen only by the user, carried between pages, named
by the header and the sidebar, and audited once per deliberate choice."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.components.patient_picker import CHOOSE_PROMPT
from dashboard.state import PATIENT_ID
from fusion.service.patient_facts import identity_facts

APP = str(Path(__file__).resolve().parents[2] / "app.py")
RISK = "Fused risk (5-year event)"


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(f"dashboard/pages/{page}.py").run()
        assert not at.exception, at.exception
    return at


def _ids(at: AppTest, key: str) -> list[str]:
    return [option.split(" ")[0] for option in at.selectbox(key=key).options]


def _views(service, action: str = "view_patient") -> list[str | None]:
    """Patient ids of every ``action`` event in the store, oldest first."""
    trail = service.audit_trail(limit=10_000, action=action)
    return trail.sort_values("event_id")["patient_id"].tolist()


def _header(at: AppTest) -> str:
    texts = [md.value for md in at.main.markdown if md.value.startswith("#### Patient ")]
    assert len(texts) == 1, texts
    return texts[0]


def _sidebar(at: AppTest) -> str:
    return " ".join(md.value for md in at.sidebar.markdown) + " ".join(
        c.value for c in at.sidebar.caption
    )


def _assert_names(at: AppTest, service, key: str, patient_id: str) -> None:
    """Selector, header, sidebar and the risk tile all belong to ``patient_id``."""
    assert at.selectbox(key=key).value == patient_id
    result = service.predict(patient_id)
    header = _header(at)
    assert header.startswith(f"#### Patient {patient_id}\n")
    assert " · ".join(identity_facts(result)) in header
    assert f"`{patient_id}`" in _sidebar(at)
    if key == "explorer.patient":
        assert [m.value for m in at.metric if m.label == RISK] == [f"{result.risk:.1%}"]


def test_a_new_session_opens_no_patient_and_audits_no_view(patched_service) -> None:
    before = _views(patched_service)
    forecasts = _views(patched_service, "forecast")
    at = _app()
    assert at.selectbox(key="explorer.patient").value is None
    assert PATIENT_ID not in at.session_state or at.session_state[PATIENT_ID] is None
    assert CHOOSE_PROMPT in [info.value for info in at.info]
    assert not at.metric
    assert not [md for md in at.main.markdown if md.value.startswith("#### Patient ")]
    assert "None: choose one on a patient page." in _sidebar(at)
    at.run()  # a rerun opens nothing either
    at.switch_page("dashboard/pages/forecast.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="forecast.patient").value is None
    assert CHOOSE_PROMPT in [info.value for info in at.info]
    assert _views(patched_service) == before
    assert _views(patched_service, "forecast") == forecasts


def test_each_deliberate_choice_is_audited_once(patched_service) -> None:
    before = _views(patched_service)
    at = _app()
    first, second = _ids(at, "explorer.patient")[:2]
    at.selectbox(key="explorer.patient").set_value(first).run()
    _assert_names(at, patched_service, "explorer.patient", first)
    at.slider(key="explorer.opacity").set_value(0.8).run()  # reruns of the same patient
    at.radio(key="explorer.method").set_value("Grad-CAM++").run()
    assert _views(patched_service) == [*before, first]
    at.selectbox(key="explorer.patient").set_value(second).run()
    _assert_names(at, patched_service, "explorer.patient", second)
    assert _views(patched_service) == [*before, first, second]


def test_search_page_and_split_change_the_list_not_the_patient(patched_service) -> None:
    at = _app()
    ids = _ids(at, "explorer.patient")
    chosen = ids[3]
    at.selectbox(key="explorer.patient").set_value(chosen).run()
    _assert_names(at, patched_service, "explorer.patient", chosen)
    # A prefix that does not match the open patient: the list changes, the patient does not.
    other = next(pid for pid in ids if pid[:-1] != chosen[:-1])
    at.text_input(key="explorer.query").set_value(other[:-1]).run()
    assert not at.exception, at.exception
    listed = _ids(at, "explorer.patient")
    assert listed[0] == chosen  # the open patient is listed first
    assert all(pid.startswith(other[:-1]) for pid in listed[1:])
    _assert_names(at, patched_service, "explorer.patient", chosen)
    # A prefix with no match on the page still shows the open patient.
    at.text_input(key="explorer.query").set_value("ZZZ").run()
    assert any("No patient id starts with 'ZZZ'" in info.value for info in at.info)
    _assert_names(at, patched_service, "explorer.patient", chosen)
    at.text_input(key="explorer.query").set_value("").run()
    at.radio(key="explorer.split").set_value("All patients").run()
    _assert_names(at, patched_service, "explorer.patient", chosen)
    at.button(key="explorer.next").click().run()
    assert chosen not in _ids(at, "explorer.patient")[1:]
    _assert_names(at, patched_service, "explorer.patient", chosen)


def test_a_complete_id_in_the_search_opens_that_patient(patched_service) -> None:
    at = _app()
    first, target = _ids(at, "explorer.patient")[0], _ids(at, "explorer.patient")[5]
    at.selectbox(key="explorer.patient").set_value(first).run()
    before = _views(patched_service)
    at.text_input(key="explorer.query").set_value(target.lower()).run()
    assert not at.exception, at.exception
    _assert_names(at, patched_service, "explorer.patient", target)
    assert _views(patched_service) == [*before, target]


def test_similar_patient_click_names_it_everywhere(patched_service) -> None:
    at = _app()
    first = _ids(at, "explorer.patient")[0]
    at.selectbox(key="explorer.patient").set_value(first).run()
    target = patched_service.similar_patients(first, k=5)["patient_id"].iloc[2]
    at.button(key="explorer.similar.2").click().run()
    assert not at.exception, at.exception
    _assert_names(at, patched_service, "explorer.patient", target)


def test_the_choice_carries_to_every_patient_page_and_only_the_user_changes_it(
    patched_service,
) -> None:
    at = _app()
    chosen = _ids(at, "explorer.patient")[4]  # not the first: a default would show
    at.selectbox(key="explorer.patient").set_value(chosen).run()
    at.switch_page("dashboard/pages/forecast.py").run()
    assert not at.exception, at.exception
    _assert_names(at, patched_service, "forecast.patient", chosen)
    assert at.session_state[PATIENT_ID] == chosen
    at.switch_page("dashboard/pages/guided_demo.py").run()
    assert not at.exception, at.exception
    story = patched_service.guided_demo_patients()[0].patient_id
    assert _header(at).startswith(f"#### Patient {story}\n")
    assert any(f"Your selected patient ({chosen})" in c.value for c in at.main.caption)
    assert at.session_state[PATIENT_ID] == chosen
    assert f"`{chosen}`" in _sidebar(at)
    at.switch_page("dashboard/pages/performance.py").run()
    assert f"`{chosen}`" in _sidebar(at)
    at.switch_page("dashboard/pages/patient_explorer.py").run()
    _assert_names(at, patched_service, "explorer.patient", chosen)


def test_close_patient_in_the_sidebar_closes_it_on_every_page(patched_service) -> None:
    at = _app()
    chosen = _ids(at, "explorer.patient")[1]
    at.selectbox(key="explorer.patient").set_value(chosen).run()
    at.sidebar.button(key="sidebar.close_patient").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explorer.patient").value is None
    assert CHOOSE_PROMPT in [info.value for info in at.info]
    assert not at.metric
    at.switch_page("dashboard/pages/forecast.py").run()
    assert at.selectbox(key="forecast.patient").value is None
