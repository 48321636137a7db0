"""Least-privilege PostgreSQL roles for a deployment (owner of the tables, app login).

Owns :func:`create_database_roles`. It must not import torch, streamlit or the
``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from data.store.facade import CohortStore
from data.store.schema import Base

__all__ = ["create_database_roles"]

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def create_database_roles(
    engine: Engine, *, owner_role: str, app_role: str, app_password: str | None = None
) -> list[str]:
    """Create (or update) a least-privilege pair of PostgreSQL roles for a deployment.

    ``owner_role`` (no login) becomes the owner of every riskfusion table and of the audit
    trigger function; only it (and superusers) can drop or disable the append-only trigger.
    ``app_role`` (login) is what the dashboard and the commands connect as: it may read and
    write the cohort, model and result tables, but only ``INSERT`` and ``SELECT`` on
    ``audit_events``. Run it as a superuser (or a role that is a member of ``owner_role`` with
    ``CREATEROLE``); it is idempotent, so rerun it after an upgrade that adds tables.

    Parameters
    ----------
    engine : Engine
        A PostgreSQL engine connected as that administrator, on the riskfusion database.
    owner_role, app_role : str
        Role names: lower-case letters, digits and ``_``, starting with a letter or ``_``.
    app_password : str or None, default=None
        Password of ``app_role``; None leaves it as it is (e.g. certificate or peer login).

    Returns
    -------
    list of str
        The statements run (passwords masked), for the log.

    Raises
    ------
    ValueError
        If the engine is not PostgreSQL, or a role name is not a plain identifier, or both
        names are the same.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError(
            f"Database roles are a PostgreSQL feature; this store is {engine.dialect.name}. "
            "On SQLite protect the database file with file permissions instead "
            "(docs/deployment.md)."
        )
    for name in (owner_role, app_role):
        if not _ROLE_NAME.fullmatch(name):
            raise ValueError(
                f"Role name {name!r} is not allowed; use lower-case letters, digits and _ "
                "(at most 63, not starting with a digit), e.g. riskfusion_app."
            )
    if app_password is not None and ("\x00" in app_password or not app_password):
        raise ValueError("The app role's password is empty or holds a NUL byte; pick another.")
    if owner_role == app_role:
        raise ValueError(
            f"The owner and the app role are both {owner_role!r}; the app must not own the "
            "tables (an owner can drop the audit trigger). Pick two names."
        )
    CohortStore(engine).create_schema()
    tables = [table.name for table in Base.metadata.sorted_tables]
    done: list[str] = []
    with engine.begin() as conn:

        def run(statement: str, shown: str | None = None) -> None:
            conn.exec_driver_sql(statement)
            done.append(shown or statement)

        existing = set(
            conn.execute(
                text("SELECT rolname FROM pg_roles WHERE rolname IN (:owner, :app)"),
                {"owner": owner_role, "app": app_role},
            ).scalars()
        )
        if owner_role not in existing:
            run(f'CREATE ROLE "{owner_role}" NOLOGIN')
        if app_role not in existing:
            run(f'CREATE ROLE "{app_role}" LOGIN')
        if app_password is not None:
            quoted = "'" + app_password.replace("'", "''") + "'"  # standard_conforming_strings
            run(
                f'ALTER ROLE "{app_role}" PASSWORD {quoted}',
                f'ALTER ROLE "{app_role}" PASSWORD ***',
            )
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        run(f'REVOKE "{owner_role}" FROM "{app_role}"')
        for table in tables:
            run(f'ALTER TABLE "{table}" OWNER TO "{owner_role}"')
        run(f'ALTER FUNCTION riskfusion_audit_append_only() OWNER TO "{owner_role}"')
        run(f'GRANT CONNECT ON DATABASE "{database}" TO "{app_role}"')
        run(f'GRANT USAGE ON SCHEMA "{schema}" TO "{app_role}"')
        for table in tables:
            run(f'REVOKE ALL ON "{table}" FROM "{app_role}"')
            verbs = (
                "SELECT, INSERT" if table == "audit_events" else "SELECT, INSERT, UPDATE, DELETE"
            )
            run(f'GRANT {verbs} ON "{table}" TO "{app_role}"')
        # Sequences of the app's tables (image ids); the audit trail numbers its own events.
        sequences = conn.execute(
            text(
                "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "WHERE s.relkind = 'S' AND d.deptype IN ('a', 'i') "
                "AND t.relname = ANY(:tables) AND t.relname <> 'audit_events' "
                "AND s.relnamespace = current_schema()::regnamespace"
            ),
            {"tables": tables},
        ).scalars()
        for sequence in sorted(sequences):
            run(f'GRANT USAGE, SELECT ON SEQUENCE "{sequence}" TO "{app_role}"')
    return done
