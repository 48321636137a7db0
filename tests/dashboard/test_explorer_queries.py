"""One explorer render reads the open patient from the store once (the loaded case).

The page loads the patient into one :class:`fusion.service.patient_case.PatientCase` per script
run (the sidebar's header shares it) and every number on the page is computed from it. The test
counts the SQL statements of the render that opens a stored patient, through the service's
engine, and pins them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")

PATIENT_FETCHES = 1
"""Reads of the open patient's rows (``CohortStore.get_patient``) in one render: the case."""

QUERIES_PER_PATIENT_LOAD = 7
"""One case load: the patient's five reads (patient with demographics, outcome and ground truth;
EHR values; genomic values; the first scan; counterfactual risks), the scan's logits under the
active imaging nets, and the stored SHAP vector."""

CASE_TABLES = (
    "ehr_values",
    "genomic_values",
    "images",
    "counterfactual_risks",
    "embeddings",
    "explanations",
)
"""The tables a case load reads besides the patient's row (each read once per render)."""

STATEMENTS_PER_RENDER = 15
"""Every statement of the render that opens a stored patient on the explorer: the case
(:data:`QUERIES_PER_PATIENT_LOAD`, shared by the sidebar and the page), whether the cohort has
ground truth (sidebar), the open patient's summary (picker), the ``view_patient`` audit event
(``BEGIN IMMEDIATE``, the chain's last hash, the insert), the similar patients' summaries and
the data stamp (one small indexed query) twice: once for the similar patients and once for the
stored-explanations caption, so that both follow a ``riskfusion score`` that refreshed the
index. Cached reads (the list page and its count, the models, the active version) are not
repeated."""


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """Collect the SQL text of every statement ``engine`` executes inside the block."""
    seen: list[str] = []

    def _record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def _open_render(engine: Engine) -> list[str]:
    """The statements of the explorer render in which the user opens the first listed patient."""
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    select = at.selectbox(key="explorer.patient")
    with _statements(engine) as seen:
        select.set_value(select.options[0].split(" ")[0]).run()
    assert not at.exception, at.exception
    return seen


def test_one_render_reads_the_open_patient_once(patched_service) -> None:
    seen = _open_render(patched_service.store.engine)
    patient_reads = [s for s in seen if "FROM ehr_values" in s]  # one per get_patient
    assert len(patient_reads) == PATIENT_FETCHES, "\n\n".join(seen)
    tables = Counter(match.group(1) for s in seen if (match := re.search(r"FROM (\w+)", s)))
    case_reads = {table: tables[table] for table in CASE_TABLES}
    assert case_reads == dict.fromkeys(CASE_TABLES, 1), case_reads  # each table read once
    assert 1 + sum(case_reads.values()) == QUERIES_PER_PATIENT_LOAD  # + the patient's row
    assert len(seen) == STATEMENTS_PER_RENDER, "\n\n".join(seen)
