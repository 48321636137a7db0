"""Engine and connection set-up of the store, and the row helpers its repositories share.

Owns :func:`make_engine` (SQLite pragmas: WAL, foreign keys, busy timeout, recursive triggers;
parameters hidden from SQL errors), :class:`StoreBase` (the engine every repository works on)
and the conversion of frames into insertable rows. It imports SQLAlchemy, numpy and pandas
only; it must not import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

__all__ = ["WRITE_CHUNK", "StoreBase", "frame_rows", "insert_chunks", "long_rows", "make_engine"]

WRITE_CHUNK = 5_000
"""Rows per ``INSERT`` or ``IN`` list: bounded statements at any cohort size."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    Parameters
    ----------
    url : str
        Any SQLAlchemy URL, e.g. ``sqlite:///artifacts/riskfusion.db`` or
        ``postgresql+psycopg://127.0.0.1/riskfusion``. ``sqlite://`` is an in-memory store
        shared by every connection of the engine (for tests).

    Returns
    -------
    Engine
        The configured engine. Its SQL errors never show the statement's parameters (patient
        ids and values); logs and tracebacks carry the statement only.
    """
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
            hide_parameters=True,  # SQL errors must not print patient rows into logs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # REPLACE then fires delete triggers too (the audit trail's delete trigger refuses).
            cursor.execute("PRAGMA recursive_triggers=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


class StoreBase:
    """The engine a repository works on; every repository of :mod:`data.store` derives from it.

    Parameters
    ----------
    engine : Engine
        From :func:`make_engine`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _count_of_version(self, table: Any, model_version: str) -> int:
        """Rows of a result ``table`` (predictions, explanations, embeddings) of one version."""
        query = select(func.count()).select_from(table).where(table.model_version == model_version)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Frame rows as dicts of plain Python values, NaN -> None."""
    subset = frame.loc[:, list(columns)].astype(object)
    subset = subset.where(pd.notna(subset), None)
    rows: list[dict[str, Any]] = [
        {str(key): value for key, value in row.items()} for row in subset.to_dict("records")
    ]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.generic):
                row[key] = value.item()
    return rows


def insert_chunks(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` in chunks of :data:`WRITE_CHUNK` (caller's transaction)."""
    for start in range(0, len(rows), WRITE_CHUNK):
        conn.execute(insert(table), rows[start : start + WRITE_CHUNK])


def long_rows(wide: pd.DataFrame, *, as_int: bool) -> list[dict[str, Any]]:
    """Wide ``patient_id`` + feature columns -> long rows; missing values get no row."""
    long = wide.melt(id_vars="patient_id", var_name="feature", value_name="value").dropna()
    values = long["value"].to_numpy()
    converted = values.astype(np.int64) if as_int else values.astype(np.float64)
    return [
        {"patient_id": pid, "feature": feat, "value": val.item()}
        for pid, feat, val in zip(
            long["patient_id"].tolist(), long["feature"].tolist(), converted, strict=True
        )
    ]
