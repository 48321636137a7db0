"""Which registered model versions are complete: every part written and every file verified.

Owns the rule behind the model registry views and ``riskfusion activate``: a fusion version is
listed and can be activated only when its training finished (``riskfusion train`` records a
completion entry in the activation transaction, :data:`data.store.COMPLETION_PARAM`) and every
part that entry names (imaging nets, baselines, risk interval, stored explanations with the
similar-patient index, treatment forecast) is still registered with the same SHA-256 and its
files exist with that SHA-256. A version that a kill interrupted has no completion entry and
stays invisible; re-running ``riskfusion train`` makes a new, complete one. Also owns the
completion check of a just-trained version and ``activate_version``. Must not import streamlit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data.artifacts import file_digest
from data.errors import IncompleteVersionError
from data.store import COMPLETION_PARAM, AuditEntry, CohortStore, ModelRecord
from data.store.registry import parts_of

__all__ = [
    "MANIFEST_FILE",
    "PLANNED_PARAM",
    "VersionCheck",
    "activate_version",
    "artifact_problems",
    "check_version",
    "complete_fusion_versions",
    "completion_record",
    "require_complete",
    "version_parts",
]

MANIFEST_FILE = "manifest.json"
# Registry params key of a fusion version: the part suffixes its training is going to write
# (``interval``, ``explanations``, ``forecast``, one per baseline), recorded at registration so
# that an unfinished version can say what it lacks.
PLANNED_PARAM = "planned_parts"


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """Outcome of checking one fusion version.

    Attributes
    ----------
    version : str
        The fusion version.
    problems : tuple of str
        What is missing or changed, one phrase each; empty when the version is complete.
    """

    version: str
    problems: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether every part is written and verified."""
        return not self.problems


def version_parts(records: Mapping[str, ModelRecord], version: str) -> list[ModelRecord]:
    """The registered parts of a fusion version: its imaging nets, then its own parts.

    Its own parts are the records whose ``parent_version`` is the version
    (:func:`data.store.registry.parts_of`, which also reads stores whose baselines named the
    imaging version).
    """
    fusion = records[version]
    imaging = records.get(fusion.parent_version or "")
    parts = [] if imaging is None else [imaging]
    return parts + parts_of(records.values(), version)


