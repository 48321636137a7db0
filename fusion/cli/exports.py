"""Subcommands that write results out: export, audit, explain, forecast, audit-trail verify.

Output contract (stable; scripts rely on it): ``export predictions`` writes the CSV columns in
:data:`EXPORT_COLUMNS` (``in_sample`` is 1 on rows of the splits the fusion model was fitted on:
their risk is in-sample and inflates any metric over them), plus ``true_risk`` when the cohort
carries synthetic ground truth. Every export is recorded in the audit trail. Heavy modules are
imported inside each subcommand. Streamlit is never imported here (only the dashboard uses it).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fusion.cli.audit_entries import record_action
from fusion.cli.output import result
from fusion.settings import Settings

__all__ = [
    "EXPORT_COLUMNS",
    "audit",
    "explain",
    "export_predictions",
    "forecast",
    "in_sample_splits",
    "verify_trail",
]

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

logger = logging.getLogger("riskfusion")

EXPORT_COLUMNS = (
    "patient_id",
    "split",
    "sex",
    "age",
    "ethnicity",
    "site",
    "treatment",
    "label",
    "risk",
    "model_version",
    "in_sample",
)


def export_predictions(settings: Settings, out: Path) -> int:
    """Write the active model's predictions to the CSV ``out`` (complete or not at all)."""
    from fusion.reports.exports import write_safe_csv
    from fusion.service.cohort_words import cohort_words
    from fusion.service.facade import RiskService

    service = RiskService.from_settings(settings)
    with_truth = service.store.has_ground_truth()
    columns = [*EXPORT_COLUMNS, "true_risk"] if with_truth else list(EXPORT_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".partial")
    fitted = in_sample_splits(service)
    rows = in_sample = 0
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for chunk in service.iter_predictions():
            marked = chunk.assign(in_sample=chunk["split"].isin(fitted).astype(int))
            write_safe_csv(marked.loc[:, columns], handle, header=False)
            rows += len(chunk)
            in_sample += int(marked["in_sample"].sum())
    tmp.replace(out)  # the file appears complete or not at all
    outcome = cohort_words(service).outcome
    result("wrote %d predictions of '%s' to %s", rows, outcome.name, out)
    if in_sample:
        result(
            "%d rows (split %s) are in-sample: the model was fitted on them (in_sample = 1); "
            "measure AUROC or calibration on in_sample = 0 only",
            in_sample,
            "/".join(sorted(fitted)),
        )
    record_action(
        settings,
        "export",
        model_version=service.model_info().version,
        detail={"command": "export predictions", "rows": rows},
    )
    return 0


def in_sample_splits(service: RiskService) -> frozenset[str]:
    """The splits whose patients the active fusion model was fitted on (their risk is in-sample).

    ``params["fitted_on_splits"]`` of the fusion version when training records it, else the
    training split.
    """
    fitted = service.models.fusion_record.params.get("fitted_on_splits", ["train"])
    return frozenset(str(split) for split in fitted)


