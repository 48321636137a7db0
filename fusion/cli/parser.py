"""The ``riskfusion`` argument parser: every subcommand, its options and their help.

Owns the command-line surface only; the subcommands live in the sibling modules. Must not import
torch, MONAI, LightGBM, SHAP or the store, so that ``riskfusion --help`` starts fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fusion.admin.access import ROLES

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``riskfusion`` parser; ``parse_args`` leaves the subcommand in ``command``."""
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
    audit.add_argument(
        "--method",
        choices=("holm", "bh"),
        default="holm",
        help="flag adjustment across every comparison: holm (default: chance of any false flag "
        "<= alpha) or bh (Benjamini-Hochberg: false discovery rate <= alpha)",
    )
    audit.add_argument("--alpha", type=float, default=0.05, help="flag level and CI (0.05)")
    audit.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="smallest difference that matters (0.05): a group that could miss it reads "
        "'insufficient evidence'",
    )
    audit.add_argument(
        "--bins",
        action="append",
        default=[],
        metavar="age=CUT,CUT,...",
        help="age bands for this audit, e.g. age=40,60,75 (<40, 40-59, 60-74, 75+); default: "
        "the cohort's schema.toml [audit] age_bands, else 50,65,75",
    )
    audit.add_argument("--out", type=Path, required=True, help="report.html or metrics.csv")
    audit.add_argument(
        "--comparisons",
        type=Path,
        default=None,
        help="also write the compact table (one row per tested difference, flags first) as CSV",
    )

    report = sub.add_parser(
        "report", help="model card of the active model: JSON, readable HTML or PDF"
    )
    report.add_argument("--out", type=Path, required=True, help="card.json, card.html or card.pdf")
    report.add_argument(
        "--role",
        choices=("researcher", "admin"),
        default="researcher",
        help="whose view: researcher (default; small cells suppressed) or admin",
    )
    report.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (200)")

    explain = sub.add_parser("explain", help="write one patient's explanation files (JSON, maps)")
    explain.add_argument("patient_id", help="a stored patient id (any case, as imported)")
    explain.add_argument("--out", type=Path, required=True, help="folder to write into")

    forecast = sub.add_parser(
        "forecast", help="one patient's risk over time under each treatment (JSON)"
    )
    forecast.add_argument("patient_id", help="a stored patient id (any case, as imported)")
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
    activate.add_argument(
        "version",
        nargs="?",
        default=None,
        help="a fusion version, e.g. fusion-20261129-153326-059402 (with --baseline: whose "
        "baseline to serve; default the active version)",
    )
    activate.add_argument(
        "--baseline",
        choices=["logistic"],
        default=None,
        help="serve the version's logistic regression baseline instead of its fused model",
    )

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
    bench.add_argument(
        "--scale",
        type=int,
        default=0,
        metavar="N",
        help="time every page and batch path on a store replicated to N patients "
        "(base: --scale-base HOME, or a 2,000-patient demo built now)",
    )
    bench.add_argument("--scale-base", type=Path, default=None, help=argparse.SUPPRESS)
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
