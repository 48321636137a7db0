"""The model registry: versions of each kind, their artifacts and which one is active.

Owns :class:`ModelRegistry` (register, activate, complete, list, look up) and
:data:`COMPLETION_PARAM`. Exactly one version per kind is active; every switch is one
transaction. An artifact built for a version (its interval calibration, explanations,
forecast) is found through its ``kind`` and ``parent_version`` columns
(:meth:`ModelRegistry.artifact_of`), never by parsing version strings. It must not import
torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from data.errors import StoreNotBuiltError
from data.store.audit import append_audit
from data.store.engine import StoreBase
from data.store.records import AuditEntry, ModelRecord
from data.store.schema import ModelVersion

__all__ = ["BASELINE_KIND", "COMPLETION_PARAM", "ModelRegistry", "parts_of"]

# Key of a fusion version's registry params that records its completed training (written in
# the activation transaction; see :meth:`CohortStore.complete_version`).
COMPLETION_PARAM = "completion"

BASELINE_KIND = "baseline_"
"""Prefix of the kind of every baseline model (``baseline_<name>``) registered with a version."""


def parts_of(records: Iterable[ModelRecord], version: str) -> list[ModelRecord]:
    """The parts registered for ``version`` (``parent_version`` = it), sorted by version.

    Stores written before baselines named their fusion version as parent registered them
    under the imaging version: a ``baseline_*`` record whose parent is the fusion version's
    own parent and whose version is ``<version>-<name>`` is read as a part too, so those stores
    stay readable without a rewrite.

    Parameters
    ----------
    records : iterable of ModelRecord
        The registry (e.g. :meth:`ModelRegistry.list_models`).
    version : str
        A fusion version.

    Returns
    -------
    list of ModelRecord
    """
    listed = list(records)
    own = next((r for r in listed if r.version == version), None)
    grandparent = None if own is None else own.parent_version
    parts = [
        r
        for r in listed
        if r.parent_version == version
        or (
            grandparent is not None
            and r.parent_version == grandparent
            and r.kind.startswith(BASELINE_KIND)
            and r.version.startswith(f"{version}-")
        )
    ]
    return sorted(parts, key=lambda r: r.version)


class ModelRegistry(StoreBase):
    """Register and activate model versions (one repository of the store)."""

    def register_model(self, record: ModelRecord, *, activate: bool = True) -> None:
        """Add a model to the registry; if ``activate``, it replaces the active one of its kind.

        Both happen in one transaction, so exactly one model per kind is active at any time.
        """
        with self.engine.begin() as conn:
            if activate:
                conn.execute(
                    update(ModelVersion)
                    .where(ModelVersion.kind == record.kind)
                    .values(is_active=False)
                )
            conn.execute(
                insert(ModelVersion).values(
                    version=record.version,
                    kind=record.kind,
                    created_at=record.created_at,
                    artifact_path=record.artifact_path,
                    sha256=record.sha256,
                    metrics=dict(record.metrics),
                    params=dict(record.params),
                    parent_version=record.parent_version,
                    is_active=activate,
                )
            )

    def register_artifact(
        self,
        version: str,
        kind: str,
        artifact_path: str,
        sha256: str,
        *,
        metrics: Mapping[str, Any],
        params: Mapping[str, Any],
        parent_version: str | None = None,
        activate: bool = False,
    ) -> ModelRecord:
        """Register one artifact (a file, or a folder with a manifest), stamped now.

        Parameters
        ----------
        version : str
            New registry key of the artifact.
        kind : str
            What it is (``imaging``, ``fusion``, ``interval``, ``explanations``, ...).
        artifact_path : str
            Its path relative to the artifacts directory.
        sha256 : str
            Digest of the file (of a folder: of its manifest), from
            :func:`data.artifacts.file_digest`; loaders verify it before reading.
        metrics, params : Mapping[str, Any]
            JSON-able results and settings of the build.
        parent_version : str or None, default=None
            The version it was built for or from; :meth:`artifact_of` finds it through this.
        activate : bool, default=False
            Make it the active one of its kind now; artifacts of a version being built stay
            inactive until :meth:`complete_version` activates the whole version.

        Returns
        -------
        ModelRecord
            The registered entry.
        """
        record = ModelRecord(
            version=version,
            kind=kind,
            created_at=datetime.now(UTC),
            artifact_path=artifact_path,
            sha256=sha256,
            metrics=metrics,
            params=params,
            parent_version=parent_version,
        )
        self.register_model(record, activate=activate)
        return replace(record, is_active=activate)

    def activate_model(self, version: str, *, audit: AuditEntry | None = None) -> None:
        """Make a registered version the active one of its kind (one transaction).

        ``audit``, when given, is appended to the audit trail in the same transaction.

        Raises
        ------
        KeyError
            If the version is not registered.
        """
        self.activate_models([version], audit=audit)

    def activate_models(self, versions: Sequence[str], *, audit: AuditEntry | None = None) -> None:
        """Activate several versions (e.g. an imaging model and its fusion model) at once.

        One transaction: readers see either the previous set of active models or the new one,
        never a fusion model with another version's imaging nets. ``audit`` is appended in it.

        Raises
        ------
        KeyError
            If a version is not registered (nothing changes then).
        """
        with self.engine.begin() as conn:
            self._activate_in(conn, versions, audit)

    @staticmethod
    def _activate_in(conn: Connection, versions: Sequence[str], audit: AuditEntry | None) -> None:
        """Activate ``versions`` (and append ``audit``) inside the caller's transaction ``conn``."""
        if audit is not None:
            append_audit(conn, audit)
        for version in versions:
            kind = conn.execute(
                select(ModelVersion.kind).where(ModelVersion.version == version)
            ).scalar_one_or_none()
            if kind is None:
                raise KeyError(f"Model version {version!r} is not registered.")
            conn.execute(
                update(ModelVersion).where(ModelVersion.kind == kind).values(is_active=False)
            )
            conn.execute(
                update(ModelVersion).where(ModelVersion.version == version).values(is_active=True)
            )

    def complete_version(
        self,
        version: str,
        completion: Mapping[str, Any],
        *,
        activate: Sequence[str],
        audit: AuditEntry | None = None,
    ) -> None:
        """Record that a version's training finished and activate it, in one transaction.

        ``completion`` (the verified parts and counts) goes into the version's registry params
        under :data:`COMPLETION_PARAM`; readers list and activate only versions that have it.
        ``activate`` (the version and every part of it) are made active and ``audit`` is
        appended in the same transaction, so a kill leaves neither the record nor the switch.

        Raises
        ------
        KeyError
            If ``version`` or one of ``activate`` is not registered (nothing changes then).
        """
        with self.engine.begin() as conn:
            params = conn.execute(
                select(ModelVersion.params).where(ModelVersion.version == version)
            ).scalar_one_or_none()
            if params is None:
                raise KeyError(f"Model version {version!r} is not registered.")
            conn.execute(
                update(ModelVersion)
                .where(ModelVersion.version == version)
                .values(params={**dict(params), COMPLETION_PARAM: dict(completion)})
            )
            self._activate_in(conn, activate, audit)

    def list_models(self, kind: str | None = None) -> list[ModelRecord]:
        """Registry entries, newest first, optionally of one kind."""
        query = select(ModelVersion).order_by(ModelVersion.created_at.desc())
        if kind is not None:
            query = query.where(ModelVersion.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_model_record(row) for row in rows]

    def artifact_of(self, parent_version: str, kind: str) -> ModelRecord | None:
        """The artifact of ``kind`` built for ``parent_version`` (the newest), or None.

        Parameters
        ----------
        parent_version : str
            E.g. a fusion version.
        kind : str
            E.g. ``"interval"``, ``"explanations"`` or ``"forecast"``.
        """
        query = (
            select(ModelVersion)
            .where(ModelVersion.parent_version == parent_version, ModelVersion.kind == kind)
            .order_by(ModelVersion.created_at.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _model_record(row)

    def parts_of(self, version: str) -> list[ModelRecord]:
        """The parts registered for ``version`` (baselines, interval, explanations, forecast).

        See :func:`parts_of`; one registry query.
        """
        return parts_of(self.list_models(), version)

    def active_model(self, kind: str) -> ModelRecord:
        """The active model of a kind.

        Raises
        ------
        StoreNotBuiltError
            If no model of that kind is registered yet.
        """
        for record in self.list_models(kind):
            if record.is_active:
                return record
        raise StoreNotBuiltError(
            f"No active {kind!r} model in the store; build the demo with `riskfusion demo "
            "--no-serve`, or import a cohort and run `riskfusion train`."
        )


def _model_record(row: RowMapping) -> ModelRecord:
    """The :class:`ModelRecord` of one ``model_registry`` row."""
    return ModelRecord(
        version=row["version"],
        kind=row["kind"],
        created_at=row["created_at"],
        artifact_path=row["artifact_path"],
        sha256=row["sha256"],
        metrics=row["metrics"],
        params=row["params"],
        parent_version=row["parent_version"],
        is_active=bool(row["is_active"]),
    )
