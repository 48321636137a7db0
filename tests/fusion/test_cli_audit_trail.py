"""``riskfusion audit-trail verify`` and ``riskfusion db-roles`` (least-privilege PostgreSQL)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from data.store import AuditEntry, CohortStore, make_engine
from fusion.cli import main


def _event(number: int) -> AuditEntry:
    return AuditEntry(actor="ana@h.org", role="admin", action="export", detail={"n": number})


@pytest.fixture
def trail_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store with three events, named by the CLI's environment."""
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    monkeypatch.setenv("RISKFUSION_DATABASE_URL", url)
    store = CohortStore(make_engine(url))
    store.create_schema()
    for number in range(3):
        store.record_event(_event(number))
    store.engine.dispose()
    return url


def test_verify_passes_then_names_the_tampered_event(
    trail_url: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    assert main(["audit-trail", "verify"]) == 0
    out = capsys.readouterr().out  # the result goes to stdout, not into the log
    assert "audit trail intact: 3 events" in out
    head = next(line for line in out.splitlines() if "head 3:" in line)
    anchor = head.split("head ")[1].split()[0]
    assert main(["audit-trail", "verify", "--expect", anchor]) == 0
    # Tamper through a raw connection with the triggers dropped, as the file's owner could.
    engine = create_engine(trail_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE event_id = 2"))
    engine.dispose()
    caplog.clear()
    assert main(["audit-trail", "verify"]) == 1
    assert "NOT intact: event #2 was changed after it was written" in caplog.text
    assert main(["audit-trail", "verify", "--expect", "3:nothex"]) == 2
    assert "is not ID:HASH" in caplog.text


# ---------------------------------------------------------------------- PostgreSQL roles
@pytest.fixture
def roles(postgres_admin: Engine) -> Iterator[tuple[str, str]]:
    """Unique owner and app role names; both dropped (with what they own) afterwards."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"rf_owner_{suffix}", f"rf_app_{suffix}")
    yield names
    with postgres_admin.connect() as conn:
        for name in names:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}
            ).first()
            if exists:
                conn.execute(text(f'DROP ROLE "{name}"'))


@pytest.mark.postgres
def test_db_roles_leave_the_app_only_insert_and_select_on_the_trail(
    request: pytest.FixtureRequest,
    roles: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    factory: Callable[[], str] = request.getfixturevalue("postgres_database")
    admin_url = factory()
    owner, app = roles
    monkeypatch.setenv("RISKFUSION_HOME", str(tmp_path))
    monkeypatch.setenv("RISKFUSION_DATABASE_URL", admin_url)
    secret = tmp_path / "app-password"
    secret.write_text("s3cret 'quoted'\n")
    args = ["db-roles", "--owner-role", owner, "--app-role", app]
    try:
        assert main([*args, "--app-password-file", str(secret)]) == 0
        assert main(args) == 0  # idempotent
        app_url = make_url(admin_url).set(username=app)
        store = CohortStore(make_engine(app_url.render_as_string(hide_password=False)))
        store.create_schema()  # up to date: reads only, works without owner rights
        store.record_event(_event(1))
        store.record_event(_event(2))
        assert store.verify_audit_chain().ok
        refused = [
            "UPDATE audit_events SET actor = 'mallory'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
            "CREATE OR REPLACE FUNCTION riskfusion_audit_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END; $$",
            "DROP TABLE audit_events",
            "SET session_replication_role = replica",
        ]
        for statement in refused:
            with pytest.raises((ProgrammingError, DBAPIError)), store.engine.begin() as conn:
                conn.execute(text(statement))
        # The rest of the app still works as this role: patients, predictions, images.
        from tests.data.store.test_store import make_tables

        assert store.write_cohort(make_tables()) > 0
        assert store.count_audit_events() == 2
        store.engine.dispose()
    finally:
        admin = create_engine(admin_url)
        with admin.begin() as conn:  # roles own objects here: hand them back before DROP ROLE
            conn.execute(text(f'REASSIGN OWNED BY "{owner}" TO CURRENT_USER'))
            conn.execute(text(f'DROP OWNED BY "{owner}", "{app}"'))
        admin.dispose()


def test_db_roles_refuse_sqlite_and_bad_names(trail_url: str, caplog) -> None:
    assert main(["db-roles"]) == 2
    assert "Database roles are a PostgreSQL feature" in caplog.text
    from data.store import create_database_roles

    with pytest.raises(ValueError, match="Role name 'Robert; DROP' is not allowed"):
        create_database_roles(
            create_engine("postgresql+psycopg://x@127.0.0.1/none"),
            owner_role="Robert; DROP",
            app_role="app",
        )
    with pytest.raises(ValueError, match="Pick two names"):
        create_database_roles(
            create_engine("postgresql+psycopg://x@127.0.0.1/none"),
            owner_role="same",
            app_role="same",
        )
