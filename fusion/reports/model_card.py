"""The structured model card of the active version: one JSON document a governance board reads.

Owns what the card says and its schema (:data:`MODEL_CARD_SCHEMA`, documented in
``docs/model_card.md``): intended use, data lineage from the registry (sources, counts, import
batches, the training data's SHA-256 fingerprint), modalities, performance with CIs, calibration
(intercept, slope, O/E, ICI), net benefit against treat-all, the fairness summary of each audit
attribute (flags and suppressed groups), the measured trust in the image maps, limitations
derived from these numbers, and the version. Every number comes from the service's views with
the viewer's suppression floor, so a researcher's card shows nothing the audit page would hide.
Rendering to HTML and PDF is :mod:`fusion.reports.model_card_render`. Must not import streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from data.vocabulary import MODALITY_LABELS
from fusion.admin.access import Identity
from fusion.evaluation.groups import AUDIT_ATTRIBUTES
from fusion.evaluation.performance import ABLATION_LABELS
from fusion.service.usefulness import ALL_PATIENTS, clinical_usefulness
from fusion.training.versions import PLANNED_PARAM

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["CARD_THRESHOLDS", "MODEL_CARD_SCHEMA", "SCHEMA_ID", "build_model_card"]


SCHEMA_ID = "riskfusion.model_card/1"
"""Name and version of the card's schema; a change of meaning gets a new number."""

CARD_THRESHOLDS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4)
"""Threshold probabilities at which the card reports net benefit."""

_ESTIMATE = {
    "type": "object",
    "required": ["value", "low", "high"],
    "properties": {
        "value": {"type": ["number", "null"]},
        "low": {"type": ["number", "null"]},
        "high": {"type": ["number", "null"]},
    },
}

MODEL_CARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "riskfusion model card",
    "type": "object",
    "required": [
        "schema",
        "created",
        "model",
        "intended_use",
        "data",
        "modalities",
        "performance",
        "calibration",
        "net_benefit",
        "fairness",
        "map_trust",
        "limitations",
        "disclosure",
    ],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "created": {"type": "string", "format": "date-time"},
        "model": {
            "type": "object",
            "required": ["version", "imaging_version", "created_at", "threshold", "parts"],
            "properties": {
                "version": {"type": "string"},
                "imaging_version": {"type": "string"},
                "created_at": {"type": "string"},
                "threshold": {"type": "number"},
                "parts": {"type": "array", "items": {"type": "string"}},
            },
        },
        "intended_use": {
            "type": "object",
            "required": ["purpose", "users", "not_for"],
        },
        "data": {
            "type": "object",
            "required": ["sources", "n_patients", "splits", "fingerprint"],
            "properties": {
                "sources": {"type": "array", "items": {"type": "string"}},
                "n_patients": {"type": ["integer", "null"]},
                "splits": {"type": "object"},
                "fingerprint": {"type": "string"},
                "import_batches": {"type": "array", "items": {"type": "string"}},
                "synthetic": {"type": "boolean"},
            },
        },
        "modalities": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "label"]},
        },
        "performance": {
            "type": "object",
            "required": ["n_test", "auroc", "brier", "baselines"],
            "properties": {"auroc": _ESTIMATE},
        },
        "calibration": {
            "type": "object",
            "properties": {
                name: _ESTIMATE for name in ("intercept", "slope", "observed_expected", "ici")
            },
        },
        "net_benefit": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["threshold", "model", "treat_all"],
                "properties": {"model": _ESTIMATE, "treat_all": {"type": ["number", "null"]}},
            },
        },
        "fairness": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["attributes", "status"],
                "properties": {
                    "attributes": {"type": "array", "items": {"type": "string"}},
                    "status": {"enum": ["audited", "not audited"]},
                    "groups_shown": {"type": "integer"},
                    "groups_suppressed": {"type": "integer"},
                    "flags": {"type": "array", "items": {"type": "object"}},
                    "reason": {"type": "string"},
                },
            },
        },
        "map_trust": {"type": ["object", "null"]},
        "limitations": {"type": "array", "items": {"type": "string"}},
        "disclosure": {
            "type": "object",
            "required": ["min_cell", "role"],
            "properties": {"min_cell": {"type": "integer"}, "role": {"type": "string"}},
        },
    },
}
"""JSON Schema (draft 2020-12) of the card; ``docs/model_card.md`` explains each field."""


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _estimate(row: Mapping[str, Any], name: str) -> dict[str, float | None]:
    return {
        "value": _number(row.get(name)),
        "low": _number(row.get(f"{name}_low")),
        "high": _number(row.get(f"{name}_high")),
    }


