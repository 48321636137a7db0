"""The model card: valid against its schema, the same numbers as the pages, three renderings."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import jsonschema
import numpy as np
import pytest
from pypdf import PdfReader

from fusion.admin.access import Identity
from fusion.cli import main
from fusion.reports.model_card import MODEL_CARD_SCHEMA, build_model_card
from fusion.reports.model_card_render import card_sections, model_card_html, model_card_pdf
from fusion.service.facade import RiskService

RESEARCHER = Identity(user="r@h.org", role="researcher", source="oidc")


@pytest.fixture(scope="module")
def card(tiny_service: RiskService) -> Iterator[dict]:
    # The tiny demo has 24 test patients: a floor of 4 leaves groups to show and to hide.
    floor = tiny_service.min_cell_floor
    tiny_service.min_cell_floor = 4
    try:
        yield build_model_card(tiny_service, identity=RESEARCHER, n_resamples=20)
    finally:
        tiny_service.min_cell_floor = floor


def test_card_is_valid_json_against_its_schema(card: dict) -> None:
    jsonschema.validate(json.loads(json.dumps(card, allow_nan=False)), MODEL_CARD_SCHEMA)


def test_card_numbers_are_the_services(card: dict, tiny_service: RiskService) -> None:
    info = tiny_service.model_info()
    assert card["model"]["version"] == info.version
    assert card["performance"]["auroc"]["value"] == pytest.approx(info.test_auroc)
    frame = tiny_service.test_predictions()
    assert card["performance"]["n_test"] == len(frame)
    risk = frame["risk"].to_numpy()
    expected_oe = frame["label"].sum() / risk.sum()
    oe = card["calibration"]["observed_expected"]["value"]
    assert oe is None or oe == pytest.approx(expected_oe)
    training = tiny_service.models.fusion_record.params["training_data"]
    assert card["data"]["fingerprint"] == training["fingerprint"]
    assert card["data"]["synthetic"] is True
    assert {m["name"] for m in card["modalities"]} == set(tiny_service.models.features.modalities)
    assert card["disclosure"] == {"min_cell": 4, "role": "researcher"}


def test_researcher_card_hides_what_the_audit_hides(
    card: dict, tiny_service: RiskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_service, "min_cell_floor", 4)
    for entry in card["fairness"]:
        if entry["status"] != "audited":
            assert entry["reason"]
            continue
        report = tiny_service.audit(entry["attributes"], identity=RESEARCHER)
        suppressed = report.by_group["suppressed"].to_numpy(dtype=bool)
        assert entry["groups_suppressed"] == int(suppressed.sum())
        hidden = set(report.by_group.index[suppressed])
        assert not {flag["group"] for flag in entry["flags"]} & hidden


def test_limitations_follow_from_the_numbers(card: dict) -> None:
    text = " ".join(card["limitations"])
    assert "synthetic cohort" in text  # the tiny demo is synthetic
    n_test = card["performance"]["n_test"]
    assert (f"holds {n_test} patients" in text) == (n_test < 200 or "fewer than 100" in text)


def test_html_escapes_and_pdf_reads_back(card: dict) -> None:
    hostile = json.loads(json.dumps(card))
    hostile["data"]["sources"] = ["<script>alert(1)</script>"]
    page = model_card_html(hostile)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    pdf = model_card_pdf(hostile)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert card["model"]["version"] in text
    assert "Calibration slope" in text
    assert "Limitations" in text
    titles = [title for title, _ in card_sections(card)]
    assert titles[0] == "Model"
    assert "Limitations" in titles


@pytest.mark.parametrize("suffix", [".json", ".html", ".pdf"])
def test_report_command_writes_each_format(home_env, tmp_path, suffix: str) -> None:
    out = tmp_path / f"card{suffix}"
    assert main(["report", "--out", str(out), "--resamples", "10"]) == 0
    if suffix == ".json":
        written = json.loads(out.read_text())
        jsonschema.validate(written, MODEL_CARD_SCHEMA)
        assert written["disclosure"]["role"] == "researcher"
    elif suffix == ".html":
        page = out.read_text()
        assert "Model card: fusion-" in page
        assert "Limitations" in page
    else:
        assert out.read_bytes().startswith(b"%PDF")


def test_report_command_refuses_other_formats(home_env, tmp_path) -> None:
    assert main(["report", "--out", str(tmp_path / "card.docx")]) == 2
    assert not (tmp_path / "card.docx").exists()


def test_net_benefit_rows_mark_only_thresholds_above_both_defaults(card: dict) -> None:
    for row in card["net_benefit"]:
        low = row["model"]["low"]
        expected = low is not None and low > max(row["treat_all"], 0.0)
        assert row["beats_defaults"] == expected
        assert np.isfinite(row["threshold"])
