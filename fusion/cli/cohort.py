"""Subcommands ``import`` (validate and import a cohort folder) and ``db-roles``.

Heavy modules are imported inside each subcommand. Must not import streamlit.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from fusion.cli.audit_entries import cli_entry
from fusion.settings import Settings

if TYPE_CHECKING:
    from fusion.training.stages import EventSink

__all__ = ["REFUSED", "REFUSED_DRY_RUN", "db_roles", "import_cohort"]

logger = logging.getLogger("riskfusion")

REFUSED = "import refused: the cohort has errors (listed above); nothing was written"
REFUSED_DRY_RUN = "validation failed: the cohort has errors (listed above); nothing was written"


def import_cohort(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    """Validate the cohort folder ``args.directory`` and import it (unless ``--dry-run``)."""
    from data.errors import CohortError
    from fusion.admin.cohort_import import run_import
    from fusion.training.stages import Stages

    with Stages(1, logger.info, sink).stage("import", str(args.directory)):
        status = run_import(
            settings,
            args.directory,
            schema=args.schema,
            dry_run=args.dry_run,
            report_path=args.report,
            summary_path=args.summary,
            id_salt_file=args.id_salt_file,
            audit=cli_entry("import", detail={"command": "import"}, args=args),
        )
        if status != 0:  # the stage failed: never end a refused import with "import done"
            raise CohortError(REFUSED_DRY_RUN if args.dry_run else REFUSED)
    return status


def db_roles(settings: Settings, args: argparse.Namespace) -> int:
    """Create the owner and app roles on the PostgreSQL store (see docs/deployment.md)."""
    from data.store import create_database_roles, make_engine

    password = None
    if args.app_password_file is not None:
        password = args.app_password_file.read_text(encoding="utf-8").strip()
    engine = make_engine(settings.database_url)
    try:
        statements = create_database_roles(
            engine, owner_role=args.owner_role, app_role=args.app_role, app_password=password
        )
        app_url = engine.url.set(username=args.app_role, password=None)
    finally:
        engine.dispose()
    logger.info("ran %d statements; %s owns the tables", len(statements), args.owner_role)
    logger.info(
        "run the app as %s: RISKFUSION_DATABASE_URL=%s (add its password or use a .pgpass)",
        args.app_role,
        app_url.render_as_string(hide_password=True),
    )
    return 0