def _clean(value: Any) -> Any:
    """Registry params into JSON: NaN to None, numpy scalars to Python, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return _number(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fairness(
    service: RiskService,
    attribute_sets: Sequence[tuple[str, ...]],
    identity: Identity | None,
    min_cell: int,
) -> list[dict[str, Any]]:
    """Each attribute set's audit in brief: groups shown and suppressed, and the flags."""
    out = []
    for attributes in attribute_sets:
        entry: dict[str, Any] = {"attributes": list(attributes)}
        try:
            report = service.audit(attributes, identity=identity, min_cell=min_cell)
        except ValueError as err:  # every group suppressed, or an attribute the cohort lacks
            out.append({**entry, "status": "not audited", "reason": str(err)})
            continue
        suppressed = report.by_group["suppressed"].to_numpy(dtype=bool)
        flags = []
        for column in report.difference.columns:
            if not column.endswith("_flag"):
                continue
            metric = column.removesuffix("_flag")
            for group in report.difference.index[report.difference[column].fillna(False)]:
                row = report.difference.loc[group]
                flags.append(
                    {
                        "group": str(group),
                        "metric": metric,
                        "difference": _number(row.get(metric)),
                        "low": _number(row.get(f"{metric}_low")),
                        "high": _number(row.get(f"{metric}_high")),
                    }
                )
        out.append(
            {
                **entry,
                "status": "audited",
                "reference": report.reference,
                "threshold": report.threshold,
                "groups_shown": int((~suppressed).sum()),
                "groups_suppressed": int(suppressed.sum()),
                "flags": flags,
            }
        )
    return out


def _limitations(card: Mapping[str, Any]) -> list[str]:
    """Plain sentences derived from the card's own numbers (never hard-coded claims)."""
    notes = []
    data, performance = card["data"], card["performance"]
    if data.get("synthetic"):
        notes.append(
            "Trained and tested on a synthetic cohort: its figures say how the method behaves, "
            "not how the model would perform on real patients."
        )
    n_test = performance["n_test"]
    events = performance.get("n_test_events")
    if events is not None and min(events, n_test - events) < 100:
        notes.append(
            f"The test split holds {n_test} patients ({events} with the outcome): fewer than 100 "
            "of the rarer outcome, so every interval is wide."
        )
    slope = card["calibration"].get("slope", {})
    if slope.get("high") is not None and slope["high"] < 1:
        notes.append(
            "Calibration slope below 1 (95% CI excludes 1): risks are too extreme; high risks "
            "overstate and low risks understate the observed rate."
        )
    elif slope.get("low") is not None and slope["low"] > 1:
        notes.append("Calibration slope above 1 (95% CI excludes 1): risks are too moderate.")
    for entry in card["fairness"]:
        names = " x ".join(entry["attributes"])
        if entry["status"] != "audited":
            notes.append(f"Not audited by {names}: {entry['reason']}")
            continue
        if entry["groups_suppressed"]:
            notes.append(
                f"{entry['groups_suppressed']} group(s) by {names} are too small to report "
                f"(fewer than {card['disclosure']['min_cell']}); the model is unchecked there."
            )
        if entry["flags"]:
            groups = sorted({flag["group"] for flag in entry["flags"]})
            notes.append(f"Flagged differences by {names} for: {', '.join(groups)}.")
    useful = [row for row in card["net_benefit"] if row["beats_defaults"]]
    if not useful:
        notes.append(
            "At none of the reported thresholds is the model's net benefit above both treat-all "
            "and treat-none beyond its 95% band."
        )
    return notes


