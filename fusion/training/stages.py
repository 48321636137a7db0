"""Stages of a long job: ``[i/n] stage ... done in s`` log lines, timings and stage events.

Owns :class:`StageEvent` (what the Data page and ``--events FILE`` follow), :class:`Stages` and
the stage counts of ``riskfusion train`` and ``riskfusion score``. Imports only the standard
library, so the command line can report a failed job without loading torch. Must not import
streamlit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

__all__ = [
    "SCORE_STAGES",
    "TRAIN_STAGES",
    "EventSink",
    "Progress",
    "StageEvent",
    "StageState",
    "Stages",
    "append_event",
]

TRAIN_STAGES = 6
SCORE_STAGES = 1
Progress = Callable[[str], None]
EventSink = Callable[["StageEvent"], None]
StageState = Literal["start", "done", "failed"]


@dataclass(frozen=True, slots=True)
class StageEvent:
    """One step of a long job, as the Data page and ``--events FILE`` see it.

    Attributes
    ----------
    stage : str
        Stage name (``imaging``, ``fusion``, ...; ``job`` for the job's final event).
    index, total : int
        Position of the stage (1-based) and number of stages of the job.
    state : {"start", "done", "failed"}
    detail : str, default=""
        What the stage works on, or the error message / summary of the job.
    seconds : float or None, default=None
        Elapsed time of a finished stage.
    """

    stage: str
    index: int
    total: int
    state: StageState
    detail: str = ""
    seconds: float | None = None

    def to_json(self) -> str:
        """One JSON line (with the current UTC time)."""
        return json.dumps({**asdict(self), "time": datetime.now(UTC).isoformat()})


def append_event(path: Path, event: StageEvent) -> None:
    """Append ``event`` as one JSON line to ``path`` (flushed at once)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(event.to_json() + "\n")


class Stages:
    """Logs ``[i/n] stage ... done in s`` lines, keeps the timings and emits stage events.

    Parameters
    ----------
    total : int
        Number of stages of the job.
    report : callable
        Receives each log line.
    on_event : callable, optional
        Receives a :class:`StageEvent` when a stage starts, ends or fails.
    """

    def __init__(self, total: int, report: Progress, on_event: EventSink | None = None) -> None:
        self.total, self.index, self.report, self.on_event = total, 0, report, on_event
        self.seconds: dict[str, float] = {}

    def _emit(self, event: StageEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        """Run one stage: announce it, time it, report its end (or its failure)."""
        self.index += 1
        index = self.index
        self.report(f"[{index}/{self.total}] {name}{': ' + detail if detail else ''} ...")
        self._emit(StageEvent(name, index, self.total, "start", detail))
        start = time.perf_counter()
        try:
            yield
        except BaseException as err:
            self._emit(StageEvent(name, index, self.total, "failed", str(err)))
            raise
        elapsed = time.perf_counter() - start
        self.seconds[name] = round(elapsed, 2)
        self.report(f"[{index}/{self.total}] {name} done in {elapsed:.1f} s")
        self._emit(StageEvent(name, index, self.total, "done", detail, round(elapsed, 2)))
