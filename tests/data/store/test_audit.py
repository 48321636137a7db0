"""Audit trail: append-only at the database level, same-transaction events, keyset pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from data.store import AuditEntry, CohortStore, ModelRecord, make_engine
from data.store.schema import AuditEvent

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest,
) -> Iterator[CohortStore]:
    """A fresh store per test on each backend."""
    if request.param == "sqlite":
        url = "sqlite://"
    else:
        factory: Callable[[], str] = request.getfixturevalue("postgres_database")
        url = factory()
    result = CohortStore(make_engine(url))
    result.create_schema()
    yield result
    result.engine.dispose()


def entry(action: str = "view_patient", patient_id: str | None = "P0000001") -> AuditEntry:
    return AuditEntry(
        actor="ana@h.org",
        role="clinician",
        action=action,
        patient_id=patient_id,
        model_version="fusion-1",
        detail={"page": "explorer"},
    )


def test_events_come_back_newest_first_in_keyset_pages(store: CohortStore) -> None:
    for number in range(5):
        store.record_event(entry(patient_id=f"P{number:07d}"))
    first = store.audit_events(limit=2)
    assert first["patient_id"].tolist() == ["P0000004", "P0000003"]
    second = store.audit_events(limit=2, before_id=int(first["event_id"].min()))
    assert second["patient_id"].tolist() == ["P0000002", "P0000001"]
    assert store.count_audit_events() == 5
    assert first.loc[0, "detail"] == '{"page": "explorer"}'
    assert (first["actor"] == "ana@h.org").all()


def test_filters_by_action_and_patient(store: CohortStore) -> None:
    store.record_event(entry("view_patient", "P0000001"))
    store.record_event(entry("export", None))
    store.record_event(entry("view_patient", "P0000002"))
    assert store.audit_events(action="export")["action"].tolist() == ["export"]
    assert store.audit_events(patient_id="P0000002")["patient_id"].tolist() == ["P0000002"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (AuditEntry(actor="a", role="admin", action="peek"), "Unknown audit action 'peek'"),
        (AuditEntry(actor="  ", role="admin", action="export"), "needs an actor"),
    ],
)
def test_bad_events_are_refused_and_nothing_is_written(
    store: CohortStore, bad: AuditEntry, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.record_event(bad)
    assert store.count_audit_events() == 0


def test_the_database_refuses_to_change_or_delete_events(store: CohortStore) -> None:
    store.record_event(entry())
    for statement in (update(AuditEvent).values(actor="mallory"), delete(AuditEvent)):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    assert store.audit_events()["actor"].tolist() == ["ana@h.org"]


@pytest.mark.postgres
def test_postgres_refuses_truncate(request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_database")()
    store = CohortStore(make_engine(url))
    store.record_event(entry())
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert store.count_audit_events() == 1
    store.engine.dispose()


def model(version: str) -> ModelRecord:
    return ModelRecord(
        version=version,
        kind="fusion",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        artifact_path=f"models/{version}.txt",
        sha256="0" * 64,
        metrics={},
        params={},
    )


def test_activation_and_its_event_commit_together(store: CohortStore) -> None:
    store.register_model(model("fusion-1"))
    store.register_model(model("fusion-2"))
    audit = AuditEntry(actor="root", role="admin", action="activate_model", model_version="x")
    store.activate_model("fusion-1", audit=audit)
    assert store.active_model("fusion").version == "fusion-1"
    assert store.audit_events()["action"].tolist() == ["activate_model"]
    # A failing activation leaves neither the change nor its event.
    with pytest.raises(KeyError, match="not registered"):
        store.activate_model("fusion-9", audit=audit)
    assert store.count_audit_events() == 1
    bad = AuditEntry(actor="root", role="admin", action="nope")
    with pytest.raises(ValueError, match="Unknown audit action"):
        store.activate_model("fusion-2", audit=bad)
    assert store.active_model("fusion").version == "fusion-1"


def test_an_import_and_its_event_commit_together(tmp_path) -> None:
    from pathlib import Path

    from data.cohort_import import import_cohort
    from models.scans import read_scan

    example = Path(__file__).resolve().parents[3] / "data" / "examples" / "cohort"
    store = CohortStore(make_engine("sqlite://"))
    audit = AuditEntry(actor="cli:ana", role="admin", action="import", detail={"command": "x"})
    kwargs = {"artifacts_dir": tmp_path, "reader": read_scan, "audit": audit}
    result = import_cohort(example, store, **kwargs)
    events = store.audit_events()
    assert events["action"].tolist() == ["import"]
    assert result.counts is not None
    assert f'"batch_id": "{result.counts.batch_id}"' in events.loc[0, "detail"]
    import_cohort(example, store, **kwargs)  # unchanged files: no change, so no event
    assert store.count_audit_events() == 1
