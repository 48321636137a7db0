"""The ``riskfusion`` command line: thin subcommands over the pipeline and service use cases.

Owns argument parsing, logging setup and exit codes (``main(argv) -> int``). ``serve`` starts
Streamlit on ``app.py`` as a subprocess; this module never imports streamlit. Heavy modules
(torch, MONAI, LightGBM, SHAP, the store) are imported inside the subcommands, so that
``riskfusion --help`` starts fast.

Output contract (stable; scripts rely on it): ``export predictions`` writes the CSV columns in
:data:`EXPORT_COLUMNS`, plus ``true_risk`` when the cohort carries synthetic ground truth.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fusion.admin.access import ROLES
from fusion.settings import Settings

if TYPE_CHECKING:
    from data.store import AuditEntry, CohortStore
    from fusion.training.train import EventSink

__all__ = ["EXPORT_COLUMNS", "main"]

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
)
APP_PATH = Path(__file__).resolve().parents[1] / "app.py"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskfusion",
        description="Multimodal patient risk: build the demo, serve the dashboard, export.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the synthetic demo if needed, then serve it")
    demo.add_argument("--patients", type=int, default=None, help="cohort size (default 2000)")
    demo.add_argument("--seed", type=int, default=None, help="cohort and model seed (default 0)")
    demo.add_argument("--image-size", type=int, default=128, help="scan side in pixels")
    demo.add_argument("--epochs", type=int, default=None, help="imaging epochs")
    demo.add_argument("--no-serve", action="store_true", help="build only, do not serve")
    demo.add_argument(
        "--no-bias",
        dest="bias",
        action="store_false",
        default=None,
        help="build the unbiased world (default: inject the demo bias of docs/data.md)",
    )
    demo.add_argument("--rebuild", action="store_true", help="delete the built demo first")
    _serve_arguments(demo)

    serve = sub.add_parser("serve", help="serve the dashboard on a built store")
    _serve_arguments(serve)

    export = sub.add_parser("export", help="export stored results")
    export_sub = export.add_subparsers(dest="what", required=True)
    predictions = export_sub.add_parser("predictions", help="predictions of the active model")
    predictions.add_argument("--out", type=Path, required=True, help="CSV file to write")

    audit = sub.add_parser("audit", help="bias audit of the active model on the test split")
    audit.add_argument(
        "--by", required=True, help="1-3 comma-separated attributes: sex,age_band,ethnicity,site"
    )
    audit.add_argument("--threshold", type=float, default=None, help="default: the model's")
    audit.add_argument("--reference", default=None, help="reference group (default: largest)")
    audit.add_argument(
        "--min-cell",
        type=int,
        default=None,
        help="smallest count shown (default RISKFUSION_MIN_CELL, 11; lowering it is audited)",
    )
    audit.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (200)")
    audit.add_argument("--out", type=Path, required=True, help="report.html or metrics.csv")

    explain = sub.add_parser("explain", help="write one patient's explanation files (JSON, maps)")
    explain.add_argument("patient_id", help="a stored patient id, e.g. P00001")
    explain.add_argument("--out", type=Path, required=True, help="folder to write into")

    forecast = sub.add_parser(
        "forecast", help="one patient's risk over time under each treatment (JSON)"
    )
    forecast.add_argument("patient_id", help="a stored patient id, e.g. P0000001")
    forecast.add_argument("--out", type=Path, required=True, help="JSON file to write")

    cohort = sub.add_parser(
        "import", help="validate a cohort folder and import it (docs/import.md)"
    )
    cohort.add_argument("directory", type=Path, help="cohort folder (patients, outcomes, ...)")
    cohort.add_argument("--schema", type=Path, default=None, help="default: DIR/schema.toml")
    cohort.add_argument("--dry-run", action="store_true", help="validate only, write nothing")
    cohort.add_argument("--report", type=Path, default=None, help="write the problems as CSV")
    cohort.add_argument(
        "--summary", type=Path, default=None, help="write the validation's counts as JSON"
    )
    cohort.add_argument(
        "--id-salt-file", type=Path, default=None, help="salt of hashed ids (hash_ids = true)"
    )
    _events_argument(cohort)

    train = sub.add_parser(
        "train", help="train imaging + fusion on the stored cohort, score it, activate it"
    )
    train.add_argument("--epochs", type=int, default=None, help="imaging epochs")
    train.add_argument("--seed", type=int, default=0, help="seed of folds and models (0)")
    train.add_argument("--folds", type=int, default=2, help="cross-fitting folds (2)")
    _events_argument(train)

    activate = sub.add_parser(
        "activate", help="make a registered fusion version (and its imaging nets) active again"
    )
    activate.add_argument("version", help="a fusion version, e.g. fusion-20261129-153326-059402")

    sub.add_parser(
        "versions", help="list the complete fusion versions (the ones `activate` accepts)"
    )

    score = sub.add_parser(
        "score", help="score the patients the active model has not scored (new or updated)"
    )
    _events_argument(score)

    trail = sub.add_parser("audit-trail", help="check the audit trail's hash chain")
    trail_sub = trail.add_subparsers(dest="what", required=True)
    verify = trail_sub.add_parser(
        "verify", help="recompute every event's hash; exit 1 naming the first bad event"
    )
    verify.add_argument(
        "--expect",
        default=None,
        metavar="ID:HASH",
        help="a head printed by an earlier verify: it must still be in the chain",
    )

    roles = sub.add_parser(
        "db-roles",
        help="PostgreSQL: create an owner role and a least-privilege app role (run as admin)",
    )
    roles.add_argument("--owner-role", default="riskfusion_owner", help="owns the tables")
    roles.add_argument("--app-role", default="riskfusion_app", help="what the app logs in as")
    roles.add_argument(
        "--app-password-file", type=Path, default=None, help="file holding the app's password"
    )

    bench = sub.add_parser("bench", help="measure build time, AUROCs and per-patient latency")
    bench.add_argument("--patients", type=int, default=2000)
    bench.add_argument("--out", type=Path, default=None, help="JSON file (default artifacts/)")
    bench.add_argument(
        "--import-patients", type=int, default=10_000, help="timed import size (0 skips)"
    )
    bench.add_argument(
        "--validation-mb",
        type=float,
        default=250.0,
        help="size of the generated patients.csv whose validation memory is measured (0 skips)",
    )
    bench.add_argument(
        "--only-validation", action="store_true", help="measure only the validation memory"
    )
    return parser


def _events_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events",
        type=Path,
        default=None,
        help="append one JSON line per stage event to this file (the Data page reads it)",
    )
    parser.add_argument(
        "--actor",
        default=None,
        help="who the audit trail names (default cli:<os user>; the Data page passes the user)",
    )
    parser.add_argument(
        "--role", default="admin", choices=ROLES, help="the actor's role (default admin)"
    )


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="bind address; only loopback is allowed until sign-in is configured",
    )


def _serve(settings: Settings, port: int, address: str) -> int:
    from data.store import CohortStore, make_engine
    from fusion.admin.access import auth_configured, check_bind_address, read_secrets
    from fusion.training.demo_build import built_config

    check_bind_address(address, sign_in=auth_configured(read_secrets(settings.secrets_file)))
    store = CohortStore(make_engine(settings.database_url))
    if built_config(store) is None:
        logger.error("Nothing is built yet; run `riskfusion demo` first.")
        return 2
    logger.info("serving the dashboard on http://%s:%d (Ctrl+C to stop)", address, port)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return _run_child(command)


STOP_GRACE_S = 10.0
"""Seconds a stopped server's Streamlit child gets to exit before it is killed."""