def _manifest_files(manifest: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """``(file name, SHA-256)`` pairs a model manifest lists (imaging nets, forecast boosters)."""
    nets = manifest.get("nets", {})
    if isinstance(nets, Mapping):
        yield from ((str(name), str(sha)) for name, sha in nets.items())
    for member in manifest.get("members", []):
        for item in member:
            yield str(item["file"]), str(item["sha256"])


def artifact_problems(record: ModelRecord, artifacts_dir: Path) -> list[str]:
    """What is wrong with a record's files: missing, or not matching the registered SHA-256.

    A folder artifact (imaging nets, forecast) is checked through its ``manifest.json`` (the
    registered SHA-256) and every file the manifest lists with its own SHA-256.
    """
    path = Path(artifacts_dir) / record.artifact_path
    main = path / MANIFEST_FILE if path.is_dir() else path
    if not main.is_file():
        return [f"{record.version}: file {main} is missing"]
    if file_digest(main) != record.sha256:
        return [f"{record.version}: file {main} differs from its registered SHA-256"]
    problems = []
    if main.name == MANIFEST_FILE:
        try:
            manifest = json.loads(main.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return [f"{record.version}: manifest {main} is not JSON"]
        for name, sha in _manifest_files(manifest):
            file = main.parent / name
            if not file.is_file():
                problems.append(f"{record.version}: file {file} is missing")
            elif file_digest(file) != sha:
                problems.append(f"{record.version}: file {file} differs from its SHA-256")
    return problems


def check_version(
    records: Mapping[str, ModelRecord], artifacts_dir: Path, version: str
) -> VersionCheck:
    """Check that a fusion version finished training and that every part of it is intact.

    Parameters
    ----------
    records : mapping of version to ModelRecord
        The whole registry (:meth:`data.store.CohortStore.list_models`).
    artifacts_dir : Path
        Root of the model files.
    version : str
        A registered fusion version.

    Returns
    -------
    VersionCheck

    Raises
    ------
    KeyError
        If ``version`` is not a registered fusion version (the message lists them).
    """
    fusion = records.get(version)
    if fusion is None or fusion.kind != "fusion":
        known = [v for v, r in records.items() if r.kind == "fusion"]
        raise KeyError(f"{version!r} is not a registered fusion version; registered: {known}.")
    problems: list[str] = []
    completion = fusion.params.get(COMPLETION_PARAM)
    prefix = f"{version}-"
    if not isinstance(completion, Mapping):
        planned = fusion.params.get(PLANNED_PARAM)
        if planned is None:
            problems.append(
                "no completion record: its training did not finish, or it was trained before "
                "completion records were kept"
            )
        else:
            unwritten = [p for p in planned if f"{prefix}{p}" not in records]
            problems.append(
                "its training did not finish (no completion record)"
                + (f"; parts never written: {', '.join(unwritten)}" if unwritten else "")
            )
        expected = {r.version: r.sha256 for r in version_parts(records, version)}
    else:
        expected = {str(v): str(sha) for v, sha in completion.get("parts", {}).items()}
    if fusion.parent_version not in records:
        problems.append(f"its imaging version {fusion.parent_version!r} is not registered")
    problems += artifact_problems(fusion, artifacts_dir)
    for part, sha in expected.items():
        record = records.get(part)
        if record is None:
            problems.append(f"part {part} is not registered")
        elif record.sha256 != sha:
            problems.append(f"part {part} was registered again with another SHA-256")
        else:
            problems += artifact_problems(record, artifacts_dir)
    return VersionCheck(version, tuple(problems))


def require_complete(
    records: Mapping[str, ModelRecord], artifacts_dir: Path, version: str
) -> VersionCheck:
    """:func:`check_version`, raising when the version is not complete.

    Raises
    ------
    KeyError
        If ``version`` is not a registered fusion version.
    data.errors.IncompleteVersionError
        If a part is missing or changed, or its training did not finish (the message names
        every problem and the fix).
    """
    check = check_version(records, artifacts_dir, version)
    if not check.complete:
        raise IncompleteVersionError(
            f"Model version {version!r} is incomplete and cannot be activated: "
            f"{'; '.join(check.problems)}. Activate a complete version (`riskfusion versions` "
            "lists them) or train a new one with `riskfusion train`."
        )
    return check


def complete_fusion_versions(store: CohortStore, artifacts_dir: Path) -> list[str]:
    """The fusion versions that are complete (newest first), each checked file by file."""
    records = {record.version: record for record in store.list_models()}
    return [
        version
        for version, record in records.items()
        if record.kind == "fusion" and check_version(records, artifacts_dir, version).complete
    ]


def completion_record(
    store: CohortStore,
    artifacts_dir: Path,
    fusion_version: str,
    planned: Sequence[str],
    *,
    n_patients: int,
    n_embeddings: int,
) -> dict[str, Any]:
    """Verify a just-trained version part by part and return its completion record.

    Raises
    ------
    data.errors.IncompleteVersionError
        If a planned part is not registered, a file is missing or differs from its SHA-256,
        or a stored count falls short (nothing is activated then).
    """
    records = {record.version: record for record in store.list_models()}
    parts = version_parts(records, fusion_version)
    problems = [
        f"part {name} was never written"
        for name in planned
        if f"{fusion_version}-{name}" not in records
    ]
    for record in (records[fusion_version], *parts):
        problems += artifact_problems(record, artifacts_dir)
    imaging = records[fusion_version].parent_version or ""
    counts = {
        "predictions": (store.count_predictions(fusion_version), n_patients),
        "explanations": (store.count_explanations(fusion_version), n_patients),
        "embeddings": (store.count_embeddings(imaging), n_embeddings),
    }
    problems += [
        f"{have} of {want} {what} stored" for what, (have, want) in counts.items() if have < want
    ]
    if problems:
        raise IncompleteVersionError(
            f"Model version {fusion_version!r} failed its completion check and was not "
            f"activated: {'; '.join(problems)}. Run `riskfusion train` again."
        )
    return {
        "completed_at": datetime.now(UTC).isoformat(),
        "parts": {record.version: record.sha256 for record in parts},
        "counts": {what: have for what, (have, _) in counts.items()},
    }


def activate_version(
    store: CohortStore, artifacts_dir: Path, version: str, *, audit: AuditEntry | None = None
) -> None:
    """Make a registered fusion version active again, with its imaging nets and every part.

    Only a complete version can be activated (:func:`fusion.training.versions.check_version`): its
    training finished and every part it recorded (imaging nets, baselines, risk interval,
    stored explanations, forecast) is registered with its SHA-256 and its files match it.
    Then every kind is switched in one transaction (``audit``, action ``activate_model``, is
    written in it).

    Raises
    ------
    KeyError
        If ``version`` is not a registered fusion version (the message lists them).
    data.errors.IncompleteVersionError
        If the version is incomplete or a file of it is missing or changed (the message names
        every problem); nothing is switched.
    """
    records = {record.version: record for record in store.list_models()}
    require_complete(records, artifacts_dir, version)
    parts = records[version].params[COMPLETION_PARAM]["parts"]
    store.activate_models(
        [version, *parts],
        audit=None if audit is None else replace(audit, model_version=version),
    )
