"""Runtime settings read from the environment.

The only module that reads ``os.environ``. It lives in ``fusion`` (not ``dashboard``) because the
``riskfusion`` command line needs the same settings and may not import the dashboard;
``dashboard.settings`` re-exports it. Must not import streamlit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_MIN_CELL", "Settings"]

DATABASE_FILE = "riskfusion.db"
DEFAULT_MIN_CELL = 11
"""Default suppression floor (CMS practice: no cell under 11 patients is published)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Where riskfusion keeps its runtime files and its database.

    Attributes
    ----------
    artifacts_dir : Path
        Git-ignored home of the database, scans, model weights and reports
        (env ``RISKFUSION_HOME``, default ``./artifacts``).
    database_url : str
        SQLAlchemy URL (env ``RISKFUSION_DATABASE_URL``, default a SQLite file in
        ``artifacts_dir``).
    demo_patients : int
        Demo cohort size (env ``RISKFUSION_DEMO_PATIENTS``, default 2000).
    demo_seed : int
        Demo cohort seed (env ``RISKFUSION_DEMO_SEED``, default 0).
    demo_bias : bool
        Whether the demo injects its documented bias (env ``RISKFUSION_DEMO_BIAS``, ``1`` or
        ``0``, default 1; see ``docs/data.md``).
    idle_minutes : int
        Idle sign-out of a dashboard session in minutes, 0 disables it (env
        ``RISKFUSION_IDLE_MINUTES``, default 15).
    secrets_file : Path
        Streamlit's secrets file holding the sign-in (``[auth]``) and role mapping
        (``[riskfusion.roles]``) configuration (env ``RISKFUSION_SECRETS``, default
        ``.streamlit/secrets.toml``).
    min_cell : int
        Suppression floor: the smallest count any cohort view or export shows (env
        ``RISKFUSION_MIN_CELL``, default 11, at least 1). Researchers may raise it for a view,
        never lower it; only an admin may, and that is written to the audit trail.
    """

    artifacts_dir: Path
    database_url: str
    demo_patients: int = 2000
    demo_seed: int = 0
    demo_bias: bool = True
    idle_minutes: int = 15
    secrets_file: Path = Path(".streamlit/secrets.toml")
    min_cell: int = DEFAULT_MIN_CELL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("RISKFUSION_HOME", "artifacts")).expanduser().resolve()
        url = env.get("RISKFUSION_DATABASE_URL") or f"sqlite:///{home / DATABASE_FILE}"
        return cls(
            artifacts_dir=home,
            database_url=url,
            demo_patients=_int(env, "RISKFUSION_DEMO_PATIENTS", 2000),
            demo_seed=_int(env, "RISKFUSION_DEMO_SEED", 0),
            demo_bias=_flag(env, "RISKFUSION_DEMO_BIAS", default=True),
            idle_minutes=_int(env, "RISKFUSION_IDLE_MINUTES", 15),
            secrets_file=Path(env.get("RISKFUSION_SECRETS") or ".streamlit/secrets.toml"),
            min_cell=_min_cell(env),
        )

    @property
    def uses_default_sqlite(self) -> bool:
        """Whether the database is the SQLite file inside ``artifacts_dir``."""
        return self.database_url == f"sqlite:///{self.artifacts_dir / DATABASE_FILE}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; set it to e.g. {default}.") from None


def _min_cell(env: Mapping[str, str]) -> int:
    value = _int(env, "RISKFUSION_MIN_CELL", DEFAULT_MIN_CELL)
    if value < 1:
        raise ValueError(
            f"RISKFUSION_MIN_CELL={value} is below 1; set the suppression floor to a count of at "
            f"least 1 (default {DEFAULT_MIN_CELL}). An admin lowers it per view in the dashboard."
        )
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"{name}={raw!r} is not a switch; set it to one of {_TRUE + _FALSE}.")