def audit(settings: Settings, args: argparse.Namespace) -> int:
    """Write the bias audit of the active model (``--out`` report.html or metrics.csv)."""
    from datetime import UTC, datetime

    from fusion.admin.access import Identity
    from fusion.evaluation.flags import AuditOptions
    from fusion.evaluation.groups import parse_bins
    from fusion.reports.audit_report import (
        audit_csv,
        audit_figures,
        audit_html,
        comparisons_csv,
        demo_bias_note,
    )
    from fusion.reports.usefulness_figures import usefulness_figures, usefulness_tables
    from fusion.service import cohort
    from fusion.service.facade import RiskService
    from fusion.service.usefulness import clinical_usefulness

    suffix = args.out.suffix.lower()
    if suffix not in (".html", ".csv"):
        raise ValueError(f"--out {args.out} must end in .html (report) or .csv (metrics table).")
    options = AuditOptions(
        method=args.method,
        alpha=args.alpha,
        margin=args.margin,
        age_cuts=parse_bins(args.bins).get("age"),
    )
    service = RiskService.from_settings(settings)
    by = [name.strip() for name in args.by.split(",") if name.strip()]
    # The CLI is admin (it holds the database): it may lower the floor, and that is audited.
    operator = Identity(user=f"cli:{getpass.getuser()}", role="admin", source="local")
    report = service.audit(
        by,
        threshold=args.threshold,
        reference=args.reference,
        min_cell=args.min_cell,
        n_resamples=args.resamples,
        identity=operator,
        options=options,
    )
    usefulness = clinical_usefulness(
        service, by, identity=operator, min_cell=report.min_cell, n_resamples=args.resamples
    )
    extra: dict[Path, str] = {}
    if suffix == ".csv":
        text = audit_csv(report)
        extra = {
            args.out.with_name(f"{args.out.stem}-{name}.csv"): table
            for name, table in usefulness_tables(usefulness).items()
        }
    else:
        version = service.model_info().version
        # The report's floor and threshold are already resolved for the operator.
        roc, calibration = cohort.curves_by_group(
            service.test_predictions(options),
            report.attributes,
            min_cell=report.min_cell,
            threshold=report.threshold,
        )
        note = demo_bias_note(service.build_params())
        text = audit_html(
            report,
            model_version=version,
            created=datetime.now(UTC),
            figures={
                **audit_figures(report, roc_by_group=roc, calibration_by_group=calibration),
                **usefulness_figures(usefulness),
            },
            context=None if note is None else {"cohort": note},
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    written = [str(args.out)]
    for path, table in extra.items():
        path.write_text(table, encoding="utf-8")
        written.append(str(path))
    if args.comparisons is not None:
        args.comparisons.parent.mkdir(parents=True, exist_ok=True)
        args.comparisons.write_text(comparisons_csv(report), encoding="utf-8")
        written.append(str(args.comparisons))
    record_action(
        settings,
        "export",
        model_version=service.model_info().version,
        detail={"command": "audit", "by": by, "format": suffix.lstrip(".")},
    )
    hidden = int(report.by_group["suppressed"].sum())
    if report.nothing_compared is not None:
        logger.warning(report.nothing_compared)
        result(
            "audited %d groups (%d suppressed); nothing compared; wrote %s",
            len(report.by_group),
            hidden,
            ", ".join(written),
        )
        return 0
    result(
        "audited %d groups (%d suppressed): %d of %d comparisons flagged (%s-adjusted, alpha "
        "%g); wrote %s",
        len(report.by_group),
        hidden,
        report.n_flagged,
        report.n_comparisons,
        "Holm" if report.method == "holm" else "Benjamini-Hochberg",
        report.alpha,
        ", ".join(written),
    )
    return 0


def explain(settings: Settings, args: argparse.Namespace) -> int:
    """Write one patient's explanation files (JSON, maps) into ``args.out``."""
    from data.cohort_import.checks import normalise_id
    from fusion.reports.explanation_files import write_explanation
    from fusion.service.facade import RiskService

    service = RiskService.from_settings(settings)
    patient_id = normalise_id(args.patient_id)  # as imported (and as the dashboard searches)
    files = write_explanation(service, patient_id, args.out)
    result("wrote %d files to %s", len(files), args.out)
    record_action(
        settings,
        "export",
        patient_id=patient_id,
        model_version=service.model_info().version,
        detail={"command": "explain"},
    )
    return 0


def forecast(settings: Settings, args: argparse.Namespace) -> int:
    """Write one patient's risk over time under each treatment as JSON to ``args.out``."""
    from data.cohort_import.checks import normalise_id
    from fusion.forecast.patient import write_forecast_json
    from fusion.service.facade import RiskService

    service = RiskService.from_settings(settings)
    patient_id = normalise_id(args.patient_id)  # as imported (and as the dashboard searches)
    write_forecast_json(service.forecast(patient_id), args.out)
    result("wrote the treatment forecast to %s", args.out)
    record_action(
        settings,
        "export",
        patient_id=patient_id,
        model_version=service.model_info().version,
        detail={"command": "forecast"},
    )
    return 0


def verify_trail(settings: Settings, expect: str | None) -> int:
    """Check the audit trail's hash chain; 0 when intact, 1 naming the first bad event."""
    from data.store import CohortStore, make_engine

    anchor: tuple[int, str] | None = None
    if expect is not None:
        event_id, _, digest = expect.partition(":")
        if not event_id.isdigit() or len(digest) != 64:
            raise ValueError(
                f"--expect {expect!r} is not ID:HASH; pass the head an earlier "
                "`riskfusion audit-trail verify` printed, e.g. 42:3f5a... (64 hex digits)."
            )
        anchor = (int(event_id), digest.lower())
    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()  # also seals the events of a store made before the hash chain
        check = store.verify_audit_chain(expect=anchor)
    finally:
        store.engine.dispose()
    if not check.ok:
        logger.error("audit trail NOT intact: %s", check.problem)
        logger.error("%d events before it check out", check.events)
        return 1
    result("audit trail intact: %d events", check.events)
    if check.head_id is not None:
        result(
            "head %d:%s (keep it elsewhere; verify --expect it later)",
            check.head_id,
            check.head_hash,
        )
    return 0
