"""The cohort pages' views read from stored aggregates: :class:`CohortViews`.

Owns the read-through between the Model pages and the ``cohort_aggregates`` table
(:class:`data.store.aggregates.AggregateResults`): every view (performance at a threshold, a
researcher's cut points and curves, the bias audit and curves of an attribute set, modality
reliance, global SHAP, the risk histograms) is named by a *kind* holding every setting it
depends on (threshold, suppression floor, attributes, reference, resamples) and stored under
the active version's :class:`~data.store.DataStamp`. A page reads it by primary key; a kind not
stored yet under the stamp (a newer score or import, or settings nobody asked for before) is
computed once from the test split and stored, so it is never stale and never computed twice.
:func:`precompute` stores the views the pages show by default; ``train`` and ``score`` call it.

Suppression is applied when a view is computed, with the floor in its kind: a researcher who
raises the floor gets a view computed (and stored) at that floor; nobody can read a view of a
floor they may not use (:func:`fusion.service.cohort.min_cell_for` decides the floor first).
A threshold on the 0.001 grid other than the model's own is computed from the stored risk
histograms (:func:`fusion.evaluation.risk_histograms.performance_at`), not from the split.
Must not import streamlit.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy.exc import DBAPIError

from data.store import CohortStore, DataStamp
from fusion.admin.access import Identity
from fusion.evaluation.disclosure import ThresholdChoice, choose_threshold
from fusion.evaluation.fairness import FairnessReport
from fusion.evaluation.flags import AuditOptions
from fusion.evaluation.groups import (
    AUDIT_ATTRIBUTES,
    audit_threshold,
    check_attributes,
    group_curves,
)
from fusion.evaluation.importance import ShapSummary
from fusion.evaluation.performance import PerformanceReport, performance_threshold
from fusion.evaluation.risk_histograms import RiskHistograms, performance_at
from fusion.service import cohort
from fusion.service.aggregate_codec import decode, encode
from fusion.service.loaded_models import LoadedModels, model_info

__all__ = ["DEFAULT_ATTRIBUTE_SETS", "CohortViews", "precompute"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ATTRIBUTE_SETS: tuple[tuple[str, ...], ...] = tuple(
    names for size in (1, 2) for names in itertools.combinations(AUDIT_ATTRIBUTES, size)
)
"""Attribute sets whose audits, curves and reliance :func:`precompute` stores: every single
attribute (the page's default is ``sex``) and every pair."""

_RESEARCHER = Identity("precompute", "researcher", "local")
_DEFAULTS: dict[str, Any] = {"n_resamples": 200, "random_state": 0, "min_cell": None}


def _digest(values: Sequence[float]) -> str:
    """A short key for a list of cut points."""
    return hashlib.sha256(repr(tuple(float(v) for v in values)).encode()).hexdigest()[:16]


def _kind(name: str, **settings: Any) -> str:
    """The stored kind of view ``name`` under ``settings`` (long ones digested)."""
    text = "|".join([name, *(f"{key}={value!r}" for key, value in settings.items())])
    return text if len(text) <= 200 else f"{name}|{hashlib.sha256(text.encode()).hexdigest()}"


class CohortViews:
    """The active version's cohort views, stored per data stamp and computed once.

    Parameters
    ----------
    store : CohortStore
        The store (``cohort_aggregates`` is read and written).
    models : LoadedModels
        The active models (version, threshold, the model for global SHAP).
    floor : int or callable
        The configured suppression floor (``RISKFUSION_MIN_CELL``), or a callable returning
        it (the service's current floor).
    """

    def __init__(
        self, store: CohortStore, models: LoadedModels, floor: int | Callable[[], int]
    ) -> None:
        self.store = store
        self.models = models
        self._floor = floor
        self.version = models.version
        self._memo = cohort.StampedViews()  # decoded views and raw frames of this process
        self._pending: dict[str, str] | None = None  # precompute: written in one transaction

    @property
    def floor(self) -> int:
        """The configured suppression floor (read from the service when given a callable)."""
        return int(self._floor() if callable(self._floor) else self._floor)

    def stamp(self) -> DataStamp:
        """The active version's data stamp (one small query)."""
        return cohort.data_stamp(self.store, self.version)

    @property
    def default_threshold(self) -> float:
        """The model's own threshold (Youden's J on the validation split)."""
        return model_info(self.models).threshold

    def _stored(self, stamp: DataStamp, kind: str, compute: Callable[[], T]) -> T:
        """View ``kind`` under ``stamp``: stored, or computed now and stored once."""

        def load() -> T:
            text = self.store.read_aggregates(stamp, [kind]).get(kind)
            if text is not None:
                return decode(text)  # type: ignore[no-any-return]
            value = compute()
            if self._pending is not None:
                self._pending[kind] = encode(value)
            else:
                self._write(stamp, {kind: encode(value)})
            return value

        return self._memo.get(stamp, ("stored", kind), load)

    def _write(self, stamp: DataStamp, payloads: dict[str, str]) -> None:
        try:
            self.store.write_aggregates(stamp, payloads)
        except DBAPIError as err:  # e.g. a read-only database role: serve, but say so
            logger.warning(
                "cohort views not stored (%s): each new process computes them again",
                type(err.orig).__name__,
            )

    # ------------------------------------------------------------ raw reads (compute only)
    def frame(self, stamp: DataStamp) -> pd.DataFrame:
        """The test split's predictions under ``stamp`` (raw rows: only to compute a view)."""
        compute = partial(cohort.test_predictions, self.store, self.version)
        return self._memo.get(stamp, "test", compute)

    def test_predictions(self) -> pd.DataFrame:
        """Test-split risks of the model and its baselines, with attributes (a copy)."""
        return self.frame(self.stamp()).copy()

    def _full_shap(self, stamp: DataStamp, top_n: int) -> ShapSummary:
        compute = partial(
            cohort.global_shap, self.store, self.models, top_n=top_n, min_cell=self.floor
        )
        return self._memo.get(stamp, ("shap", top_n), compute)

    # ------------------------------------------------------------ thresholds
    def cuts(self, stamp: DataStamp, by: tuple[str, ...], min_cell: int) -> tuple[float, ...]:
        """A researcher's allowed cut points of the performance view (``by`` empty) or audit."""
        default = self.default_threshold

        def compute() -> tuple[float, ...]:
            frame = self.frame(stamp)
            if by:
                choice = audit_threshold(
                    frame, by, default, role="researcher", default=default, min_cell=min_cell
                )
            else:
                choice = performance_threshold(
                    frame, default, role="researcher", default=default, min_cell=min_cell
                )
            return tuple(choice.curve_cuts or ())

        kind = _kind("cuts", by="&".join(by), mc=min_cell)
        return tuple(self._stored(stamp, kind, compute))

    def threshold_choice(
        self,
        requested: float,
        identity: Identity | None,
        min_cell: int,
        by: Sequence[str] = (),
    ) -> ThresholdChoice:
        """The threshold a view applies for ``identity`` (a researcher's snaps to cut points).

        As :func:`fusion.evaluation.performance.performance_threshold` (``by`` empty) and
        :func:`fusion.evaluation.groups.audit_threshold`, from the stored cut points.
        """
        role = "admin" if identity is None else identity.role
        default = self.default_threshold
        if role != "researcher":
            return choose_threshold(requested, None, default=default, min_cell=min_cell)
        names = check_attributes(by) if by else ()
        cuts = self.cuts(self.stamp(), names, min_cell)
        return choose_threshold(requested, cuts, default=default, min_cell=min_cell)

    # ------------------------------------------------------------ performance
    def histograms(self, stamp: DataStamp) -> RiskHistograms:
        """Events and non-events per 0.001 risk bin of every model (stored)."""
        compute = lambda: RiskHistograms.from_frame(self.frame(stamp))  # noqa: E731
        return self._stored(stamp, "histograms", compute)

    def performance_at(
        self, stamp: DataStamp, threshold: float, min_cell: int, n_resamples: int, seed: int
    ) -> PerformanceReport:
        """The performance report at ``threshold`` (already a role's) and floor ``min_cell``."""
        default = self.default_threshold

        def compute() -> PerformanceReport:
            if threshold != default and RiskHistograms.exact_at(threshold):
                base = self.performance_at(stamp, default, min_cell, n_resamples, seed)
                return performance_at(
                    base,
                    self.histograms(stamp),
                    threshold,
                    n_resamples=n_resamples,
                    random_state=seed,
                )
            return cohort.performance(
                self.frame(stamp),
                self.version,
                threshold=threshold,
                n_resamples=n_resamples,
                random_state=seed,
                min_cell=min_cell,
            )

        kind = _kind("performance", t=float(threshold), mc=min_cell, n=n_resamples, seed=seed)
        return self._stored(stamp, kind, compute)

    def performance(
        self,
        *,
        threshold: float | None,
        n_resamples: int,
        random_state: int,
        min_cell: int | None,
        identity: Identity | None,
    ) -> PerformanceReport:
        """Test-split performance and modality ablation (default: the model's threshold)."""
        floor = cohort.min_cell_for(
            self.store, self.version, self.floor, identity, min_cell, view="performance"
        )
        requested = self.default_threshold if threshold is None else threshold
        applied = self.threshold_choice(requested, identity, floor).threshold
        return self.performance_at(self.stamp(), applied, floor, n_resamples, random_state)

    def through(self, report: PerformanceReport, cuts: Sequence[float]) -> PerformanceReport:
        """``report`` with every curve drawn through ``cuts`` only (stored per cut list)."""
        stamp = self.stamp()

        def compute() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
            drawn = report.through(self.frame(stamp), cuts)
            return drawn.roc, drawn.pr, drawn.curves

        roc, pr, curves = self._stored(stamp, _kind("through", cuts=_digest(cuts)), compute)
        return replace(report, roc=roc, pr=pr, curves=curves)

    # ------------------------------------------------------------ bias audit
    def audit(
        self,
        by: Sequence[str],
        *,
        threshold: float | None,
        reference: str | None,
        min_cell: int | None,
        n_resamples: int,
        random_state: int,
        identity: Identity | None,
        options: AuditOptions | None = None,
    ) -> FairnessReport:
        """Bias audit of the test split over 1-3 attributes (:func:`cohort.audit`).

        ``options`` sets the flags' adjustment, level and margin, and other age bands; an audit
        with other age bands snaps a researcher's threshold on its own bands.
        """
        names = check_attributes(by)
        floor = cohort.min_cell_for(
            self.store, self.version, self.floor, identity, min_cell, view="audit"
        )
        requested = self.default_threshold if threshold is None else threshold
        stamp = self.stamp()
        opts = options or AuditOptions()
        if opts.age_cuts is None:
            applied = self.threshold_choice(requested, identity, floor, names).threshold
        else:
            applied = cohort.role_threshold(
                cohort.rebanded(self.frame(stamp), opts),
                requested,
                identity,
                by=names,
                default=self.default_threshold,
                min_cell=floor,
            )

        def run() -> FairnessReport:
            return cohort.audit(
                cohort.rebanded(self.frame(stamp), opts),
                names,
                threshold=applied,
                reference=reference,
                min_cell=floor,
                n_resamples=n_resamples,
                random_state=random_state,
                options=opts,
            )

        kind = _kind(
            "audit",
            by="&".join(names),
            t=float(applied),
            ref=reference,
            mc=floor,
            n=n_resamples,
            seed=random_state,
            method=opts.method,
            alpha=float(opts.alpha),
            margin=float(opts.margin),
            age=None if opts.age_cuts is None else _digest(opts.age_cuts),
        )
        return self._stored(stamp, kind, run)

    def group_curves(
        self,
        by: Sequence[str],
        *,
        min_cell: int | None,
        identity: Identity | None,
        threshold: float | None,
        cut_points: Sequence[float] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """ROC and calibration curves per shown group (through ``cut_points`` when given)."""
        names = check_attributes(by)
        floor = cohort.min_cell_for(
            self.store, self.version, self.floor, identity, min_cell, view="group curves"
        )
        stamp = self.stamp()
        if cut_points is not None:
            cuts = tuple(float(c) for c in cut_points)
            kind = _kind("curves", by="&".join(names), cuts=_digest(cuts), mc=floor)
            compute = lambda: group_curves(  # noqa: E731
                self.frame(stamp), names, min_cell=floor, cut_points=cuts
            )
        else:
            requested = self.default_threshold if threshold is None else threshold
            applied = self.threshold_choice(requested, identity, floor, names).threshold
            kind = _kind("curves", by="&".join(names), t=float(applied), mc=floor)
            compute = lambda: cohort.curves_by_group(  # noqa: E731
                self.frame(stamp), names, min_cell=floor, threshold=applied
            )
        return tuple(self._stored(stamp, kind, compute))  # type: ignore[return-value]

    # ------------------------------------------------------------ SHAP
    def test_shap(self, *, top_n: int = 10) -> ShapSummary:
        """Global TreeSHAP importance (stored without the per-patient table)."""
        stamp = self.stamp()

        def compute() -> ShapSummary:
            full = self._full_shap(stamp, top_n)
            return replace(full, per_patient=full.per_patient.iloc[0:0])

        return self._stored(stamp, _kind("shap", top=top_n, mc=self.floor), compute)

    def modality_reliance(
        self, by: Sequence[str], *, min_cell: int | None, identity: Identity | None
    ) -> pd.DataFrame:
        """Mean |SHAP| per modality by group (:func:`cohort.reliance_by_group`)."""
        names = check_attributes(by)
        floor = cohort.min_cell_for(
            self.store, self.version, self.floor, identity, min_cell, view="reliance"
        )
        stamp = self.stamp()
        compute = lambda: cohort.reliance_by_group(  # noqa: E731
            self.frame(stamp), self._full_shap(stamp, 10), names, min_cell=floor
        )
        return self._stored(stamp, _kind("reliance", by="&".join(names), mc=floor), compute)


def precompute(
    views: CohortViews, *, attribute_sets: Sequence[Sequence[str]] = DEFAULT_ATTRIBUTE_SETS
) -> dict[str, Any]:
    """Store the views the cohort pages show by default, in one transaction.

    For the current stamp: performance at the model's threshold and at the slider's rounding
    of it, the risk histograms, global SHAP, a researcher's cut points and curves, and for each
    attribute set the audit, group curves (both roles) and modality reliance, all at the
    configured floor. Views already stored under the stamp are kept; older stamps' views of the
    version are deleted.

    Returns
    -------
    dict
        ``stamp`` (the key), ``views`` (stored now), ``skipped`` (views that cannot be
        computed, e.g. an audit whose every group is under the floor), ``seconds``.
    """
    start = time.perf_counter()
    stamp = views.stamp()
    floor = views.floor
    default = views.default_threshold
    page_default = round(default, 2)  # the sliders start at the threshold rounded
    skipped: list[str] = []

    def attempt(name: str, view: Callable[[], object]) -> None:
        """One view; one that cannot be computed (e.g. every group too small) is skipped."""
        try:
            view()
        except ValueError as err:  # the page shows the same error when asked
            skipped.append(name)
            logger.info("cohort view %s not stored: %s", name, err)

    views._pending = {}
    try:
        for threshold in dict.fromkeys((default, page_default)):
            attempt(
                "performance",
                partial(views.performance, threshold=threshold, **_DEFAULTS, identity=None),
            )

        def researcher_performance() -> None:
            choice = views.threshold_choice(page_default, _RESEARCHER, floor)
            report = views.performance(threshold=page_default, **_DEFAULTS, identity=_RESEARCHER)
            if choice.curve_cuts is not None:
                views.through(report, choice.curve_cuts)

        attempt("performance (researcher)", researcher_performance)
        attempt("shap", partial(views.test_shap, top_n=10))
        for by in attribute_sets:
            names = tuple(by)
            label = " & ".join(names)
            for identity in (None, _RESEARCHER):
                attempt(
                    f"audit {label}",
                    partial(
                        views.audit,
                        names,
                        threshold=page_default,
                        reference=None,
                        **_DEFAULTS,
                        identity=identity,
                    ),
                )
            attempt(
                f"curves {label}",
                partial(
                    views.group_curves,
                    names,
                    min_cell=None,
                    identity=None,
                    threshold=page_default,
                ),
            )

            def researcher_curves(names: tuple[str, ...] = names) -> None:
                choice = views.threshold_choice(page_default, _RESEARCHER, floor, names)
                views.group_curves(
                    names,
                    min_cell=None,
                    identity=_RESEARCHER,
                    threshold=None,
                    cut_points=choice.curve_cuts or (),
                )

            attempt(f"curves {label} (researcher)", researcher_curves)
            attempt(
                f"reliance {label}",
                partial(views.modality_reliance, names, min_cell=None, identity=None),
            )
        pending = views._pending
    finally:
        views._pending = None
    views._write(stamp, pending)
    return {
        "stamp": stamp,
        "views": len(pending),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - start, 2),
    }
