"""Treatment forecasts: risk over time under each treatment option, with an uncertainty band.

Owns the censoring-aware forecast model (a discrete-time hazard model on the fused features
with the treatment as an input, boosted by LightGBM), its persistence (LightGBM text files, SHA-256
checked), the per-patient :class:`PatientForecast` record, and the proof metrics against the
synthetic cohort's true treatment effects (PEHE, Spearman, calibration). Must not import
streamlit or the dashboard.

Method, in short (see ``docs/forecast.md``):

* **Person-period expansion.** Follow-up up to :data:`HORIZON_YEARS` is cut into
  :data:`N_INTERVALS` intervals of :data:`INTERVAL_YEARS`. A patient contributes one row per
  interval entered; the row's label is 1 if the event falls in it. A patient censored inside an
  interval contributes that interval only when followed up past its midpoint (the actuarial
  rule: censored patients count as at risk for half the interval). Censoring is thus handled by
  the likelihood, never by dropping or mislabelling censored patients.
* **Hazard model.** The interval hazard ``h_k(x, a)`` depends on the features ``x``, the
  interval and the treatment ``a``. The cumulative risk is
  ``F(t_k) = 1 - prod_{j<=k} (1 - h_j)``, non-decreasing in ``t`` by construction.
* **S-learner** (default, served): one hazard model with the treatment as an input; a
  ridge-logistic part holds the interval, the inputs and the treatment terms (arm indicators
  and arm x input effect modifiers), and LightGBM boosts the prognosis from its margin.
  **T-learner** (compared in the proof and the bench): one LightGBM hazard model per arm;
  ``offset_t_learner``: a shared LightGBM prognosis plus per-arm LightGBM corrections.
* **Confounding.** Adjustment is by conditioning on the measured confounders (every fused
  input: demographics, EHR, genomics, scan score). This identifies the effect only under the
  no-unmeasured-confounding and positivity assumptions.
* **Band.** ``n_bootstrap`` models refitted on patient-level bootstrap resamples; the point
  estimate is their mean, the band their pointwise percentiles (``band`` coverage).
* **Anchoring (served).** :meth:`HazardForecaster.predict_anchored` shifts each member's logit
  hazards by one constant per patient (:func:`anchor_hazards`) so that the curve under the
  treatment received reaches the fused model's risk at the horizon: one risk per patient on
  every page; the treatment effects are modelled on top of it. :func:`compare_options` says
  whether the lowest-risk option is distinguishable from the others.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special, stats
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from data.errors import ArtifactIntegrityError
from data.store import CohortStore, ModelRecord
from data.vocabulary import HORIZON_YEARS, TREATMENTS
from fusion.model import REBUILD_HINT, file_sha256

__all__ = [
    "FORECAST_KIND",
    "FORECAST_NOTE",
    "FORECAST_SUFFIX",
    "HORIZON_YEARS",
    "INTERVAL_YEARS",
    "MIN_DISTINGUISHABLE_GAIN",
    "N_INTERVALS",
    "REFERENCE_TREATMENT",
    "TREATMENTS",
    "HazardForecaster",
    "OptionComparison",
    "PatientForecast",
    "anchor_hazards",
    "build_forecast",
    "calibration_errors",
    "calibration_table",
    "compare_options",
    "cumulative_risk",
    "effect_metrics",
    "effect_proof",
    "forecast_to_dict",
    "kaplan_meier",
    "make_patient_forecast",
    "naive_risks",
    "person_period",
    "summarise_members",
    "true_curve",
    "write_forecast_json",
]

logger = logging.getLogger(__name__)

INTERVAL_YEARS: Final[float] = 0.5
"""Width of one person-period interval in years."""
N_INTERVALS: Final[int] = 10
"""Number of intervals; ``INTERVAL_YEARS * N_INTERVALS == HORIZON_YEARS``."""
REFERENCE_TREATMENT: Final[str] = "none"
"""Treatment the absolute risk reductions are measured against."""
PERIOD_FEATURE: Final[str] = "period_start"
TREATMENT_FEATURES: Final[tuple[str, ...]] = tuple(
    f"treatment_{t}" for t in TREATMENTS if t != REFERENCE_TREATMENT
)
MANIFEST_FILE: Final[str] = "manifest.json"
FORECAST_KIND: Final[str] = "forecast"
"""Registry kind of forecast models."""
FORECAST_SUFFIX: Final[str] = "-forecast"
"""Registry version of the forecast model of fusion version ``v``: ``v + FORECAST_SUFFIX``."""
FORECAST_NOTE: Final[str] = (
    "Model estimate for research and demonstration only, not medical advice: it assumes no "
    "unmeasured confounding of the treatment choice."
)

ForecastMethod = Literal["s_learner", "offset_t_learner", "t_learner"]
FORECAST_METHODS: Final[tuple[ForecastMethod, ...]] = ("s_learner", "offset_t_learner", "t_learner")
BUILD_METHODS: Final[tuple[ForecastMethod, ...]] = ("s_learner", "t_learner")
"""Methods the demo build fits: the served S-learner and the compared T-learner."""
METHOD_LABELS: Final[Mapping[str, str]] = {
    "s_learner": (
        "S-learner discrete-time hazard (LightGBM prognosis + ridge-logistic treatment terms)"
    ),
    "offset_t_learner": (
        "Offset T-learner discrete-time hazard (LightGBM: shared prognostic model + "
        "per-arm corrections)"
    ),
    "t_learner": "T-learner discrete-time hazard (LightGBM, one model per arm)",
}

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PatientForecast:
    """One patient's cumulative risk over time under each treatment option.

    Attributes
    ----------
    patient_id : str
        The patient.
    model_version : str
        Version of the forecast model (``<fusion version>-forecast``).
    method : str
        Readable method, e.g. ``"S-learner discrete-time hazard (LightGBM), 12-model
        bootstrap band"``.
    horizon : float
        Years at which ``effects`` (ARR, NNT) are given.
    curves : DataFrame
        Long form, one row per treatment and time (0 to ``horizon``): ``treatment, time, risk,
        lower, upper, true_risk`` (``true_risk`` NaN without ground truth).
    effects : DataFrame
        One row per treatment at ``horizon``: ``treatment, risk, lower, upper, arr`` (absolute
        risk reduction vs ``"none"``), ``nnt`` (``1 / arr``, NaN when ``arr <= 0``),
        ``true_risk`` (NaN if unknown).
    best_treatment : str
        The treatment with the lowest estimated risk at ``horizon``.
    received_treatment : str or None
        The treatment the patient actually received, if known.
    comparison : OptionComparison or None, default=None
        Whether ``best_treatment`` is distinguishably lower than the other options (None when
        the member risks were not given).
    anchor_risk : float or None, default=None
        The fused model's horizon risk the curves are anchored to: the curve under
        ``received_treatment`` reaches it at ``horizon`` (None for unanchored curves).
    """

    patient_id: str
    model_version: str
    method: str
    horizon: float
    curves: pd.DataFrame
    effects: pd.DataFrame
    best_treatment: str
    received_treatment: str | None
    comparison: OptionComparison | None = None
    anchor_risk: float | None = None


# ---------------------------------------------------------------------------- survival helpers
def _check_survival(
    time: npt.ArrayLike, event: npt.ArrayLike
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    t = np.asarray(time, dtype=np.float64)
    e = np.asarray(event)
    if t.ndim != 1 or e.shape != t.shape:
        raise ValueError(
            f"time and event must be 1-D of equal length; got shapes {t.shape} and {e.shape}."
        )
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(
            "time must be finite and positive (years of follow-up); drop patients without "
            "follow-up before fitting."
        )
    if not np.isin(e, (0, 1)).all():
        raise ValueError(f"event must be 0/1; got values {np.unique(e)[:5].tolist()}.")
    return t, e.astype(bool)


def person_period(
    time: npt.ArrayLike,
    event: npt.ArrayLike,
    *,
    interval: float = INTERVAL_YEARS,
    n_intervals: int = N_INTERVALS,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Expand right-censored follow-up into discrete-time person-period rows.

    Interval ``k`` covers ``(k * interval, (k + 1) * interval]``. A patient contributes every
    interval it entered: label 1 in the interval of an observed event, 0 otherwise. A patient
    censored inside an interval contributes it only when followed past the interval midpoint
    (actuarial rule). Follow-up beyond the last interval is truncated.

    Parameters
    ----------
    time : array-like of shape (n_samples,)
        Follow-up time in years (event or censoring), positive.
    event : array-like of shape (n_samples,)
        1 if the event was observed at ``time``, 0 if censored.
    interval : float, default=INTERVAL_YEARS
        Interval width in years.
    n_intervals : int, default=N_INTERVALS
        Number of intervals.

    Returns
    -------
    patient : ndarray of shape (n_rows,)
        Row index of the patient of each person-period row.
    period : ndarray of shape (n_rows,)
        Interval index ``k`` of each row.
    y : ndarray of shape (n_rows,)
        1 if the event happened in that interval.

    Examples
    --------
    >>> patient, period, y = person_period([0.7, 1.2, 0.2], [1, 0, 0], interval=0.5,
    ...                                    n_intervals=2)
    >>> patient.tolist(), period.tolist(), y.tolist()
    ([0, 0, 1, 1], [0, 1, 0, 1], [0, 1, 0, 0])
    """
    t, e = _check_survival(time, event)
    if interval <= 0 or n_intervals < 1:
        raise ValueError(
            f"interval={interval}, n_intervals={n_intervals}; use a positive width and >= 1."
        )
    end = interval * n_intervals
    last = np.minimum(np.ceil(t / interval).astype(np.int64) - 1, n_intervals - 1)
    beyond = t > end
    event_in = e & ~beyond
    censored_late = ~e & ~beyond & (t - last * interval >= interval / 2)
    include_last = beyond | event_in | censored_late
    counts = last + include_last.astype(np.int64)
    patient = np.repeat(np.arange(t.size, dtype=np.int64), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    period = np.arange(patient.size, dtype=np.int64) - np.repeat(offsets, counts)
    y = (event_in[patient] & (period == last[patient])).astype(np.int64)
    return patient, period, y


def kaplan_meier(time: npt.ArrayLike, event: npt.ArrayLike, times: npt.ArrayLike) -> FloatArray:
    """Kaplan-Meier cumulative incidence ``1 - S(t)`` at the given times.

    Parameters
    ----------
    time : array-like of shape (n_samples,)
        Follow-up time, positive.
    event : array-like of shape (n_samples,)
        1 for an observed event, 0 for censoring.
    times : array-like of shape (n_times,)
        Where to evaluate the estimate.

    Returns
    -------
    ndarray of shape (n_times,)
        Estimated probability of the event by each time.

    Examples
    --------
    >>> kaplan_meier([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 0], [0.5, 1.0, 3.0]).round(3).tolist()
    [0.0, 0.25, 0.625]
    """
    t, e = _check_survival(time, event)
    grid = np.asarray(times, dtype=np.float64)
    ordered = np.sort(t)
    event_sorted = np.sort(t[e])
    unique = np.unique(event_sorted)
    at_risk = t.size - np.searchsorted(ordered, unique, side="left")
    deaths = np.searchsorted(event_sorted, unique, side="right") - np.searchsorted(
        event_sorted, unique, side="left"
    )
    survival = np.concatenate([[1.0], np.cumprod(1.0 - deaths / at_risk)])
    at = survival[np.searchsorted(unique, grid, side="right")]
    return np.asarray(1.0 - at, dtype=np.float64)


def true_curve(
    risk_at_horizon: float, times: npt.ArrayLike, horizon: float = HORIZON_YEARS
) -> FloatArray:
    """The synthetic world's cumulative risk at ``times`` (constant hazard).

    ``F(t) = 1 - (1 - r) ** (t / horizon)`` where ``r`` is the true risk at the horizon.

    Examples
    --------
    >>> true_curve(0.75, [0.0, 2.5, 5.0]).round(3).tolist()
    [0.0, 0.5, 0.75]
    """
    t = np.asarray(times, dtype=np.float64)
    return np.asarray(1.0 - (1.0 - risk_at_horizon) ** (t / horizon), dtype=np.float64)


def _treatment_codes(treatment: npt.ArrayLike) -> npt.NDArray[np.int64]:
    values = np.asarray(treatment).astype(str)
    unknown = sorted(set(values.tolist()) - set(TREATMENTS))
    if unknown:
        raise ValueError(
            f"Unknown treatments {unknown[:5]}; the forecast model knows {list(TREATMENTS)}."
        )
    lookup = {name: code for code, name in enumerate(TREATMENTS)}
    return np.asarray([lookup[v] for v in values], dtype=np.int64)


# ---------------------------------------------------------------------------- the estimator
class HazardForecaster(BaseEstimator):  # type: ignore[misc]
    """Discrete-time hazard model of the cumulative risk under each treatment option.

    Parameters
    ----------
    method : {"s_learner", "offset_t_learner", "t_learner"}, default="s_learner"
        ``"s_learner"``: the treatment is an input of one hazard model (see Notes);
        ``"t_learner"``: one LightGBM hazard model per treatment arm;
        ``"offset_t_learner"``: a shared LightGBM prognosis plus per-arm LightGBM corrections
        boosted from its margin.
    n_bootstrap : int, default=12
        Models refitted on patient bootstrap resamples; their mean is the estimate and their
        percentiles the band.
    band : float, default=0.9
        Coverage of the percentile band (0.9: 5th to 95th percentile).
    interval : float, default=INTERVAL_YEARS
        Interval width in years.
    n_intervals : int, default=N_INTERVALS
        Number of intervals (the horizon is ``interval * n_intervals``).
    learning_rate : float, default=0.05
        LightGBM shrinkage.
    num_leaves : int, default=7
        Leaves per tree.
    min_child_samples : int, default=40
        Minimum person-period rows per leaf.
    max_rounds : int, default=400
        Most boosting rounds per stage (early stopping on validation patients picks fewer).
    min_rounds : int, default=30
        Fewest boosting rounds per stage when early stopping stops sooner.
    effect_penalty : float, default=10.0
        S-learner: ridge penalty of the effect-modifier terms (treatment x standardised
        input); the main treatment terms are not penalised.
    effect_lasso : float, default=1.0
        S-learner: L1 (lasso) penalty of the effect-modifier terms, as a multiple of the
        universal threshold of each term's score (see Notes); 0 leaves the ridge alone.
    random_state : int, default=0
        Seed of the bootstrap and of LightGBM.
    n_jobs : int, default=1
        LightGBM threads (1: see :class:`fusion.model.FusionClassifier` for the measurement).

    Attributes
    ----------
    members_ : list of list of lightgbm.Booster
        ``n_bootstrap`` members. S-learner: ``[prognostic]``; T-learner: one booster per
        treatment in :data:`TREATMENTS` order; offset T-learner: prognostic + one per arm.
    coefs_ : list of ndarray or None
        S-learner: the logistic coefficients of each member (None for the other methods).
    z_mean_, z_scale_ : ndarray of shape (n_features,)
        Standardisation of the inputs in the logistic terms.
    feature_names_in_ : ndarray of shape (n_features,)
        Patient inputs in model order.
    n_rounds_ : list of int
        Boosting rounds per booster slot, chosen by early stopping.
    times_ : ndarray of shape (n_intervals + 1,)
        Curve times ``0, interval, ..., horizon``.

    Notes
    -----
    A plain LightGBM S-learner, with the treatment one input among ~80, barely splits on it and
    shrinks the effects to zero (the regularisation bias of tree S-learners, Kunzel et al.
    2019, PNAS 116:4156; measured in ``docs/forecast.md``). The S-learner here therefore holds
    the treatment in explicit terms: a ridge-penalised logistic hazard over the interval
    indicators, the standardised inputs and their missing indicators, and per treated arm an
    unpenalised indicator plus arm x input effect modifiers (elastic net: ridge
    ``effect_penalty`` plus a lasso that sets the modifiers that only fit noise to exactly 0).
    The lasso weight of modifier column ``j`` is ``effect_lasso * sqrt(2 log(p) * q(1 - q) *
    sum_i x_ij**2)``, with ``p`` the number of modifier columns and ``q`` the mean event rate
    per interval: the universal threshold of the column's score under no modification (the
    largest of ``p`` noise scores stays below it), so noise terms vanish while a real,
    strong modifier survives, shrunk by about ``threshold / (q(1 - q) sum_i x_ij**2)``; the
    more inputs, the more shrinkage (measured in ``docs/forecast.md``).
    LightGBM then boosts the prognosis from that margin (``init_score``) on the inputs and the
    interval only, so the non-linear prognosis is learnt without absorbing the treatment
    terms. The hazard is ``sigmoid(logistic margin + booster margin)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.normal(size=300)})
    >>> arm = rng.choice(list(TREATMENTS), 300)
    >>> time = rng.exponential(4.0, 300) + 0.01
    >>> event = (rng.random(300) < 0.7).astype(int)
    >>> model = HazardForecaster(n_bootstrap=2, max_rounds=20, min_rounds=5)
    >>> model = model.fit(X, time, event, arm)
    >>> model.predict_member_curves(X.iloc[:5]).shape
    (2, 5, 3, 11)
    """

    def __init__(
        self,
        *,
        method: ForecastMethod = "s_learner",
        n_bootstrap: int = 12,
        band: float = 0.9,
        interval: float = INTERVAL_YEARS,
        n_intervals: int = N_INTERVALS,
        learning_rate: float = 0.05,
        num_leaves: int = 7,
        min_child_samples: int = 40,
        max_rounds: int = 400,
        min_rounds: int = 30,
        effect_penalty: float = 10.0,
        effect_lasso: float = 1.0,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.method = method
        self.n_bootstrap = n_bootstrap
        self.band = band
        self.interval = interval
        self.n_intervals = n_intervals
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.max_rounds = max_rounds
        self.min_rounds = min_rounds
        self.effect_penalty = effect_penalty
        self.effect_lasso = effect_lasso
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ---------------------------------------------------------------- validation / design
    def _validate_params(self) -> None:
        if self.method not in FORECAST_METHODS:
            raise ValueError(
                f"Unknown forecast method {self.method!r}; choose one of {list(FORECAST_METHODS)}."
            )
        if not isinstance(self.n_bootstrap, int) or self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap={self.n_bootstrap!r}; pass an integer >= 1, e.g. 12.")
        if not 0.0 < self.band < 1.0:
            raise ValueError(f"band={self.band!r}; pass a coverage in (0, 1), e.g. 0.9.")
        if self.interval <= 0 or self.n_intervals < 1:
            raise ValueError(
                f"interval={self.interval}, n_intervals={self.n_intervals}; use a positive "
                "width and at least one interval."
            )
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(
                f"min_rounds={self.min_rounds}, max_rounds={self.max_rounds}; need "
                "1 <= min_rounds <= max_rounds."
            )
        if not (self.effect_penalty >= 0 and self.effect_lasso >= 0):
            raise ValueError(
                f"effect_penalty={self.effect_penalty!r}, effect_lasso={self.effect_lasso!r}; "
                "pass penalties >= 0, e.g. 10.0 and 1.0."
            )

    @property
    def horizon(self) -> float:
        """Last curve time in years (``interval * n_intervals``)."""
        return float(self.interval * self.n_intervals)

    def _params(self, seed: int) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "lambda_l2": 1.0,
            "seed": seed,
            "num_threads": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def _slots(self) -> list[str]:
        """Booster slots of one member."""
        arms = [f"arm_{name}" for name in TREATMENTS]
        if self.method == "s_learner":
            return ["prognostic"]
        if self.method == "offset_t_learner":
            return ["prognostic", *arms]
        return arms

    def _columns(self, slot: str) -> list[str]:
        names = [str(n) for n in self.feature_names_in_]
        if slot == "treatment":
            return [*names, *TREATMENT_FEATURES, PERIOD_FEATURE]
        return [*names, PERIOD_FEATURE]

    def _design(
        self,
        values: FloatArray,
        patient: npt.NDArray[np.int64],
        period: npt.NDArray[np.int64],
        codes: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """Person-period design: patient inputs, treatment one-hot, interval start (float32).

        Columns in the order of ``_columns("treatment")``; other slots use a prefix of it
        plus the last column.
        """
        onehot = np.stack(
            [codes == TREATMENTS.index(n.removeprefix("treatment_")) for n in TREATMENT_FEATURES],
            axis=1,
        )
        return np.column_stack(
            [values[patient], onehot, period.astype(np.float64) * self.interval]
        ).astype(np.float32)

    def _slot_view(self, design: npt.NDArray[np.float32], slot: str) -> npt.NDArray[np.float32]:
        if slot == "treatment":
            return design
        n_features = len(self.feature_names_in_)
        keep = [*range(n_features), design.shape[1] - 1]
        return np.ascontiguousarray(design[:, keep])

    def _check_X(self, X: pd.DataFrame) -> FloatArray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame with named columns; got {type(X)}.")
        if hasattr(self, "feature_names_in_") and list(X.columns) != list(self.feature_names_in_):
            raise ValueError(
                "X columns differ from the forecast model's inputs; build X with "
                "fusion.features.build_feature_matrix and the fusion feature set."
            )
        return np.asarray(X.to_numpy(dtype=np.float64), dtype=np.float64)

    def _rows(
        self,
        values: FloatArray,
        t: FloatArray,
        e: npt.NDArray[np.bool_],
        codes: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Design, labels and treatment code of every person-period row."""
        patient, period, y = person_period(
            t, e, interval=self.interval, n_intervals=self.n_intervals
        )
        return self._design(values, patient, period, codes[patient]), y, codes[patient]

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        X: pd.DataFrame,
        time: npt.ArrayLike,
        event: npt.ArrayLike,
        treatment: npt.ArrayLike,
        *,
        validation: tuple[pd.DataFrame, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
    ) -> HazardForecaster:
        """Fit the hazard model(s) and the bootstrap members.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_features)
            Patient inputs (fused features, NaN where missing).
        time : array-like of shape (n_samples,)
            Follow-up in years (event or censoring time).
        event : array-like of shape (n_samples,)
            1 if the event was observed, 0 if censored.
        treatment : array-like of shape (n_samples,)
            Received treatment, one of :data:`TREATMENTS`.
        validation : tuple (X_val, time_val, event_val, treatment_val), optional
            Patients for early stopping of the number of boosting rounds; without them every
            booster uses ``max_rounds``.

        Returns
        -------
        HazardForecaster
            ``self``.

        Raises
        ------
        ValueError
            For invalid parameters or inputs, or (T-learner) an arm without events.
        """
        self._validate_params()
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame with named columns; got {type(X)}.")
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        values = self._check_X(X)
        t, e = _check_survival(time, event)
        codes = _treatment_codes(treatment)
        if t.size != len(X) or codes.size != len(X):
            raise ValueError(
                f"X has {len(X)} rows but time/event/treatment have {t.size}/{codes.size}; "
                "pass one value per patient."
            )
        self.n_rounds_ = [self.max_rounds for _ in self._slots()]
        self.z_mean_ = np.nan_to_num(np.nanmean(values, axis=0), nan=0.0)
        scale = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0)
        self.z_scale_ = np.where(scale > 0, scale, 1.0)
        if validation is not None:
            X_val, time_val, event_val, treatment_val = validation
            t_val, e_val = _check_survival(time_val, event_val)
            self._fit_member(
                self._rows(values, t, e, codes),
                self.random_state,
                validation=self._rows(
                    self._check_X(X_val), t_val, e_val, _treatment_codes(treatment_val)
                ),
            )
        rng = np.random.default_rng(self.random_state)
        members: list[list[lgb.Booster]] = []
        coefs: list[FloatArray | None] = []
        for b in range(self.n_bootstrap):
            draw = rng.integers(0, t.size, t.size)
            rows = self._rows(values[draw], t[draw], e[draw], codes[draw])
            boosters, theta = self._fit_member(rows, self.random_state + 1000 * (b + 1))
            members.append(boosters)
            coefs.append(theta)
        self.members_ = members
        self.coefs_ = coefs
        self.times_ = np.arange(self.n_intervals + 1, dtype=np.float64) * self.interval
        logger.info(
            "forecast model fitted: %s, %d members, rounds %s on %d patients",
            self.method,
            len(members),
            self.n_rounds_,
            t.size,
        )
        return self

    def _train(
        self,
        slot_index: int,
        design: npt.NDArray[np.float32],
        y: npt.NDArray[np.int64],
        seed: int,
        init: FloatArray | None,
        validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], FloatArray | None] | None,
    ) -> lgb.Booster:
        slot = self._slots()[slot_index]
        if np.unique(y).size < 2:
            raise ValueError(
                f"No events (or no event-free intervals) for booster {slot!r}; fit on more "
                "patients (or, for the T-learner, on arms with events) or use "
                "method='s_learner'."
            )
        columns = self._columns(slot)
        train = lgb.Dataset(
            design, label=y, init_score=init, feature_name=columns, free_raw_data=True
        )
        params = self._params(seed)
        if validation is not None and np.unique(validation[1]).size < 2:
            # Too few validation rows to stop early on (a small arm): keep the minimum.
            self.n_rounds_[slot_index] = self.min_rounds
            validation = None
        if validation is None:
            return lgb.train(params, train, num_boost_round=self.n_rounds_[slot_index])
        v_design, v_y, v_init = validation
        valid = lgb.Dataset(v_design, label=v_y, init_score=v_init, reference=train)
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.max_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
        best = int(booster.best_iteration or self.max_rounds)
        self.n_rounds_[slot_index] = max(best, self.min_rounds)
        return booster

    def _fit_member(
        self,
        rows: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]],
        seed: int,
        *,
        validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]
        | None = None,
    ) -> tuple[list[lgb.Booster], FloatArray | None]:
        """Fit one member's boosters (and treatment terms); ``validation`` sets ``n_rounds_``."""
        design, y, codes = rows
        if self.method == "s_learner":
            return self._fit_partially_linear(design, y, codes, seed, validation)
        boosters = []
        offset = self.method == "offset_t_learner"
        arm_view = self._slot_view(design, "arm")
        base: FloatArray | None = None
        v_rows: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], FloatArray | None] | None
        v_rows = None
        if validation is not None:
            v_rows = (self._slot_view(validation[0], "arm"), validation[1], None)
        if offset:
            prognostic = self._train(0, arm_view, y, seed, None, v_rows)
            boosters.append(prognostic)
            base = np.asarray(prognostic.predict(arm_view, raw_score=True), dtype=np.float64)
            if v_rows is not None:
                v_base = np.asarray(prognostic.predict(v_rows[0], raw_score=True), np.float64)
                v_rows = (v_rows[0], v_rows[1], v_base)
        for code in range(len(TREATMENTS)):
            arm = codes == code
            v_data = None
            if validation is not None and v_rows is not None:
                v_arm = validation[2] == code
                v_offset = v_rows[2]
                v_data = (
                    v_rows[0][v_arm],
                    v_rows[1][v_arm],
                    None if v_offset is None else v_offset[v_arm],
                )
            boosters.append(
                self._train(
                    code + int(offset),
                    arm_view[arm],
                    y[arm],
                    seed + 1 + code,
                    None if base is None else base[arm],
                    v_data,
                )
            )
        return boosters, None

    def _treatment_terms(
        self, design: npt.NDArray[np.float32], codes: npt.NDArray[np.int64]
    ) -> FloatArray:
        """Columns of the S-learner's logistic hazard, shape (n_rows, n_terms).

        Interval indicators, standardised inputs (missing counted as the mean) and missing
        indicators, then per treated arm its indicator and the indicator times each
        standardised input (the effect modifiers).
        """
        n_features = len(self.feature_names_in_)
        raw = design[:, :n_features].astype(np.float64)
        z = np.nan_to_num((raw - self.z_mean_) / self.z_scale_, nan=0.0)
        period = np.rint(design[:, -1] / self.interval).astype(np.int64)
        blocks = [
            (period[:, None] == np.arange(self.n_intervals)[None, :]).astype(np.float64),
            z,
            np.isnan(raw).astype(np.float64),
        ]
        for name in TREATMENT_FEATURES:
            arm = (codes == TREATMENTS.index(name.removeprefix("treatment_")))[:, None]
            blocks += [arm.astype(np.float64), arm * z]
        return np.asarray(np.hstack(blocks), dtype=np.float64)

    def _penalties(self) -> FloatArray:
        """Ridge penalty per term: none on interval and treatment indicators."""
        ones = np.ones(len(self.feature_names_in_))
        arm = np.r_[0.0, ones * self.effect_penalty]
        return np.concatenate(
            [np.zeros(self.n_intervals), ones, ones, np.tile(arm, len(TREATMENT_FEATURES))]
        )

    def _modifiers(self) -> npt.NDArray[np.bool_]:
        """Mask of the effect-modifier terms (arm x input) among :meth:`_treatment_terms`."""
        n_features = len(self.feature_names_in_)
        arm = np.r_[False, np.ones(n_features, dtype=bool)]
        head = np.zeros(self.n_intervals + 2 * n_features, dtype=bool)
        return np.concatenate([head, np.tile(arm, len(TREATMENT_FEATURES))])

    def _lasso_weights(self, terms: FloatArray, target: FloatArray) -> FloatArray:
        """L1 weight per modifier column: ``effect_lasso`` x its score's universal threshold."""
        columns = terms[:, self._modifiers()]
        rate = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
        spread = np.sqrt(rate * (1.0 - rate) * np.sum(columns**2, axis=0))
        p = max(columns.shape[1], 2)
        return np.asarray(self.effect_lasso * np.sqrt(2.0 * np.log(p)) * spread, np.float64)

    def _fit_treatment_terms(self, terms: FloatArray, y: npt.NDArray[np.int64]) -> FloatArray:
        """Elastic-net logistic hazard over :meth:`_treatment_terms` (L-BFGS-B).

        Ridge :meth:`_penalties` on every term plus the lasso :meth:`_lasso_weights` on the
        effect modifiers, made smooth by the standard split of each modifier coefficient into
        a positive and a negative part, both bounded below by 0.
        """
        penalty = self._penalties()
        target = y.astype(np.float64)
        mask = self._modifiers()
        free = ~mask
        n_free, n_mod = int(free.sum()), int(mask.sum())
        l1 = np.tile(self._lasso_weights(terms, target), 2)

        def unpack(params: FloatArray) -> FloatArray:
            theta = np.empty(terms.shape[1])
            theta[free] = params[:n_free]
            theta[mask] = params[n_free : n_free + n_mod] - params[n_free + n_mod :]
            return theta

        def loss(params: FloatArray) -> tuple[float, FloatArray]:
            theta = unpack(params)
            margin = terms @ theta
            value = np.sum(np.logaddexp(0.0, margin) - target * margin)
            value += 0.5 * np.sum(penalty * theta**2) + np.dot(l1, params[n_free:])
            grad = terms.T @ (special.expit(margin) - target) + penalty * theta
            gradient = np.r_[grad[free], grad[mask], -grad[mask]] + np.r_[np.zeros(n_free), l1]
            return float(value), np.asarray(gradient, dtype=np.float64)

        start = np.zeros(n_free + 2 * n_mod)
        start[: self.n_intervals] = special.logit(np.clip(target.mean(), 1e-4, 1 - 1e-4))
        bounds = [(None, None)] * n_free + [(0.0, None)] * (2 * n_mod)
        result = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        return unpack(np.asarray(result.x, dtype=np.float64))

    def _fit_partially_linear(
        self,
        design: npt.NDArray[np.float32],
        y: npt.NDArray[np.int64],
        codes: npt.NDArray[np.int64],
        seed: int,
        validation: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]
        | None,
    ) -> tuple[list[lgb.Booster], FloatArray]:
        """Logistic hazard with treatment terms, then LightGBM boosting of the prognosis."""
        terms = self._treatment_terms(design, codes)
        theta = self._fit_treatment_terms(terms, y)
        view = self._slot_view(design, "prognostic")
        v_rows = None
        if validation is not None:
            v_terms = self._treatment_terms(validation[0], validation[2])
            v_rows = (self._slot_view(validation[0], "prognostic"), validation[1], v_terms @ theta)
        prognostic = self._train(0, view, y, seed, terms @ theta, v_rows)
        return [prognostic], theta

    # ---------------------------------------------------------------- predict
    def _hazard(
        self,
        boosters: Sequence[lgb.Booster],
        design: npt.NDArray[np.float32],
        codes: npt.NDArray[np.int64],
        theta: FloatArray | None = None,
    ) -> FloatArray:
        if self.method == "s_learner":
            view = self._slot_view(design, "prognostic")
            margin = boosters[0].predict(view, raw_score=True)
            if theta is not None:
                margin = margin + self._treatment_terms(design, codes) @ theta
        else:
            view = self._slot_view(design, "arm")
            margin = np.zeros(len(design), dtype=np.float64)
            arms = boosters
            if self.method == "offset_t_learner":
                margin += boosters[0].predict(view, raw_score=True)
                arms = boosters[1:]
            for code, booster in enumerate(arms):
                rows = codes == code
                margin[rows] += booster.predict(view[rows], raw_score=True)
        return np.asarray(special.expit(margin), dtype=np.float64)

    def predict_member_hazards(self, X: pd.DataFrame) -> FloatArray:
        """Interval hazards of every member under every treatment.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_features)
            Patient inputs, columns as in ``feature_names_in_``.

        Returns
        -------
        ndarray of shape (n_bootstrap, n_samples, n_treatments, n_intervals)
            Probability of the event in each interval given no event before it.
        """
        check_is_fitted(self)
        values = self._check_X(X)
        n, arms, k = len(X), len(TREATMENTS), self.n_intervals
        # Rows ordered (patient, treatment, interval).
        patient = np.repeat(np.arange(n, dtype=np.int64), arms * k)
        codes = np.tile(np.repeat(np.arange(arms, dtype=np.int64), k), n)
        period = np.tile(np.arange(k, dtype=np.int64), n * arms)
        design = self._design(values, patient, period, codes)
        hazards = np.zeros((len(self.members_), n, arms, k), dtype=np.float64)
        for b, boosters in enumerate(self.members_):
            hazard = self._hazard(boosters, design, codes, self.coefs_[b])
            hazards[b] = hazard.reshape(n, arms, k)
        return hazards

    def predict_member_curves(self, X: pd.DataFrame) -> FloatArray:
        """Cumulative risk curves of every member under every treatment.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_features)
            Patient inputs, columns as in ``feature_names_in_``.

        Returns
        -------
        ndarray of shape (n_bootstrap, n_samples, n_treatments, n_intervals + 1)
            Cumulative risk at ``times_`` (first column 0), non-decreasing along the last axis.
        """
        return cumulative_risk(self.predict_member_hazards(X))

    def predict_curves(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Point estimate and percentile band of the cumulative risk.

        Returns
        -------
        risk, lower, upper : ndarray of shape (n_samples, n_treatments, n_intervals + 1)
            Member mean and the ``band`` percentile limits (widened to contain the mean).
        """
        members = self.predict_member_curves(X)
        return summarise_members(members, self.band)

    def predict_risk(self, X: pd.DataFrame) -> FloatArray:
        """Estimated risk at the horizon, shape (n_samples, n_treatments)."""
        risk, _, _ = self.predict_curves(X)
        return np.asarray(risk[:, :, -1], dtype=np.float64)

    def predict_anchored(
        self,
        X: pd.DataFrame,
        received: npt.ArrayLike,
        risk: npt.ArrayLike,
        *,
        low: npt.ArrayLike | None = None,
        high: npt.ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Curves anchored to a given horizon risk under the treatment received.

        Every member's hazards are shifted on the logit scale by one constant per patient
        (:func:`anchor_hazards`) so that its curve under ``received`` reaches ``risk`` at the
        horizon; the other options keep the member's treatment terms on top of that shift.
        The point estimate is the mean of the members anchored to ``risk`` (so it reaches
        ``risk`` exactly under ``received``); the band's lower limit is the ``band`` tail
        percentile of the members anchored to ``low``, its upper limit the upper percentile of
        the members anchored to ``high``, each widened to contain the point estimate.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, n_features)
            Patient inputs.
        received : array-like of shape (n_samples,)
            Treatment each patient received, one of :data:`TREATMENTS`.
        risk : array-like of shape (n_samples,)
            Horizon risk under ``received`` to anchor to (the fused model's risk).
        low, high : array-like of shape (n_samples,), optional
            Interval of ``risk`` (the fused risk's calibrated interval); without them the band
            holds only the bootstrap spread of the treatment effects (zero width under
            ``received`` at the horizon).

        Returns
        -------
        risk, lower, upper : ndarray of shape (n_samples, n_treatments, n_intervals + 1)
            Anchored point estimate and band.
        horizon_members : ndarray of shape (n_bootstrap, n_samples, n_treatments)
            Each member's anchored risk at the horizon (for :func:`compare_options`).

        Raises
        ------
        ValueError
            If a treatment is unknown or the anchors are not probabilities of shape
            (n_samples,).
        """
        codes = _treatment_codes(received)
        hazards = self.predict_member_hazards(X)
        centre = cumulative_risk(anchor_hazards(hazards, codes, risk))
        point = centre.mean(axis=0)
        tail = 100.0 * (1.0 - self.band) / 2.0
        lower_members = (
            centre if low is None else cumulative_risk(anchor_hazards(hazards, codes, low))
        )
        upper_members = (
            centre if high is None else cumulative_risk(anchor_hazards(hazards, codes, high))
        )
        lower = np.minimum(np.percentile(lower_members, tail, axis=0), point)
        upper = np.maximum(np.percentile(upper_members, 100.0 - tail, axis=0), point)
        return point, lower, upper, np.asarray(centre[..., -1], dtype=np.float64)

    def describe(self) -> str:
        """Readable method name, e.g. for :attr:`PatientForecast.method`."""
        check_is_fitted(self)
        return (
            f"{METHOD_LABELS[self.method]}, {len(self.members_)}-model bootstrap "
            f"{round(100 * self.band)}% band"
        )

    # ---------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> str:
        """Write every booster as LightGBM text plus a manifest; return the manifest's SHA-256.

        The manifest lists each booster file with its SHA-256, so :meth:`load` verifies every
        file before LightGBM reads it (a truncated model file aborts the process).
        """
        check_is_fitted(self)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        files: list[list[dict[str, str]]] = []
        for b, boosters in enumerate(self.members_):
            entry = []
            for slot, booster in zip(self._slots(), boosters, strict=True):
                name = f"member_{b:02d}_{slot}.txt"
                booster.save_model(str(target / name))
                entry.append({"file": name, "sha256": file_sha256(target / name)})
            files.append(entry)
        manifest = {
            "params": self.get_params(),
            "feature_names": [str(n) for n in self.feature_names_in_],
            "n_rounds": self.n_rounds_,
            "z_mean": self.z_mean_.tolist(),
            "z_scale": self.z_scale_.tolist(),
            "coefs": [None if c is None else c.tolist() for c in self.coefs_],
            "members": files,
        }
        path = target / MANIFEST_FILE
        path.write_text(json.dumps(manifest, indent=2))
        return file_sha256(path)

    @classmethod
    def load(cls, folder: str | Path, *, expected_sha256: str) -> HazardForecaster:
        """Load a model saved by :meth:`save`, verifying the manifest and every booster file.

        Raises
        ------
        ArtifactIntegrityError
            If the manifest or a booster is missing or differs from its registered SHA-256.
        """
        root = Path(folder)
        path = root / MANIFEST_FILE
        if not path.is_file() or file_sha256(path) != expected_sha256:
            raise ArtifactIntegrityError(
                f"Forecast manifest {path} is missing or does not match its registered "
                f"SHA-256; {REBUILD_HINT}."
            )
        manifest: dict[str, Any] = json.loads(path.read_text())
        model = cls(**manifest["params"])
        model.feature_names_in_ = np.asarray(manifest["feature_names"], dtype=object)
        model.n_rounds_ = [int(n) for n in manifest["n_rounds"]]
        members = []
        for entry in manifest["members"]:
            boosters = []
            for item in entry:
                file = root / str(item["file"])
                if not file.is_file() or file_sha256(file) != item["sha256"]:
                    raise ArtifactIntegrityError(
                        f"Forecast model file {file} is missing or does not match the SHA-256 "
                        f"in its manifest (truncated or modified); {REBUILD_HINT}."
                    )
                boosters.append(lgb.Booster(model_file=str(file)))
            members.append(boosters)
        model.members_ = members
        model.z_mean_ = np.asarray(manifest["z_mean"], dtype=np.float64)
        model.z_scale_ = np.asarray(manifest["z_scale"], dtype=np.float64)
        model.coefs_ = [None if c is None else np.asarray(c, np.float64) for c in manifest["coefs"]]
        model.times_ = np.arange(model.n_intervals + 1, dtype=np.float64) * model.interval
        return model


def summarise_members(
    members: FloatArray, band: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean and pointwise percentile band over the first axis of member curves.

    Pointwise percentiles of non-decreasing curves are non-decreasing, so the band is monotone
    like the curves; it is widened where needed to contain the mean.
    """
    tail = 100.0 * (1.0 - band) / 2.0
    risk = members.mean(axis=0)
    lower = np.minimum(np.percentile(members, tail, axis=0), risk)
    upper = np.maximum(np.percentile(members, 100.0 - tail, axis=0), risk)
    return risk, lower, upper


def cumulative_risk(hazards: FloatArray) -> FloatArray:
    """Cumulative risk ``F(t_k) = 1 - prod_{j<=k} (1 - h_j)`` from interval hazards.

    Parameters
    ----------
    hazards : ndarray of shape (..., n_intervals)
        Interval hazards along the last axis.

    Returns
    -------
    ndarray of shape (..., n_intervals + 1)
        Cumulative risk at the interval ends, starting with 0 at time 0.

    Examples
    --------
    >>> cumulative_risk(np.array([0.5, 0.5])).tolist()
    [0.0, 0.5, 0.75]
    """
    h = np.asarray(hazards, dtype=np.float64)
    curves = np.zeros((*h.shape[:-1], h.shape[-1] + 1), dtype=np.float64)
    curves[..., 1:] = 1.0 - np.cumprod(1.0 - h, axis=-1)
    return curves


ANCHOR_CLIP: Final[float] = 1e-9
"""Anchor risks are clipped to ``[ANCHOR_CLIP, 1 - ANCHOR_CLIP]`` (0 and 1 have no logit)."""
_HAZARD_CLIP: Final[float] = 1e-12
_ANCHOR_STEPS: Final[int] = 100


def anchor_hazards(hazards: FloatArray, received: npt.ArrayLike, risk: npt.ArrayLike) -> FloatArray:
    """Shift hazards on the logit scale so the received option reaches a given horizon risk.

    For each member ``b`` and patient ``i`` one constant ``delta[b, i]`` is added to the
    logit of every interval hazard under every option, chosen so that the cumulative risk
    under ``received[i]`` at the last interval equals ``risk[i]``. The treatment terms (the
    differences between the options' logit hazards) are left as they are: the treatment
    effect is modelled on top of the anchor. The horizon risk is increasing in ``delta``, so
    the root is unique; it is found by bisection (100 halvings of [-60, 60]).

    Parameters
    ----------
    hazards : ndarray of shape (n_members, n_samples, n_treatments, n_intervals)
        Interval hazards (see :meth:`HazardForecaster.predict_member_hazards`).
    received : array-like of int of shape (n_samples,)
        Index in :data:`TREATMENTS` of the option each patient received.
    risk : array-like of shape (n_samples,)
        Horizon risk to reach under ``received`` (clipped to ``[ANCHOR_CLIP, 1 -
        ANCHOR_CLIP]``).

    Returns
    -------
    ndarray of shape (n_members, n_samples, n_treatments, n_intervals)
        The shifted hazards.

    Raises
    ------
    ValueError
        If shapes disagree, a treatment index is out of range or a risk is not in [0, 1].

    Examples
    --------
    >>> h = np.full((1, 1, 2, 2), 0.1)
    >>> h[0, 0, 1] = 0.05  # the second option halves the hazard
    >>> anchored = anchor_hazards(h, [0], [0.5])
    >>> round(float(cumulative_risk(anchored)[0, 0, 0, -1]), 6)
    0.5
    """
    h = np.asarray(hazards, dtype=np.float64)
    codes = np.asarray(received)
    target = np.asarray(risk, dtype=np.float64)
    if h.ndim != 4 or codes.shape != (h.shape[1],) or target.shape != (h.shape[1],):
        raise ValueError(
            f"hazards {h.shape} must be (n_members, n_samples, n_treatments, n_intervals) and "
            f"received {codes.shape} / risk {target.shape} must be (n_samples,) = "
            f"({h.shape[1] if h.ndim == 4 else '?'},); pass one received option and one risk "
            "per patient."
        )
    if codes.size and (
        not np.issubdtype(codes.dtype, np.integer) or codes.min() < 0 or codes.max() >= h.shape[2]
    ):
        raise ValueError(
            f"received must hold option indices 0..{h.shape[2] - 1} (positions in "
            f"{list(TREATMENTS)}); got {np.unique(codes)[:5].tolist()}."
        )
    if not np.all((target >= 0.0) & (target <= 1.0)):
        raise ValueError(
            f"risk must hold probabilities in [0, 1]; got values from {np.nanmin(target)} to "
            f"{np.nanmax(target)}. Pass the fused model's risk (predict_proba[:, 1])."
        )
    logits = special.logit(np.clip(h, _HAZARD_CLIP, 1.0 - _HAZARD_CLIP))
    members = np.arange(h.shape[1])
    own = logits[:, members, codes, :]  # (n_members, n_samples, n_intervals)
    # log survival to reach: log(1 - risk); survival(delta) = exp(-sum softplus(own + delta)).
    goal = -np.log1p(-np.clip(target, ANCHOR_CLIP, 1.0 - ANCHOR_CLIP))[None, :]
    low = np.full(own.shape[:2], -60.0)
    high = np.full(own.shape[:2], 60.0)
    for _ in range(_ANCHOR_STEPS):
        mid = 0.5 * (low + high)
        too_high = np.logaddexp(0.0, own + mid[..., None]).sum(axis=-1) > goal
        high = np.where(too_high, mid, high)
        low = np.where(too_high, low, mid)
    delta = 0.5 * (low + high)
    return np.asarray(special.expit(logits + delta[:, :, None, None]), dtype=np.float64)


MIN_DISTINGUISHABLE_GAIN: Final[float] = 0.01
"""Smallest horizon-risk difference (1 point) for which an option is called distinguishably
lower; smaller estimated gains are reported as not distinguishable whatever the band says."""


@dataclass(frozen=True, slots=True)
class OptionComparison:
    """Whether the option with the lowest estimated risk is distinguishable from the others.

    Attributes
    ----------
    best : str
        The option with the lowest estimated horizon risk (member mean).
    runner_up : str
        The option closest to it.
    gain : float
        ``risk(runner_up) - risk(best)`` at the horizon (mean over members, >= 0).
    gain_lower, gain_upper : float
        The ``band`` percentile limits of that difference across the bootstrap members.
    band : float
        Coverage of those limits, e.g. 0.9.
    distinguishable : bool
        True when, against every other option, the difference is at least
        :data:`MIN_DISTINGUISHABLE_GAIN` and its lower band limit is above 0.
    """

    best: str
    runner_up: str
    gain: float
    gain_lower: float
    gain_upper: float
    band: float
    distinguishable: bool

    def describe(self, horizon: float) -> str:
        """One plain sentence for the page, e.g. "No option is distinguishably lower ...".

        Examples
        --------
        >>> OptionComparison("targeted", "standard", 0.004, -0.01, 0.02, 0.9,
        ...                  False).describe(5.0)[:56]
        'No option has a distinguishably lower risk at 5 years: t'
        """
        level = f"{round(100 * self.band)}%"
        band = f"{level} band {100 * self.gain_lower:+.1f} to {100 * self.gain_upper:+.1f} points"
        if self.distinguishable:
            return (
                f"Lowest estimated risk at {horizon:g} years: {self.best}, "
                f"{100 * self.gain:.1f} points below {self.runner_up}, the next option "
                f"({band}: lower in the model's bootstrap refits)."
            )
        return (
            f"No option has a distinguishably lower risk at {horizon:g} years: {self.best} is "
            f"estimated lowest, but only {100 * self.gain:.1f} points below {self.runner_up} "
            f"({band}), within the model's uncertainty."
        )


def compare_options(
    horizon_members: npt.ArrayLike,
    *,
    band: float = 0.9,
    min_gain: float = MIN_DISTINGUISHABLE_GAIN,
) -> OptionComparison:
    """Decide whether one patient's lowest-risk option stands out from the others.

    The differences are taken member by member (the bootstrap refits share the patient's
    baseline risk), so a real effect stands out even when the options' bands overlap.

    Parameters
    ----------
    horizon_members : array-like of shape (n_members, n_treatments)
        Each bootstrap member's horizon risk under each option in :data:`TREATMENTS` order.
    band : float, default=0.9
        Coverage of the difference's percentile band.
    min_gain : float, default=MIN_DISTINGUISHABLE_GAIN
        Smallest mean difference called distinguishable.

    Returns
    -------
    OptionComparison

    Raises
    ------
    ValueError
        If the shape is not (n_members, n_treatments) or ``band`` is not in (0, 1).

    Examples
    --------
    >>> members = np.array([[0.30, 0.20, 0.25], [0.32, 0.21, 0.26], [0.31, 0.22, 0.27]])
    >>> comparison = compare_options(members)
    >>> comparison.best, comparison.runner_up, comparison.distinguishable
    ('standard', 'targeted', True)
    >>> compare_options(np.array([[0.30, 0.20, 0.21], [0.30, 0.21, 0.20]])).distinguishable
    False
    """
    risks = np.asarray(horizon_members, dtype=np.float64)
    if risks.ndim != 2 or risks.shape[1] != len(TREATMENTS) or risks.shape[0] < 1:
        raise ValueError(
            f"horizon_members has shape {risks.shape}; pass (n_members, {len(TREATMENTS)}) "
            f"risks in {list(TREATMENTS)} order."
        )
    if not 0.0 < band < 1.0:
        raise ValueError(f"band={band!r}; pass a coverage in (0, 1), e.g. 0.9.")
    mean = risks.mean(axis=0)
    best = int(np.argmin(mean))
    tail = 100.0 * (1.0 - band) / 2.0
    others = [a for a in range(len(TREATMENTS)) if a != best]
    differences = risks[:, others] - risks[:, [best]]
    gains = differences.mean(axis=0)
    lows = np.percentile(differences, tail, axis=0)
    highs = np.percentile(differences, 100.0 - tail, axis=0)
    closest = int(np.argmin(gains))
    return OptionComparison(
        best=TREATMENTS[best],
        runner_up=TREATMENTS[others[closest]],
        gain=float(gains[closest]),
        gain_lower=float(lows[closest]),
        gain_upper=float(highs[closest]),
        band=band,
        distinguishable=bool(np.all((gains >= min_gain) & (lows > 0.0))),
    )


# ---------------------------------------------------------------------------- per patient
def make_patient_forecast(
    *,
    patient_id: str,
    model_version: str,
    method: str,
    times: npt.ArrayLike,
    risk: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    true_risks: Mapping[str, float] | None = None,
    received_treatment: str | None = None,
    comparison: OptionComparison | None = None,
    anchor_risk: float | None = None,
) -> PatientForecast:
    """Assemble a :class:`PatientForecast` from one patient's curves.

    Parameters
    ----------
    patient_id, model_version, method : str
        Identification of the forecast.
    times : array-like of shape (n_times,)
        Curve times in years; the last one is the horizon.
    risk, lower, upper : ndarray of shape (n_treatments, n_times)
        Cumulative risk and band per treatment in :data:`TREATMENTS` order.
    true_risks : mapping of treatment to float, optional
        True risk at the horizon under each treatment (synthetic cohorts).
    received_treatment : str, optional
        The treatment actually received.
    comparison : OptionComparison, optional
        :func:`compare_options` of the patient's member risks at the horizon.
    anchor_risk : float, optional
        The fused risk the curves were anchored to (:meth:`HazardForecaster.predict_anchored`).

    Returns
    -------
    PatientForecast
    """
    grid = np.asarray(times, dtype=np.float64)
    horizon = float(grid[-1])
    truth = dict(true_risks or {})
    frames = []
    for a, name in enumerate(TREATMENTS):
        true = (
            true_curve(truth[name], grid, HORIZON_YEARS)
            if name in truth
            else np.full(grid.size, np.nan)
        )
        frames.append(
            pd.DataFrame(
                {
                    "treatment": name,
                    "time": grid,
                    "risk": risk[a],
                    "lower": lower[a],
                    "upper": upper[a],
                    "true_risk": true,
                }
            )
        )
    curves = pd.concat(frames, ignore_index=True)
    at_horizon = risk[:, -1]
    reference = at_horizon[TREATMENTS.index(REFERENCE_TREATMENT)]
    arr = reference - at_horizon
    effects = pd.DataFrame(
        {
            "treatment": list(TREATMENTS),
            "risk": at_horizon,
            "lower": lower[:, -1],
            "upper": upper[:, -1],
            "arr": arr,
            "nnt": np.where(arr > 0, 1.0 / np.where(arr > 0, arr, 1.0), np.nan),
            "true_risk": [truth.get(name, np.nan) for name in TREATMENTS],
        }
    )
    return PatientForecast(
        patient_id=patient_id,
        model_version=model_version,
        method=method,
        horizon=horizon,
        curves=curves,
        effects=effects,
        best_treatment=TREATMENTS[int(np.argmin(at_horizon))],
        received_treatment=received_treatment,
        comparison=comparison,
        anchor_risk=anchor_risk,
    )


# ---------------------------------------------------------------------------- proof metrics
def effect_metrics(
    estimated: npt.ArrayLike, truth: npt.ArrayLike, *, method: str
) -> list[dict[str, Any]]:
    """PEHE and Spearman correlation of estimated vs true individual treatment effects.

    The effect of treatment ``a`` is ``risk(a) - risk("none")`` at the horizon (negative:
    the treatment lowers the risk). ``PEHE = sqrt(mean((effect_est - effect_true) ** 2))``.

    Parameters
    ----------
    estimated, truth : array-like of shape (n_samples, n_treatments)
        Risk at the horizon under each treatment in :data:`TREATMENTS` order.
    method : str
        Name written into every row.

    Returns
    -------
    list of dict
        One row per contrast: ``method, contrast, pehe, spearman, mean_effect,
        true_mean_effect`` (``spearman`` NaN when the estimated effect is constant).

    Examples
    --------
    >>> truth = np.array([[0.3, 0.2, 0.1], [0.5, 0.4, 0.45]])
    >>> rows = effect_metrics(np.zeros((2, 3)), truth, method="agnostic")
    >>> [round(r["pehe"], 3) for r in rows]
    [0.1, 0.146]
    """
    est = np.asarray(estimated, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if est.shape != true.shape or est.ndim != 2 or est.shape[1] != len(TREATMENTS):
        raise ValueError(
            f"estimated {est.shape} and truth {true.shape} must both be (n_samples, "
            f"{len(TREATMENTS)}) risks in {list(TREATMENTS)} order."
        )
    ref = TREATMENTS.index(REFERENCE_TREATMENT)
    rows = []
    for a, name in enumerate(TREATMENTS):
        if a == ref:
            continue
        effect = est[:, a] - est[:, ref]
        true_effect = true[:, a] - true[:, ref]
        constant = np.ptp(effect) < 1e-12 or np.ptp(true_effect) < 1e-12
        rho = float("nan") if constant else float(stats.spearmanr(effect, true_effect)[0])
        rows.append(
            {
                "method": method,
                "contrast": f"{name} vs {REFERENCE_TREATMENT}",
                "pehe": float(np.sqrt(np.mean((effect - true_effect) ** 2))),
                "spearman": rho,
                "mean_effect": float(effect.mean()),
                "true_mean_effect": float(true_effect.mean()),
            }
        )
    return rows


def calibration_table(
    predicted: npt.ArrayLike,
    time: npt.ArrayLike,
    event: npt.ArrayLike,
    *,
    true_risk: npt.ArrayLike | None = None,
    horizon: float = HORIZON_YEARS,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Calibration of the horizon risk by bin of predicted risk (deciles by default).

    Observed risk per bin is the Kaplan-Meier cumulative incidence at ``horizon`` (so censored
    patients count correctly); on synthetic cohorts the mean true risk is shown too.

    Returns
    -------
    DataFrame
        One row per bin: ``bin, n, predicted, observed_km, true_risk`` (NaN without truth).
    """
    pred = np.asarray(predicted, dtype=np.float64)
    t, e = _check_survival(time, event)
    truth = (
        np.full(pred.size, np.nan) if true_risk is None else np.asarray(true_risk, dtype=np.float64)
    )
    bins = min(n_bins, max(1, pred.size // 5))
    order = np.argsort(pred, kind="stable")
    rows = []
    for i, members in enumerate(np.array_split(order, bins)):
        rows.append(
            {
                "bin": i + 1,
                "n": int(members.size),
                "predicted": float(pred[members].mean()),
                "observed_km": float(kaplan_meier(t[members], e[members], [horizon])[0]),
                "true_risk": float(truth[members].mean()),
            }
        )
    return pd.DataFrame(rows)


def calibration_errors(table: pd.DataFrame) -> dict[str, float]:
    """Size-weighted mean |predicted - observed| of a :func:`calibration_table` (ECE).

    Returns
    -------
    dict
        ``ece_true`` (against the true risk, NaN without truth) and ``ece_km`` (against the
        Kaplan-Meier observed risk).
    """
    weights = table["n"].to_numpy(dtype=np.float64)
    weights = weights / weights.sum()
    pred = table["predicted"].to_numpy(dtype=np.float64)
    return {
        "ece_true": float(np.sum(weights * np.abs(pred - table["true_risk"].to_numpy()))),
        "ece_km": float(np.sum(weights * np.abs(pred - table["observed_km"].to_numpy()))),
    }


def naive_risks(
    time: npt.ArrayLike, event: npt.ArrayLike, treatment: npt.ArrayLike, n_samples: int
) -> FloatArray:
    """Unadjusted baseline: per-arm Kaplan-Meier risk at the horizon, the same for everyone.

    Returns
    -------
    ndarray of shape (n_samples, n_treatments)
        Each arm's marginal Kaplan-Meier risk at :data:`HORIZON_YEARS` (NaN for an empty arm).
    """
    t, e = _check_survival(time, event)
    codes = _treatment_codes(treatment)
    marginal = np.array(
        [
            kaplan_meier(t[codes == a], e[codes == a], [HORIZON_YEARS])[0]
            if np.any(codes == a)
            else np.nan
            for a in range(len(TREATMENTS))
        ]
    )
    return np.tile(marginal, (n_samples, 1))


def effect_proof(
    models: Mapping[str, HazardForecaster],
    X_test: pd.DataFrame,
    truth_test: npt.ArrayLike,
    *,
    train_time: npt.ArrayLike,
    train_event: npt.ArrayLike,
    train_treatment: npt.ArrayLike,
) -> pd.DataFrame:
    """Effect-recovery table of fitted models and the two baselines on test patients.

    Parameters
    ----------
    models : mapping of name to fitted HazardForecaster
        E.g. ``{"s_learner": ..., "t_learner": ...}``.
    X_test : DataFrame of shape (n_test, n_features)
        Test inputs.
    truth_test : array-like of shape (n_test, n_treatments)
        True risk at the horizon under each treatment.
    train_time, train_event, train_treatment : array-like of shape (n_train,)
        Training follow-up, for the naive per-arm Kaplan-Meier baseline.

    Returns
    -------
    DataFrame
        Rows of :func:`effect_metrics` for each model, ``treatment_agnostic`` (effect 0) and
        ``naive_unadjusted`` (per-arm Kaplan-Meier difference).
    """
    truth = np.asarray(truth_test, dtype=np.float64)
    rows: list[dict[str, Any]] = []
    for name, model in models.items():
        rows += effect_metrics(model.predict_risk(X_test), truth, method=name)
    rows += effect_metrics(np.zeros_like(truth), truth, method="treatment_agnostic")
    naive = naive_risks(train_time, train_event, train_treatment, len(truth))
    rows += effect_metrics(naive, truth, method="naive_unadjusted")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- build stage
def _jsonable(value: Any) -> Any:
    """NaN -> None recursively (PostgreSQL's JSON type rejects NaN)."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def build_forecast(
    store: CohortStore,
    fusion_version: str,
    X: pd.DataFrame,
    outcomes: pd.DataFrame,
    truth: pd.DataFrame | None,
    folder: Path,
    artifacts_dir: Path,
    *,
    n_bootstrap: int = 12,
    build: Mapping[str, Any] | None = None,
    random_state: int = 0,
    anchor_risk: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, save and register the forecast model of one fusion version.

    Fits the S-learner (persisted, served) and the T-learner (compared only) on the training
    split with early stopping on the validation split, then measures on the test split the
    effect recovery (:func:`effect_proof`, synthetic truth only) and the calibration of the
    horizon risk under the received treatment (:func:`calibration_table`). With
    ``anchor_risk`` the served estimate is measured as it is served: anchored to the fused
    risk (:meth:`HazardForecaster.predict_anchored`, method ``s_learner``), with the
    unanchored hazard model as ``s_learner_unanchored``.

    Parameters
    ----------
    store : CohortStore
        Where the model is registered as ``<fusion_version>-forecast`` (kind ``forecast``).
    fusion_version : str
        The fusion model version this forecast belongs to.
    X : DataFrame of shape (n_patients, n_features)
        Fused inputs of every patient, indexed by ``patient_id``.
    outcomes : DataFrame of shape (n_patients, ...)
        Row-aligned with ``X``: ``split, treatment, event_time, event``.
    truth : DataFrame, optional
        Synthetic ground truth: ``patient_id`` and ``true_risk_<treatment>`` per treatment.
    folder : Path
        Output folder of the model files.
    artifacts_dir : Path
        The artifacts root (the registered path is relative to it).
    n_bootstrap : int, default=12
        Bootstrap members of each model.
    build : mapping, optional
        Build identity, stored with the model.
    random_state : int, default=0
        Seed.
    anchor_risk : array-like of shape (n_patients,), optional
        The fused model's risk of every row of ``X`` (what the served curves are anchored to).

    Returns
    -------
    dict
        The registered metrics (JSON-safe): ``anchored`` (bool), ``effects`` (rows of
        :func:`effect_metrics`),
        ``calibration`` (rows of :func:`calibration_table`), ``ece_true``, ``ece_km``,
        ``fit_seconds`` per method, ``n_train``, ``n_test``.
    """
    split = outcomes["split"].to_numpy().astype(str)
    masks = {name: split == name for name in ("train", "val", "test")}

    def part(name: str) -> tuple[pd.DataFrame, FloatArray, FloatArray, npt.NDArray[Any]]:
        rows = masks[name]
        return (
            X.loc[rows],
            outcomes.loc[rows, "event_time"].to_numpy(np.float64),
            outcomes.loc[rows, "event"].to_numpy(np.float64),
            outcomes.loc[rows, "treatment"].to_numpy().astype(str),
        )

    train, val, test = part("train"), part("val"), part("test")
    models: dict[str, HazardForecaster] = {}
    seconds: dict[str, float] = {}
    for method in BUILD_METHODS:
        start = time.perf_counter()
        try:
            models[method] = HazardForecaster(
                method=method, n_bootstrap=n_bootstrap, random_state=random_state
            ).fit(*train, validation=val)
        except ValueError as err:
            if method == "s_learner":
                raise
            # Small cohorts: an arm without events cannot have its own model; compare without.
            warnings.warn(f"Forecast alternative {method!r} skipped: {err}", stacklevel=2)
            continue
        seconds[method] = round(time.perf_counter() - start, 2)
    main = models["s_learner"]

    X_test, time_test, event_test, treatment_test = test
    anchored: FloatArray | None = None
    if anchor_risk is None:
        risk_test = main.predict_risk(X_test)
    else:
        fused = np.asarray(anchor_risk, dtype=np.float64)
        if fused.shape != (len(X),):
            raise ValueError(
                f"anchor_risk has shape {fused.shape}; pass the fused risk of every row of X, "
                f"shape ({len(X)},)."
            )
        anchored = main.predict_anchored(X_test, treatment_test, fused[masks["test"]])[0]
        risk_test = np.asarray(anchored[:, :, -1], dtype=np.float64)
    received = risk_test[np.arange(len(X_test)), _treatment_codes(treatment_test)]
    true_received: FloatArray | None = None
    effects: list[dict[Any, Any]] = []
    if truth is not None:
        columns = [f"true_risk_{t}" for t in TREATMENTS]
        true_test = truth.set_index("patient_id").loc[X_test.index, columns].to_numpy(np.float64)
        true_received = true_test[np.arange(len(X_test)), _treatment_codes(treatment_test)]
        proof = effect_proof(
            models,
            X_test,
            true_test,
            train_time=train[1],
            train_event=train[2],
            train_treatment=train[3],
        )
        if anchored is not None:
            proof["method"] = proof["method"].replace("s_learner", "s_learner_unanchored")
            served = pd.DataFrame(effect_metrics(risk_test, true_test, method="s_learner"))
            proof = pd.concat([served, proof], ignore_index=True)
        effects = proof.to_dict("records")
    table = calibration_table(received, time_test, event_test, true_risk=true_received)
    metrics = _jsonable(
        {
            "method": main.describe(),
            "alternative": (models["t_learner"].describe() if "t_learner" in models else None),
            "horizon": main.horizon,
            "anchored": anchored is not None,
            "effects": effects,
            "calibration": table.to_dict("records"),
            **calibration_errors(table),
            "fit_seconds": seconds,
            "n_train": int(masks["train"].sum()),
            "n_test": int(masks["test"].sum()),
        }
    )
    sha = main.save(folder)
    store.register_model(
        ModelRecord(
            version=f"{fusion_version}{FORECAST_SUFFIX}",
            kind=FORECAST_KIND,
            created_at=datetime.now(UTC),
            artifact_path=str(folder.relative_to(artifacts_dir)),
            sha256=sha,
            metrics=metrics,
            params=_jsonable(
                {"build": dict(build or {}), **main.get_params(), "n_rounds": main.n_rounds_}
            ),
            parent_version=fusion_version,
        ),
        activate=False,
    )
    logger.info(
        "forecast: %s fitted in %.1f s (alternative %s s); test ECE vs truth %s",
        main.describe(),
        seconds["s_learner"],
        seconds.get("t_learner"),
        metrics["ece_true"],
    )
    return dict(metrics)


# ---------------------------------------------------------------------------- headless output
FORECAST_FORMAT_VERSION: Final[int] = 1


def _numbers(values: npt.ArrayLike) -> list[float | None]:
    return [None if math.isnan(v) else round(float(v), 6) for v in np.asarray(values, float)]


def forecast_to_dict(forecast: PatientForecast) -> dict[str, Any]:
    """The JSON document of ``riskfusion forecast`` (format in ``docs/forecast.md``).

    Returns
    -------
    dict
        ``format_version, patient_id, model_version, method, horizon_years, note,
        received_treatment, best_treatment, best_treatment_distinguishable, anchor_risk,
        ground_truth, treatments``; each entry of
        ``treatments`` holds ``treatment, times, risk, lower, upper, true_risk`` (lists over
        ``times``; ``true_risk`` null without ground truth) and the horizon summary
        ``risk_at_horizon, lower_at_horizon, upper_at_horizon, arr, nnt,
        true_risk_at_horizon`` (null when undefined). Missing numbers are ``null``, never NaN.
    """
    effects = forecast.effects.set_index("treatment")
    has_truth = bool(forecast.curves["true_risk"].notna().any())
    treatments = []
    for name, curve in forecast.curves.groupby("treatment", sort=False):
        row = effects.loc[name]
        treatments.append(
            {
                "treatment": str(name),
                "times": _numbers(curve["time"]),
                "risk": _numbers(curve["risk"]),
                "lower": _numbers(curve["lower"]),
                "upper": _numbers(curve["upper"]),
                "true_risk": _numbers(curve["true_risk"]) if has_truth else None,
                "risk_at_horizon": _numbers([row["risk"]])[0],
                "lower_at_horizon": _numbers([row["lower"]])[0],
                "upper_at_horizon": _numbers([row["upper"]])[0],
                "arr": _numbers([row["arr"]])[0],
                "nnt": _numbers([row["nnt"]])[0],
                "true_risk_at_horizon": _numbers([row["true_risk"]])[0],
            }
        )
    return {
        "format_version": FORECAST_FORMAT_VERSION,
        "patient_id": forecast.patient_id,
        "model_version": forecast.model_version,
        "method": forecast.method,
        "horizon_years": forecast.horizon,
        "reference_treatment": REFERENCE_TREATMENT,
        "received_treatment": forecast.received_treatment,
        "best_treatment": forecast.best_treatment,
        "best_treatment_distinguishable": (
            None if forecast.comparison is None else forecast.comparison.distinguishable
        ),
        "anchor_risk": forecast.anchor_risk,
        "ground_truth": has_truth,
        "note": FORECAST_NOTE,
        "treatments": treatments,
    }


def write_forecast_json(forecast: PatientForecast, out: str | Path) -> Path:
    """Write :func:`forecast_to_dict` as indented JSON (atomically: complete or absent).

    Returns
    -------
    Path
        The file written.
    """
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    partial.write_text(json.dumps(forecast_to_dict(forecast), indent=2, allow_nan=False))
    partial.replace(target)
    return target