def _run_child(command: Sequence[str]) -> int:
    """Run ``command``, forwarding SIGTERM and SIGINT to it, and exit with it.

    A stopped ``riskfusion serve`` (service manager, ``kill``, Ctrl+C) must not leave its
    Streamlit child holding the port: the signal is passed on, the child gets
    :data:`STOP_GRACE_S` seconds to exit and is then killed. Returns the child's exit status
    (``128 + signal`` when a signal ended it, as a shell reports it).
    """
    child = subprocess.Popen(command)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    stops = (signal.SIGTERM, signal.SIGINT)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {stop: signal.signal(stop, forward) for stop in stops} if main_thread else {}
    kill_at: float | None = None
    try:
        while True:
            try:  # short waits: a blocking wait would not notice the grace period running out
                status = child.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if received and kill_at is None:
                    kill_at = time.monotonic() + STOP_GRACE_S
                if kill_at is not None and time.monotonic() > kill_at:
                    logger.warning("the server did not stop in %.0f s; killing it", STOP_GRACE_S)
                    child.kill()
                    kill_at = float("inf")
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
        if child.poll() is None:  # an unexpected error in this process: do not orphan it
            child.kill()
            child.wait()
    if received:
        logger.info("stopped (signal %d); the dashboard is no longer served", received[0])
    return 128 - status if status < 0 else status


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from data.store import CohortStore, make_engine
    from fusion.admin.access import auth_configured, check_bind_address, read_secrets
    from fusion.training.demo_build import BuildConfig, build_demo, built_config, reset_store
    from models.train import TrainConfig

    config = BuildConfig(
        n_patients=args.patients or settings.demo_patients,
        seed=settings.demo_seed if args.seed is None else args.seed,
        image_size=args.image_size,
        imaging=replace(TrainConfig(), epochs=_epochs(args)),
        bias=settings.demo_bias if args.bias is None else args.bias,
    )
    if not args.no_serve:  # refuse a sign-in configuration that cannot serve before building
        check_bind_address(
            args.address, sign_in=auth_configured(read_secrets(settings.secrets_file))
        )
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    store = CohortStore(make_engine(settings.database_url))
    imported = [s for s in _sources(store) if s != "synthetic"]
    if imported:  # never delete someone's imported cohort to make room for the demo
        logger.error(
            "The store at %s holds an imported cohort (%s); `riskfusion demo` builds the "
            "synthetic demo in a store of its own. Set RISKFUSION_HOME (or "
            "RISKFUSION_DATABASE_URL) to another location for the demo, or use `riskfusion "
            "train` and `riskfusion serve` on this cohort.",
            settings.artifacts_dir,
            ", ".join(imported),
        )
        return 2
    built = built_config(store)
    if args.rebuild or (built is None and _has_patients(store)):
        logger.info("removing the previous (or unfinished) demo build")
        store.engine.dispose()
        reset_store(settings)
        built = None
    if built == config.identity():
        logger.info("demo already built (%s); reusing it", built)
    elif built is not None:
        logger.error(
            "The store holds a demo built with %s, not %s; add --rebuild to replace it.",
            built,
            config.identity(),
        )
        return 2
    else:
        start = time.perf_counter()
        summary = build_demo(
            settings,
            config,
            report=logger.info,
            audit=_cli_entry("train", detail={"command": "demo", "build": config.identity()}),
        )
        logger.info("build finished in %.1f s", time.perf_counter() - start)
        for name, estimate in summary.test_auroc.items():
            logger.info(
                "  test AUROC %-9s %.3f (95%% CI %.3f-%.3f)",
                name,
                estimate["auroc"],
                estimate["low"],
                estimate["high"],
            )
        logger.info("  oracle AUROC by modality (test): %s", _fmt(summary.oracle_auroc_test))
        logger.info("  summary: %s", settings.artifacts_dir / "build_summary.json")
    if args.no_serve:
        return 0
    return _serve(settings, args.port, args.address)


