"""Subcommands ``serve``, ``demo`` and ``bench``: build the demo, serve the dashboard, measure.

``serve`` starts Streamlit on ``app.py`` as a child process and forwards stop signals to it; this
module never imports streamlit. Heavy modules are imported inside each subcommand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from fusion.cli.audit_entries import cli_entry
from fusion.cli.training import imaging_epochs
from fusion.settings import Settings

if TYPE_CHECKING:
    from data.store import CohortStore

__all__ = ["STOP_GRACE_S", "bench", "demo", "run_child", "serve"]

logger = logging.getLogger("riskfusion")

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"


def serve(settings: Settings, port: int, address: str) -> int:
    """Serve the dashboard on a built store (exit 2 when nothing is built)."""
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
    return run_child(command)


STOP_GRACE_S = 10.0
"""Seconds a stopped server's Streamlit child gets to exit before it is killed."""


def run_child(command: Sequence[str]) -> int:
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


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Build the synthetic demo unless the same build is stored, then serve it."""
    from data.store import CohortStore, make_engine
    from fusion.admin.access import auth_configured, check_bind_address, read_secrets
    from fusion.training.demo_build import BuildConfig, build_demo, built_config, reset_store
    from models.train import TrainConfig

    config = BuildConfig(
        n_patients=args.patients or settings.demo_patients,
        seed=settings.demo_seed if args.seed is None else args.seed,
        image_size=args.image_size,
        imaging=replace(TrainConfig(), epochs=imaging_epochs(args)),
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
            audit=cli_entry("train", detail={"command": "demo", "build": config.identity()}),
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
    return serve(settings, args.port, args.address)


def _sources(store: CohortStore) -> list[str]:
    store.create_schema()
    return store.cohort_sources()


def _has_patients(store: CohortStore) -> bool:
    store.create_schema()
    return store.count_patients() > 0


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def bench(settings: Settings, args: argparse.Namespace) -> int:
    """Measure build time, AUROCs and latency (:func:`fusion.training.bench.run_bench`)."""
    from fusion.training.bench import run_bench

    return run_bench(
        settings,
        n_patients=args.patients,
        out=args.out,
        import_patients=args.import_patients,
        validation_mb=args.validation_mb,
        only_validation=args.only_validation,
        scale=args.scale,
        scale_base=args.scale_base,
    )
