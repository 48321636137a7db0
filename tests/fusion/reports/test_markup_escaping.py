"""Imported strings with markup and script render as text in every HTML export and page.

A copy of the shipped example cohort gets markup in a feature's label and unit and in the site
and ethnicity categories; it is imported, trained (the wiring, not model quality), and the
patient report, the bias-audit HTML export and the pages are checked for the raw tags.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest

from data.cohort_import import import_cohort, validate_cohort
from data.errors import CohortValidationError
from data.store import CohortStore, make_engine
from fusion.admin.uploads import EXAMPLE_COHORT
from fusion.service.facade import RiskService
from fusion.training.train import TrainingConfig, train_cohort
from models.scans import read_scan
from models.train import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

SCRIPT = "<script>alert(1)</script>"
SITES = {"site_a": "<b>site_a</b>", "site_b": f"site_b{SCRIPT}", "site_c": "site_c"}
OTHER = "<img src=x onerror=alert(2)>"
LABEL = f"{SCRIPT}BMI"
UNIT = "<b>kg</b>"
RAW = (SCRIPT, "<b>site_a</b>", "<b>kg</b>", "<img src=x")  # must never appear as markup


def _markup_copy(folder: Path) -> Path:
    cohort = Path(shutil.copytree(EXAMPLE_COHORT, folder))
    schema = (cohort / "schema.toml").read_text(encoding="utf-8")
    schema = schema.replace('label = "BMI"', f'label = "{LABEL}"')
    schema = schema.replace('unit = "kg/m²"', f'unit = "{UNIT}"')
    schema = schema.replace(
        'values = ["site_a", "site_b", "site_c"]',
        f"values = {list(SITES.values())!r}".replace("'", '"'),
    )
    schema = schema.replace('"Hispanic", "Other"]', f'"Hispanic", "{OTHER}"]')
    (cohort / "schema.toml").write_text(schema, encoding="utf-8")
    patients = cohort / "patients.csv"
    text = patients.read_text(encoding="utf-8")
    for plain, marked in SITES.items():
        text = text.replace(f",{plain},", f",{marked},")
    text = text.replace(",Other,", f",{OTHER},")
    patients.write_text(text, encoding="utf-8")
    return cohort


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("markup")
    cohort = _markup_copy(root / "cohort")
    folder = root / "home"
    folder.mkdir()
    store = CohortStore(make_engine(f"sqlite:///{folder / 'riskfusion.db'}"))
    store.create_schema()
    import_cohort(cohort, store, artifacts_dir=folder, reader=read_scan)
    config = TrainingConfig(
        imaging=TrainConfig(epochs=1, batch_size=32, patience=1), forecast_models=2
    )
    train_cohort(store, folder, config)
    store.engine.dispose()
    return folder


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[RiskService]:
    result = RiskService(CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}")), home)
    yield result
    result.store.engine.dispose()


def _no_raw_markup(page: str) -> None:
    for raw in RAW:
        assert raw not in page, f"{raw!r} is in the HTML as markup"


def test_the_import_keeps_the_strings_verbatim(service: RiskService) -> None:
    catalog = service.store.feature_catalog()
    bmi = catalog.loc[catalog["name"] == "bmi"].iloc[0]
    assert (bmi["label"], bmi["unit"]) == (LABEL, UNIT)
    sites = set(service.store.load_patient_frame()["site"])
    assert sites == set(SITES.values())


def test_ids_with_markup_are_refused_at_import(tmp_path: Path) -> None:
    cohort = _markup_copy(tmp_path / "cohort")
    for name in ("patients.csv", "outcomes.csv"):
        path = cohort / name
        path.write_text(path.read_text().replace("P0000001,", "<b>P1</b>,", 1))
    report = validate_cohort(cohort)
    assert "<b>P1</b>" in set(report.errors["value"])
    with pytest.raises(CohortValidationError):
        import_cohort(
            cohort, CohortStore(make_engine("sqlite://")), artifacts_dir=tmp_path, reader=read_scan
        )


def _patient_with(service: RiskService, site: str) -> str:
    frame = service.store.load_patient_frame(split="test")
    return str(frame.loc[frame["site"] == site, "patient_id"].iloc[0])


def test_patient_report_escapes_every_imported_string(service: RiskService) -> None:
    from fusion.reports.patient_report import render_patient_report

    patient_id = _patient_with(service, SITES["site_b"])
    top = service.top_features(patient_id, per_modality=50)  # every input, BMI among them
    page = render_patient_report(
        result=service.predict(patient_id),
        interval=service.risk_interval(patient_id) if service.interval_calibration else None,
        explanation=service.explain(patient_id),
        what_if=service.modality_what_if(patient_id),
        top_features=top,
        maps=None,
        info=service.model_info(),
        opacity=0.5,
    )
    _no_raw_markup(page)
    assert html.escape(LABEL) in page  # shown, as text
    assert html.escape(UNIT) in page or LABEL not in set(top["label"])


def test_bias_audit_html_export_escapes_group_names(home: Path, monkeypatch, tmp_path) -> None:
    from fusion.cli import main

    monkeypatch.setenv("RISKFUSION_HOME", str(home))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    out = tmp_path / "audit.html"
    args = ["audit", "--by", "site,ethnicity", "--min-cell", "1", "--resamples", "5"]
    assert main([*args, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    # plotly.js itself holds "<script" strings: look only outside the inlined library.
    outside_library = re.sub(r"<script[^>]*>.*?</script>", "<script/>", page, flags=re.S)
    _no_raw_markup(outside_library)
    assert html.escape("<b>site_a</b>") in outside_library
    # Inside the figures' JSON a group name must not be able to close the script element.
    assert "alert(1)</script>" not in page
    assert "onerror=alert(2)>" not in page


def test_pages_show_the_strings_as_text(service: RiskService) -> None:
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[3] / "app.py")
    with patch("dashboard.resources.get_risk_service", return_value=service):
        at = AppTest.from_file(app, default_timeout=120).run()
        at.switch_page("dashboard/pages/fairness.py").run()
        at.multiselect(key="fairness.attributes").set_value(["site"]).run()
        assert not at.exception, at.exception
        # The names reach the page (as widget options and table cells, which are text) ...
        options = at.selectbox(key="fairness.reference").options
        assert set(SITES.values()) & set(options)  # the groups large enough to be shown
        # ... and no element that renders HTML carries them.
        for element in [*at.markdown, *at.caption, *at.info, *at.warning, *at.error]:
            if getattr(element.proto, "allow_html", False):
                assert not any(raw in element.value for raw in RAW), element.value
        assert not at.query_params  # nothing about the view (or a patient) goes into the URL
