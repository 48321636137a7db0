"""The store's tables of a validated cohort, with per-part content hashes.

Owns :func:`build_tables`: stored ids (hashed under ``hash_ids``), splits (the schema's, else
:func:`data.splits.stable_split`), encoded model inputs, the feature catalogue (demographic
inputs from :mod:`data.vocabulary`) and the hashes that let a re-import rewrite only changed
parts. Imports :mod:`data.splits`, :mod:`data.store` (the records), :mod:`data.vocabulary` and
the siblings ``schema`` and ``images`` only.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from data.artifacts import file_digest
from data.cohort_import.schema import (
    CORE_COLUMNS,
    ColumnSpec,
    ImportSchema,
)
from data.splits import stable_split
from data.store import IMPORT_PARTS, ImportTables
from data.vocabulary import FEATURE_SPECS, FeatureSpec

__all__ = ["DEMOGRAPHIC_INPUTS", "NOT_RECORDED", "build_tables", "hash_id"]

NOT_RECORDED: Final[str] = "not recorded"

# The model's demographic inputs (age from the patients file, sex_male from its sex column).
DEMOGRAPHIC_INPUTS: Final[dict[str, FeatureSpec]] = {
    spec.name: spec for spec in FEATURE_SPECS if spec.modality == "demographics"
}


def _row_hash(values: Mapping[Any, Any]) -> str:
    def plain(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if isinstance(v, np.generic) else v

    text = json.dumps({k: plain(v) for k, v in values.items()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def hash_id(patient_id: str, salt: str) -> str:
    """The stored id of a patient under ``hash_ids``: salted SHA-256, 20 hex digits after H."""
    digest = hashlib.sha256(f"{salt}\x00{patient_id}".encode()).hexdigest()
    return "H" + digest[:20].upper()


def _feature_rows(file: str, columns: Sequence[tuple[str, ColumnSpec]]) -> list[dict[str, Any]]:
    modality = "genomics" if file == "genomics" else "ehr"
    rows = []
    for column, spec in columns:
        if column in CORE_COLUMNS[file]:
            continue
        low, high = spec.low, spec.high
        description = spec.description or spec.label or column
        if spec.role == "binary":
            low, high = 0.0, 1.0
        elif spec.role == "genotype":
            low, high = 0.0, 2.0
        elif spec.role == "categorical":
            low, high = 0.0, float(len(spec.values) - 1)
            codes = ", ".join(f"{i} {v}" for i, v in enumerate(spec.values))
            description = f"{description} Codes: {codes}."
        rows.append(
            {
                "name": column,
                "modality": modality,
                "label": spec.label or column,
                "unit": spec.unit,
                "kind": "genotype" if spec.role == "genotype" else spec.role,
                "low": low,
                "high": high,
                "description": description,
            }
        )
    return rows


def _encode(
    typed: pd.DataFrame, columns: Sequence[tuple[str, ColumnSpec]], file: str
) -> pd.DataFrame:
    """Model-input columns as numbers (categories as their code)."""
    out: dict[str, pd.Series] = {}
    for column, spec in columns:
        if column in CORE_COLUMNS[file]:
            continue
        series = typed[column]
        if spec.role == "categorical":
            codes = {value: float(i) for i, value in enumerate(spec.values)}
            series = series.map(codes).astype(np.float64)
        out[column] = series.astype(np.float64)
    return pd.DataFrame(out, index=typed.index)


def build_tables(
    schema: ImportSchema,
    paths: Mapping[str, Path],
    ids: Mapping[str, pd.Series],
    typed: Mapping[str, pd.DataFrame],
    matched: Mapping[str, Sequence[tuple[str, ColumnSpec]]],
    image_rows: Mapping[str, Mapping[str, Any]],
    image_hashes: Mapping[str, str],
    directory: Path,
    id_salt: str | None,
) -> ImportTables:
    """Store-shaped frames and per-part hashes of a cohort that passed validation."""

    def stored_id(pid: str) -> str:
        return hash_id(pid, id_salt) if schema.hash_ids and id_salt else pid

    pat = typed["patients"]
    pids = ids["patients"].astype(str)
    store_ids = pids.map(stored_id)
    split = (
        pat["split"]
        if "split" in pat.columns and pat["split"].notna().all()
        else pd.Series([stable_split(p) for p in store_ids], index=pat.index)
    )

    def text(column: str) -> pd.Series:
        if column in pat.columns:
            return pat[column].where(pat[column].notna(), NOT_RECORDED).astype(str)
        return pd.Series(NOT_RECORDED, index=pat.index)

    patients = pd.DataFrame(
        {
            "patient_id": store_ids,
            "split": split.astype(str),
            "age": pat["age"].astype(np.float64),
            "sex": pat["sex"].astype(str),
            "ethnicity": text("ethnicity"),
            "site": text("site"),
        }
    )
    ehr = _encode(pat, matched["patients"], "patients")
    ehr.insert(0, "patient_id", store_ids)

    out = typed["outcomes"]
    out_ids = ids["outcomes"].astype(str).map(stored_id)
    outcomes = pd.DataFrame(
        {
            "patient_id": out_ids,
            "treatment": (
                out["treatment"].where(out["treatment"].notna(), NOT_RECORDED).astype(str)
                if "treatment" in out.columns
                else NOT_RECORDED
            ),
            "label": out["label"].astype("Int64"),
            "event_time": out["event_time"] if "event_time" in out.columns else np.nan,
            "event": out["event"].astype("Int64") if "event" in out.columns else pd.NA,
        }
    )
    if "genomics" in typed:
        genomics = _encode(typed["genomics"], matched["genomics"], "genomics")
        genomics.insert(0, "patient_id", ids["genomics"].astype(str).map(stored_id))
    else:
        genomics = pd.DataFrame({"patient_id": pd.Series([], dtype=str)})

    site_of = dict(zip(patients["patient_id"], patients["site"], strict=True))
    images = pd.DataFrame(
        [
            {
                **row,
                "patient_id": stored_id(pid),
                "site": site_of[stored_id(pid)],
                "mask_path": None,
            }
            for pid, row in image_rows.items()
        ],
        columns=["patient_id", "path", "sha256", "height", "width", "site", "mask_path"],
    )
    features = pd.DataFrame(
        [
            {
                **asdict(DEMOGRAPHIC_INPUTS["age"]),
                "low": schema.spec_for("patients", "age").low,  # type: ignore[union-attr]
                "high": schema.spec_for("patients", "age").high,  # type: ignore[union-attr]
            },
            asdict(DEMOGRAPHIC_INPUTS["sex_male"]),
            *_feature_rows("patients", matched["patients"]),
            *_feature_rows("genomics", matched.get("genomics", [])),
        ]
    )

    # Per-part content hashes, on the stored (typed, encoded) values.
    hashes: list[dict[str, str]] = []
    patient_part = patients.merge(ehr, on="patient_id", how="left")
    by_outcome = {str(r["patient_id"]): r for r in outcomes.to_dict("records")}
    by_genomics = {str(r["patient_id"]): r for r in genomics.to_dict("records")}
    original = dict(zip(store_ids, pids, strict=True))
    for record in patient_part.to_dict("records"):
        pid = str(record["patient_id"])
        parts = {
            "patient": _row_hash(record),
            "outcome": _row_hash(by_outcome[pid]),
            "genomics": _row_hash(by_genomics.get(pid, {"none": True})),
            "image": image_hashes.get(original[pid], _row_hash({"none": True})),
        }
        hashes.extend({"patient_id": pid, "part": p, "sha256": parts[p]} for p in IMPORT_PARTS)
    files = {str(path.relative_to(directory)): file_digest(path) for path in paths.values()}
    return ImportTables(
        source=schema.source,
        patients=patients.reset_index(drop=True),
        outcomes=outcomes.reset_index(drop=True),
        ehr=ehr.reset_index(drop=True),
        genomics=genomics.reset_index(drop=True),
        features=features,
        images=images,
        hashes=pd.DataFrame(hashes, columns=["patient_id", "part", "sha256"]),
        files=files,
        settings={"age_bands": list(schema.age_bands)},
        outcome=schema.outcome,
    )
