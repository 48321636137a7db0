"""The ``riskfusion`` command line: thin subcommands over the training and service use cases.

Owns logging setup, dispatch and exit codes (``main(argv) -> int``, the console script). The
parser is in :mod:`fusion.cli.parser`; the subcommands are grouped by capability in
:mod:`~fusion.cli.cohort` (import, db-roles), :mod:`~fusion.cli.training` (train, score,
activate, versions), :mod:`~fusion.cli.exports` (export, audit, explain, forecast, audit-trail),
:mod:`~fusion.cli.governance` (report: the model card)
and :mod:`~fusion.cli.serving` (serve, demo, bench). Heavy modules (torch, MONAI, LightGBM,
SHAP, the store) are imported inside the subcommands, so that ``riskfusion --help`` starts fast.
Must not import streamlit.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fusion.cli import cohort, exports, governance, serving, training
from fusion.cli.parser import build_parser
from fusion.settings import Settings

if TYPE_CHECKING:
    from fusion.training.stages import EventSink

__all__ = ["main"]

logger = logging.getLogger("riskfusion")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riskfusion`` command line; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = build_parser().parse_args(argv)
    events: Path | None = getattr(args, "events", None)
    if events is None:
        return _run(args)
    from fusion.training.stages import StageEvent, append_event

    events.parent.mkdir(parents=True, exist_ok=True)
    try:
        status = _run(args, partial(append_event, events))
    except BaseException as err:
        append_event(events, StageEvent("job", 0, 0, "failed", f"{type(err).__name__}: {err}"))
        raise
    detail = "finished" if status == 0 else f"exit status {status}; see the log"
    append_event(events, StageEvent("job", 0, 0, "done" if status == 0 else "failed", detail))
    return status


SUBCOMMANDS: dict[str, Callable[[Settings, argparse.Namespace, EventSink | None], int]] = {
    "import": cohort.import_cohort,
    "train": training.train,
    "score": training.score,
    "activate": lambda settings, args, _sink: training.activate(
        settings, args.version, baseline=args.baseline
    ),
    "versions": lambda settings, _args, _sink: training.versions(settings),
    "demo": lambda settings, args, _sink: serving.demo(args, settings),
    "serve": lambda settings, args, _sink: serving.serve(settings, args.port, args.address),
    "export": lambda settings, args, _sink: exports.export_predictions(settings, args.out),
    "audit": lambda settings, args, _sink: exports.audit(settings, args),
    "report": lambda settings, args, _sink: governance.model_card(settings, args),
    "explain": lambda settings, args, _sink: exports.explain(settings, args),
    "forecast": lambda settings, args, _sink: exports.forecast(settings, args),
    "audit-trail": lambda settings, args, _sink: exports.verify_trail(settings, args.expect),
    "db-roles": lambda settings, args, _sink: cohort.db_roles(settings, args),
    "bench": lambda settings, args, _sink: serving.bench(settings, args),
}
"""Each subcommand's function, called with the settings, the parsed arguments and the sink."""


def _run(args: argparse.Namespace, sink: EventSink | None = None) -> int:
    """Dispatch one parsed command; known errors become exit status 2 with a logged message."""
    from data.errors import CohortError
    from fusion.training.stages import StageEvent

    try:
        return SUBCOMMANDS[args.command](Settings.from_env(), args, sink)
    except (CohortError, ValueError) as err:
        logger.error("error: %s", err)
        if sink is not None:
            sink(StageEvent("job", 0, 0, "failed", str(err)))
        return 2
