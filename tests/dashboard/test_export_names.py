"""Download file names and page URLs carry no patient id unless the user asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def download_names() -> Iterator[list[str]]:
    """The ``file_name`` of every download button the pages render."""
    names: list[str] = []
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def spy_add(self, path_or_data, mimetype, coordinates, file_name=None, **kwargs):
        names.append(str(file_name))
        return add(self, path_or_data, mimetype, coordinates, file_name, **kwargs)

    def spy_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        names.append(str(file_name))
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    with (
        patch.object(MediaFileManager, "add", spy_add),
        patch.object(MediaFileManager, "add_deferred", spy_deferred),
    ):
        yield names


def _ids(service) -> set[str]:
    return set(service.search_patients(limit=1000)["patient_id"])


def test_patient_report_file_name_has_the_id_only_when_asked(
    patched_service, download_names: list[str]
) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="explorer.patient")
    pid = select.options[0].split(" ")[0]
    select.set_value(pid).run()
    assert not at.exception, at.exception
    reports = [name for name in download_names if name.startswith("patient-report")]
    assert reports
    assert not [name for name in reports if pid in name]
    assert not at.checkbox(key="explorer.report_id_in_name").value
    assert not dict(at.query_params)  # the selected patient is not in the page URL
    download_names.clear()
    at.checkbox(key="explorer.report_id_in_name").check().run()
    assert not at.exception, at.exception
    assert [name for name in download_names if name.startswith("patient-report")]
    assert all(pid in name for name in download_names if name.startswith("patient-report"))


@pytest.mark.parametrize(
    "page",
    [
        "dashboard/pages/forecast.py",
        "dashboard/pages/performance.py",
        "dashboard/pages/fairness.py",
        "dashboard/pages/audit_trail.py",
    ],
)
def test_other_pages_name_no_patient_in_downloads_or_url(
    patched_service, download_names: list[str], page: str
) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    ids = _ids(patched_service)
    assert not [name for name in download_names if any(pid in name for pid in ids)]
    assert not [value for value in dict(at.query_params).values() if value in ids]