def build_model_card(
    service: RiskService,
    *,
    identity: Identity | None = None,
    attribute_sets: Sequence[tuple[str, ...]] | None = None,
    n_resamples: int = 200,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The model card of the active version as a JSON-ready dict (:data:`MODEL_CARD_SCHEMA`).

    Parameters
    ----------
    service : RiskService
        The active version.
    identity : Identity, optional
        The viewer; the suppression floor and a researcher's cut points apply (None: a trusted
        caller at the configured floor).
    attribute_sets : sequence of tuple of str, optional
        Audits summarised; default each attribute of
        :data:`fusion.evaluation.groups.AUDIT_ATTRIBUTES` alone.
    n_resamples : int, default=200
        Bootstrap resamples of every interval.
    created : datetime, optional
        Time stamp of the card (default now, UTC).
    """
    floor = service.min_cell_for(identity, None, view="model card")
    info = service.model_info()
    record = service.models.fusion_record
    training = dict(record.params.get("training_data", {}))
    build = service.build_params()
    performance = service.performance(min_cell=floor, identity=identity)
    fusion_row = performance.ablation.loc[ABLATION_LABELS["risk"]]
    usefulness = clinical_usefulness(
        service, identity=identity, min_cell=floor, n_resamples=n_resamples
    )
    frame = service.test_predictions()
    calibration_row: dict[str, Any] = (
        {str(k): v for k, v in usefulness.calibration.loc[ALL_PATIENTS].items()}
        if ALL_PATIENTS in usefulness.calibration.index
        else {}
    )
    decision = usefulness.decision.set_index("threshold")
    net_benefit = []
    for threshold in CARD_THRESHOLDS:
        if threshold not in decision.index:
            continue
        row = decision.loc[threshold]
        low = _number(row["low"])
        treat_all = _number(row["treat_all"])
        beats = low is not None and low > max(treat_all or 0.0, 0.0)
        net_benefit.append(
            {
                "threshold": threshold,
                "model": {
                    "value": _number(row["net_benefit"]),
                    "low": low,
                    "high": _number(row["high"]),
                },
                "treat_all": _number(row["treat_all"]),
                "beats_defaults": bool(beats),
            }
        )
    events = int(frame["label"].sum())
    card: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "model": {
            "version": info.version,
            "imaging_version": info.imaging_version,
            "created_at": info.created_at,
            "threshold": info.threshold,
            "threshold_rule": "Youden's J on the validation split",
            "n_inputs": info.n_features,
            "parts": sorted(str(part) for part in record.params.get(PLANNED_PARAM, [])),
            "build": _clean(build),
        },
        "intended_use": {
            "purpose": (
                "Decision support: a patient's risk of the cohort's outcome from imaging, "
                "EHR and genomic inputs, with the reasons (SHAP by modality) and where in the "
                "image (maps), for the clinician who treats the patient."
            ),
            "users": ["clinicians (one patient)", "researchers (aggregates, audited)"],
            "not_for": [
                "a diagnosis or a decision without a clinician",
                "patients unlike the training cohort (other sites, scanners or populations) "
                "before a local validation",
            ],
        },
        "data": {
            "sources": [str(s) for s in training.get("sources", [])],
            "n_patients": training.get("n_patients"),
            "n_scans": training.get("n_scans"),
            "splits": _clean(training.get("splits", {})),
            "import_batches": [str(b) for b in training.get("import_batches", [])],
            "fingerprint": str(training.get("fingerprint", "")),
            "synthetic": "synthetic" in training.get("sources", []),
        },
        "modalities": [
            {
                "name": name,
                "label": MODALITY_LABELS.get(name, name),
                "n_inputs": service.models.features.modalities.count(name),
            }
            for name in dict.fromkeys(service.models.features.modalities)
        ],
        "performance": {
            "n_test": performance.n,
            "n_test_events": events if min(events, performance.n - events) >= floor else None,
            "auroc": _estimate({str(k): v for k, v in fusion_row.items()}, "auroc"),
            "brier": _number(performance.brier),
            "ece": _number(performance.ece),
            "baselines": {str(k): _number(v) for k, v in info.baselines.items()},
        },
        "calibration": {
            name: _estimate(calibration_row, name)
            for name in ("intercept", "slope", "observed_expected", "ici")
        },
        "net_benefit": net_benefit,
        "fairness": _fairness(
            service,
            attribute_sets or [(name,) for name in AUDIT_ATTRIBUTES],
            identity,
            floor,
        ),
        "map_trust": _clean(record.metrics.get("map_trust")),
        "disclosure": {
            "min_cell": floor,
            "role": "admin" if identity is None else identity.role,
        },
    }
    card["limitations"] = _limitations(card)
    return card