def _epochs(args: argparse.Namespace) -> int:
    """The ``--epochs`` given, else the imaging default (read here so ``--help`` needs no torch)."""
    from models.train import TrainConfig

    return TrainConfig().epochs if args.epochs is None else int(args.epochs)


def _cli_entry(
    action: str, *, detail: dict[str, object], args: argparse.Namespace | None = None
) -> AuditEntry:
    """An audit entry of the command's user: ``--actor``/``--role``, else ``cli:<os user>``."""
    from data.store import AuditEntry

    actor = getattr(args, "actor", None) or f"cli:{getpass.getuser()}"
    role = getattr(args, "role", None) or "admin"
    return AuditEntry(actor=actor, role=role, action=action, detail=detail)


def _train(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    from data.store import CohortStore, make_engine
    from fusion.training.demo_build import built_config
    from fusion.training.train import TRAIN_STAGES, Stages, TrainingConfig, train_cohort
    from models.train import TrainConfig

    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()
        config = TrainingConfig(
            seed=args.seed,
            folds=args.folds,
            imaging=replace(TrainConfig(random_state=args.seed), epochs=_epochs(args)),
        )
        start = time.perf_counter()
        summary = train_cohort(
            store,
            settings.artifacts_dir,
            config,
            build=built_config(store),  # a retrained demo stays the same demo
            stages=Stages(TRAIN_STAGES, logger.info, sink),
            audit=_cli_entry(
                "train", detail={"command": "train", "epochs": _epochs(args)}, args=args
            ),
        )
    finally:
        store.engine.dispose()
    logger.info(
        "trained and activated %s in %.1f s on %d patients (data fingerprint %s...)",
        summary.fusion_version,
        time.perf_counter() - start,
        summary.n_patients,
        summary.training_data["fingerprint"][:12],
    )
    for name, estimate in summary.test_auroc.items():
        logger.info(
            "  test AUROC %-12s %.3f (95%% CI %.3f-%.3f)",
            name,
            estimate["auroc"],
            estimate["low"],
            estimate["high"],
        )
    return 0


def _score(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    from data.store import CohortStore, make_engine
    from fusion.training import train

    store = CohortStore(make_engine(settings.database_url))
    try:
        result = train.score_cohort(
            store,
            settings.artifacts_dir,
            stages=train.Stages(train.SCORE_STAGES, logger.info, sink),
            audit=_cli_entry("score", detail={"command": "score"}, args=args),
        )
    finally:
        store.engine.dispose()
    logger.info(
        "scored %d patients under %s in %.1f s",
        result["scored"],
        result["model_version"],
        result["seconds"],
    )
    return 0


def _activate(settings: Settings, version: str) -> int:
    from data.store import CohortStore, make_engine
    from fusion.training.train import activate_version

    store = CohortStore(make_engine(settings.database_url))
    try:
        activate_version(
            store,
            settings.artifacts_dir,
            version,
            audit=_cli_entry("activate_model", detail={"command": "activate"}),
        )
    except KeyError as err:
        raise ValueError(err.args[0]) from err
    finally:
        store.engine.dispose()
    logger.info("activated %s; `riskfusion score` scores patients it has not scored", version)
    return 0


def _versions(settings: Settings) -> int:
    """Log the complete fusion versions, newest first (each checked file by file)."""
    from data.store import CohortStore, make_engine
    from fusion.training.versions import complete_fusion_versions

    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()
        records = {record.version: record for record in store.list_models("fusion")}
        complete = complete_fusion_versions(store, settings.artifacts_dir)
    finally:
        store.engine.dispose()
    for version in complete:
        record = records[version]
        logger.info(
            "%s  %s  test AUROC %.3f%s",
            version,
            record.created_at.isoformat(timespec="seconds"),
            float(record.metrics.get("test_auroc", float("nan"))),
            "  (active)" if record.is_active else "",
        )
    hidden = len(records) - len(complete)
    logger.info(
        "%d complete fusion version(s)%s",
        len(complete),
        f"; {hidden} unfinished or damaged version(s) not listed" if hidden else "",
    )
    return 0


def _import(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    from fusion.admin.cohort_import import run_import
    from fusion.training.train import Stages

    with Stages(1, logger.info, sink).stage("import", str(args.directory)):
        return run_import(
            settings,
            args.directory,
            schema=args.schema,
            dry_run=args.dry_run,
            report_path=args.report,
            summary_path=args.summary,
            id_salt_file=args.id_salt_file,
            audit=_cli_entry("import", detail={"command": "import"}, args=args),
        )


def _record(
    settings: Settings,
    action: str,
    *,
    patient_id: str | None = None,
    model_version: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    """Append a command's action to the audit trail as ``cli:<os user>`` (the CLI is admin)."""
    from data.store import AuditEntry, CohortStore, make_engine

    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()
        store.record_event(
            AuditEntry(
                actor=f"cli:{getpass.getuser()}",
                role="admin",
                action=action,
                patient_id=patient_id,
                model_version=model_version,
                detail=detail or {},
            )
        )
    finally:
        store.engine.dispose()


def _sources(store: CohortStore) -> list[str]:
    store.create_schema()
    return store.cohort_sources()


def _has_patients(store: CohortStore) -> bool:
    store.create_schema()
    return store.count_patients() > 0


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def _export_predictions(settings: Settings, out: Path) -> int:
    from fusion.reports.exports import write_safe_csv
    from fusion.service.facade import RiskService

    service = RiskService.from_settings(settings)
    with_truth = service.store.has_ground_truth()
    columns = [*EXPORT_COLUMNS, "true_risk"] if with_truth else list(EXPORT_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".partial")
    rows = 0
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for chunk in service.iter_predictions():
            write_safe_csv(chunk.loc[:, columns], handle, header=False)
            rows += len(chunk)
    tmp.replace(out)  # the file appears complete or not at all
    logger.info("wrote %d predictions to %s", rows, out)
    _record(
        settings,
        "export",
        model_version=service.model_info().version,
        detail={"command": "export predictions", "rows": rows},
    )
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from fusion.admin.access import Identity
    from fusion.reports.audit_report import audit_csv, audit_figures, audit_html, demo_bias_note
    from fusion.service.facade import RiskService

    suffix = args.out.suffix.lower()
    if suffix not in (".html", ".csv"):
        raise ValueError(f"--out {args.out} must end in .html (report) or .csv (metrics table).")
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
    )
    if suffix == ".csv":
        text = audit_csv(report)
    else:
        version = service.model_info().version
        roc, calibration = service.group_curves(
            by, min_cell=report.min_cell, threshold=report.threshold, identity=operator
        )
        note = demo_bias_note(service.build_params())
        text = audit_html(
            report,
            model_version=version,
            created=datetime.now(UTC),
            figures=audit_figures(report, roc_by_group=roc, calibration_by_group=calibration),
            context=None if note is None else {"cohort": note},
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    _record(
        settings,
        "export",
        model_version=service.model_info().version,
        detail={"command": "audit", "by": by, "format": suffix.lstrip(".")},
    )
    flagged = int(report.difference.filter(like="_flag").any(axis=1).sum())
    logger.info(
        "audited %d groups (%d suppressed, %d with a flagged disparity); wrote %s",
        len(report.by_group),
        int(report.by_group["suppressed"].sum()),
        flagged,
        args.out,
    )
    return 0


def _verify_trail(settings: Settings, expect: str | None) -> int:
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
    logger.info("audit trail intact: %d events", check.events)
    if check.head_id is not None:
        logger.info(
            "head %d:%s (keep it elsewhere; verify --expect it later)",
            check.head_id,
            check.head_hash,
        )
    return 0


def _db_roles(settings: Settings, args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riskfusion`` command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = _parser().parse_args(argv)
    events: Path | None = getattr(args, "events", None)
    if events is None:
        return _run(args)
    from fusion.training.train import StageEvent, append_event

    events.parent.mkdir(parents=True, exist_ok=True)
    try:
        status = _run(args, partial(append_event, events))
    except BaseException as err:
        append_event(events, StageEvent("job", 0, 0, "failed", f"{type(err).__name__}: {err}"))
        raise
    detail = "finished" if status == 0 else f"exit status {status}; see the log"
    append_event(events, StageEvent("job", 0, 0, "done" if status == 0 else "failed", detail))
    return status


def _run(args: argparse.Namespace, sink: EventSink | None = None) -> int:
    """Dispatch one parsed command; known errors become exit status 2 with a logged message."""
    from data.errors import CohortError
    from fusion.training.train import StageEvent

    try:
        settings = Settings.from_env()
        if args.command == "import":
            return _import(settings, args, sink)
        if args.command == "train":
            return _train(settings, args, sink)
        if args.command == "score":
            return _score(settings, args, sink)
        if args.command == "activate":
            return _activate(settings, args.version)
        if args.command == "versions":
            return _versions(settings)
        if args.command == "demo":
            return _demo(args, settings)
        if args.command == "serve":
            return _serve(settings, args.port, args.address)
        if args.command == "export":
            return _export_predictions(settings, args.out)
        if args.command == "audit":
            return _audit(settings, args)
        if args.command == "explain":
            from fusion.reports.explanation_files import write_explanation
            from fusion.service.facade import RiskService

            service = RiskService.from_settings(settings)
            files = write_explanation(service, args.patient_id, args.out)
            logger.info("wrote %d files to %s", len(files), args.out)
            _record(
                settings,
                "export",
                patient_id=args.patient_id,
                model_version=service.model_info().version,
                detail={"command": "explain"},
            )
            return 0
        if args.command == "forecast":
            from fusion.forecast.hazard import write_forecast_json
            from fusion.service.facade import RiskService

            service = RiskService.from_settings(settings)
            write_forecast_json(service.forecast(args.patient_id), args.out)
            logger.info("wrote the treatment forecast to %s", args.out)
            _record(
                settings,
                "export",
                patient_id=args.patient_id,
                model_version=service.model_info().version,
                detail={"command": "forecast"},
            )
            return 0
        if args.command == "audit-trail":
            return _verify_trail(settings, args.expect)
        if args.command == "db-roles":
            return _db_roles(settings, args)
        if args.command == "bench":
            from fusion.training.bench import run_bench

            return run_bench(
                settings,
                n_patients=args.patients,
                out=args.out,
                import_patients=args.import_patients,
                validation_mb=args.validation_mb,
                only_validation=args.only_validation,
            )
    except (CohortError, ValueError) as err:
        logger.error("error: %s", err)
        if sink is not None:
            sink(StageEvent("job", 0, 0, "failed", str(err)))
        return 2
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
