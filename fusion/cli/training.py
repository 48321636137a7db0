"""Subcommands ``train``, ``score``, ``activate`` and ``versions`` over the stored cohort.

Thin wrappers around :mod:`fusion.training`; heavy modules are imported inside each subcommand.
Must not import streamlit.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from fusion.cli.audit_entries import cli_entry
from fusion.cli.output import result
from fusion.settings import Settings

if TYPE_CHECKING:
    from fusion.training.stages import EventSink

__all__ = ["activate", "imaging_epochs", "score", "train", "versions"]

logger = logging.getLogger("riskfusion")


def imaging_epochs(args: argparse.Namespace) -> int:
    """The ``--epochs`` given, else the imaging default (read here so ``--help`` needs no torch)."""
    from models.train import TrainConfig

    return TrainConfig().epochs if args.epochs is None else int(args.epochs)


def train(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    """Train imaging and fusion on the stored cohort, score it and activate it."""
    from data.store import CohortStore, make_engine
    from fusion.training.demo_build import built_config
    from fusion.training.stages import TRAIN_STAGES, Stages
    from fusion.training.train import TrainingConfig, train_cohort
    from models.train import TrainConfig

    store = CohortStore(make_engine(settings.database_url))
    try:
        store.create_schema()
        config = TrainingConfig(
            seed=args.seed,
            folds=args.folds,
            imaging=replace(TrainConfig(random_state=args.seed), epochs=imaging_epochs(args)),
        )
        start = time.perf_counter()
        summary = train_cohort(
            store,
            settings.artifacts_dir,
            config,
            build=built_config(store),  # a retrained demo stays the same demo
            stages=Stages(TRAIN_STAGES, logger.info, sink),
            audit=cli_entry(
                "train", detail={"command": "train", "epochs": imaging_epochs(args)}, args=args
            ),
        )
    finally:
        store.engine.dispose()
    result(
        "trained and activated %s in %.1f s on %d patients (data fingerprint %s...)",
        summary.fusion_version,
        time.perf_counter() - start,
        summary.n_patients,
        summary.training_data["fingerprint"][:12],
    )
    for name, estimate in summary.test_auroc.items():
        result(
            "  test AUROC %-12s %.3f (95%% CI %.3f-%.3f)",
            name,
            estimate["auroc"],
            estimate["low"],
            estimate["high"],
        )
    if summary.comparison is not None:
        result("%s", summary.comparison.describe())
    return 0


def score(settings: Settings, args: argparse.Namespace, sink: EventSink | None) -> int:
    """Score the patients the active model has not scored (new or updated)."""
    import fusion.training.score  # called through the module: tests replace score_cohort
    from data.store import CohortStore, make_engine
    from fusion.training.stages import SCORE_STAGES, Stages

    store = CohortStore(make_engine(settings.database_url))
    try:
        scored = fusion.training.score.score_cohort(
            store,
            settings.artifacts_dir,
            stages=Stages(SCORE_STAGES, logger.info, sink),
            audit=cli_entry("score", detail={"command": "score"}, args=args),
            min_cell=settings.min_cell,
        )
    finally:
        store.engine.dispose()
    result(
        "scored %d patients under %s in %.1f s",
        scored["scored"],
        scored["model_version"],
        scored["seconds"],
    )
    return 0


def activate(settings: Settings, version: str | None, *, baseline: str | None = None) -> int:
    """Make a registered fusion version active again, or serve its logistic baseline."""
    from data.store import CohortStore, make_engine
    from fusion.training.baseline_activation import activate_baseline
    from fusion.training.versions import activate_version

    if version is None and baseline is None:
        raise ValueError(
            "Name a fusion version to activate (`riskfusion versions` lists them), or pass "
            "--baseline logistic to serve the active version's logistic baseline."
        )
    store = CohortStore(make_engine(settings.database_url))
    detail: dict[str, object] = {"command": "activate"}
    if baseline is not None:
        detail["baseline"] = baseline
    try:
        if baseline is None and version is not None:
            activate_version(
                store,
                settings.artifacts_dir,
                version,
                audit=cli_entry("activate_model", detail=detail),
            )
        else:
            version = activate_baseline(
                store,
                settings.artifacts_dir,
                baseline or "logistic",
                fusion_version=version,
                audit=cli_entry("activate_model", detail=detail),
            )
    except KeyError as err:
        raise ValueError(err.args[0]) from err
    finally:
        store.engine.dispose()
    result("activated %s; `riskfusion score` scores patients it has not scored", version)
    return 0


def versions(settings: Settings) -> int:
    """List the complete fusion versions, newest first (each checked file by file)."""
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
        served = record.params.get("served_from")
        result(
            "%s  %s  test AUROC %.3f%s%s",
            version,
            record.created_at.isoformat(timespec="seconds"),
            float(record.metrics.get("test_auroc", float("nan"))),
            f"  (serves the {served['baseline']} baseline of {served['fusion_version']})"
            if isinstance(served, dict)
            else "",
            "  (active)" if record.is_active else "",
        )
    hidden = len(records) - len(complete)
    result(
        "%d complete fusion version(s)%s",
        len(complete),
        f"; {hidden} unfinished or damaged version(s) not listed" if hidden else "",
    )
    return 0
