"""The treatment-forecast estimator: risk over time under each treatment option, with a band.

Owns :class:`HazardForecaster` (a discrete-time hazard model on the fused features with the
treatment as an input, boosted by LightGBM, with a bootstrap band), its parameter checks and its
persistence (LightGBM text files listed in a manifest, SHA-256 checked). Must not import the
store, streamlit or the dashboard.

Method, in short (see ``docs/forecast.md``): the interval hazard ``h_k(x, a)`` depends on the
features ``x``, the interval and the treatment ``a``, learnt by the S-learner (default, served)
or a T-learner (compared in the proof and the bench; :mod:`fusion.forecast.learners`).
Adjustment is by conditioning on the measured confounders (every fused input: demographics,
EHR, genomics, scan score), which identifies the effect only under the no-unmeasured-confounding
and positivity assumptions. Served curves are anchored (:meth:`HazardForecaster.predict_anchored`,
:func:`fusion.forecast.survival.anchor_hazards`): under the treatment received they reach the
fused model's risk at the horizon (one risk per patient on every page), and the treatment
effects are modelled on top of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from data.artifacts import file_digest, verified_file
from data.vocabulary import TREATMENTS
from fusion.forecast.learners import (
    FORECAST_METHODS,
    METHOD_LABELS,
    ForecastMethod,
    MemberSpec,
    Patients,
    booster_slots,
    fit_bootstrap,
    lightgbm_params,
    member_hazard,
    tune_rounds,
)
from fusion.forecast.survival import (
    INTERVAL_YEARS,
    N_INTERVALS,
    FloatArray,
    anchored_band,
    check_survival,
    cumulative_risk,
    summarise_members,
    treatment_codes,
)
from fusion.forecast.terms import option_design, standardisation

__all__ = ["MANIFEST_FILE", "HazardForecaster"]

logger = logging.getLogger(__name__)

MANIFEST_FILE: Final[str] = "manifest.json"
"""The file of a saved model that lists its booster files and their SHA-256."""


def _check_params(model: HazardForecaster) -> None:
    """Validate the estimator's parameters (scikit-learn rule: in ``fit``, not ``__init__``)."""
    if model.method not in FORECAST_METHODS:
        raise ValueError(
            f"Unknown forecast method {model.method!r}; choose one of {list(FORECAST_METHODS)}."
        )
    if not isinstance(model.n_bootstrap, int) or model.n_bootstrap < 1:
        raise ValueError(f"n_bootstrap={model.n_bootstrap!r}; pass an integer >= 1, e.g. 12.")
    if not 0.0 < model.band < 1.0:
        raise ValueError(f"band={model.band!r}; pass a coverage in (0, 1), e.g. 0.9.")
    if model.interval <= 0 or model.n_intervals < 1:
        raise ValueError(
            f"interval={model.interval}, n_intervals={model.n_intervals}; use a positive "
            "width and at least one interval."
        )
    if not 1 <= model.min_rounds <= model.max_rounds:
        raise ValueError(
            f"min_rounds={model.min_rounds}, max_rounds={model.max_rounds}; need "
            "1 <= min_rounds <= max_rounds."
        )
    if not (model.effect_penalty >= 0 and model.effect_lasso >= 0):
        raise ValueError(
            f"effect_penalty={model.effect_penalty!r}, effect_lasso={model.effect_lasso!r}; "
            "pass penalties >= 0, e.g. 10.0 and 1.0."
        )


def _inputs(X: pd.DataFrame, feature_names: npt.NDArray[Any] | None) -> FloatArray:
    """``X`` as float64 values, checked against the model's inputs when fitted."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame with named columns; got {type(X)}.")
    if feature_names is not None and list(X.columns) != list(feature_names):
        raise ValueError(
            "X columns differ from the forecast model's inputs; build X with "
            "fusion.features.build_feature_matrix and the fusion feature set."
        )
    return np.asarray(X.to_numpy(dtype=np.float64), dtype=np.float64)


def _patients(
    X: pd.DataFrame,
    time: npt.ArrayLike,
    event: npt.ArrayLike,
    treatment: npt.ArrayLike,
    feature_names: npt.NDArray[Any] | None,
) -> Patients:
    """Checked inputs, follow-up, event flags and treatment indices of some patients."""
    values = _inputs(X, feature_names)
    t, e = check_survival(time, event)
    codes = treatment_codes(treatment)
    if t.size != len(X) or codes.size != len(X):
        raise ValueError(
            f"X has {len(X)} rows but time/event/treatment have {t.size}/{codes.size}; "
            "pass one value per patient."
        )
    return values, t, e, codes


def _member_spec(model: HazardForecaster) -> MemberSpec:
    """The fitted settings every member's learners share."""
    return MemberSpec(
        method=model.method,
        feature_names=tuple(str(n) for n in model.feature_names_in_),
        interval=model.interval,
        n_intervals=model.n_intervals,
        z_mean=model.z_mean_,
        z_scale=model.z_scale_,
        effect_penalty=model.effect_penalty,
        effect_lasso=model.effect_lasso,
        lightgbm=lightgbm_params(
            learning_rate=model.learning_rate,
            num_leaves=model.num_leaves,
            min_child_samples=model.min_child_samples,
            n_jobs=model.n_jobs,
        ),
        min_rounds=model.min_rounds,
        max_rounds=model.max_rounds,
    )


def _manifest(model: HazardForecaster, target: Path) -> dict[str, Any]:
    """Write every booster as LightGBM text; return the manifest listing them (with SHA-256)."""
    files: list[list[dict[str, str]]] = []
    for b, boosters in enumerate(model.members_):
        entry = []
        for slot, booster in zip(booster_slots(model.method), boosters, strict=True):
            name = f"member_{b:02d}_{slot}.txt"
            booster.save_model(str(target / name))
            entry.append({"file": name, "sha256": file_digest(target / name)})
        files.append(entry)
    return {
        "params": model.get_params(),
        "feature_names": [str(n) for n in model.feature_names_in_],
        "n_rounds": model.n_rounds_,
        "z_mean": model.z_mean_.tolist(),
        "z_scale": model.z_scale_.tolist(),
        "coefs": [None if c is None else c.tolist() for c in model.coefs_],
        "members": files,
    }


def _read_manifest(root: Path, expected_sha256: str) -> dict[str, Any]:
    """The manifest of a saved model, verified against its registered SHA-256."""
    path = verified_file(root / MANIFEST_FILE, expected_sha256, what="Forecast manifest")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def _restore(model: HazardForecaster, root: Path, manifest: Mapping[str, Any]) -> HazardForecaster:
    """Set the fitted attributes from a verified manifest, checking each booster's SHA-256."""
    members = []
    for entry in manifest["members"]:
        boosters = []
        for item in entry:
            file = verified_file(
                root / str(item["file"]),
                str(item["sha256"]),
                what="Forecast model file",
                expected_from="the SHA-256 in its manifest",
            )
            boosters.append(lgb.Booster(model_file=str(file)))
        members.append(boosters)
    model.feature_names_in_ = np.asarray(manifest["feature_names"], dtype=object)
    model.n_rounds_ = [int(n) for n in manifest["n_rounds"]]
    model.members_ = members
    model.z_mean_ = np.asarray(manifest["z_mean"], dtype=np.float64)
    model.z_scale_ = np.asarray(manifest["z_scale"], dtype=np.float64)
    model.coefs_ = [None if c is None else np.asarray(c, np.float64) for c in manifest["coefs"]]
    model.times_ = np.arange(model.n_intervals + 1, dtype=np.float64) * model.interval
    return model


class HazardForecaster(BaseEstimator):  # type: ignore[misc]
    """Discrete-time hazard model of the cumulative risk under each treatment option.

    Parameters
    ----------
    method : {"s_learner", "offset_t_learner", "t_learner"}, default="s_learner"
        ``"s_learner"``: the treatment is an input of one hazard model (see the module notes);
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
        universal threshold of each term's score (see :mod:`fusion.forecast.terms`); 0 leaves
        the ridge alone.
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

    @property
    def horizon(self) -> float:
        """Last curve time in years (``interval * n_intervals``)."""
        return float(self.interval * self.n_intervals)

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
        _check_params(self)
        patients = _patients(X, time, event, treatment, None)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_rounds_ = [self.max_rounds for _ in booster_slots(self.method)]
        self.z_mean_, self.z_scale_ = standardisation(patients[0])
        spec = _member_spec(self)
        if validation is not None:
            held_out = _patients(*validation, self.feature_names_in_)
            tune_rounds(spec, self.n_rounds_, patients, held_out, seed=self.random_state)
        self.members_, self.coefs_ = fit_bootstrap(
            spec,
            self.n_rounds_,
            patients,
            n_bootstrap=self.n_bootstrap,
            random_state=self.random_state,
        )
        self.times_ = np.arange(self.n_intervals + 1, dtype=np.float64) * self.interval
        logger.info(
            "forecast model fitted: %s, %d members, rounds %s on %d patients",
            self.method,
            len(self.members_),
            self.n_rounds_,
            len(X),
        )
        return self

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
        values = _inputs(X, self.feature_names_in_)
        design, codes = option_design(values, self.n_intervals, self.interval)
        spec, shape = _member_spec(self), (len(X), len(TREATMENTS), self.n_intervals)
        hazards = np.zeros((len(self.members_), *shape), dtype=np.float64)
        for b, boosters in enumerate(self.members_):
            hazards[b] = member_hazard(spec, boosters, design, codes, self.coefs_[b]).reshape(shape)
        return hazards

    def predict_member_curves(self, X: pd.DataFrame) -> FloatArray:
        """Cumulative risk curves of every member under every treatment.

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
        return summarise_members(self.predict_member_curves(X), self.band)

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

        Each member's hazards are shifted by one logit constant per patient so that its curve
        under ``received`` reaches ``risk`` at the horizon, the treatment terms on top
        (:func:`fusion.forecast.survival.anchored_band`).

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
            holds only the bootstrap spread of the treatment effects.

        Returns
        -------
        risk, lower, upper : ndarray of shape (n_samples, n_treatments, n_intervals + 1)
            Anchored point estimate and band.
        horizon_members : ndarray of shape (n_bootstrap, n_samples, n_treatments)
            Each member's anchored risk at the horizon (for
            :func:`fusion.forecast.patient.compare_options`).

        Raises
        ------
        ValueError
            If a treatment is unknown or the anchors are not probabilities of shape
            (n_samples,).
        """
        codes = treatment_codes(received)
        hazards = self.predict_member_hazards(X)
        return anchored_band(hazards, codes, risk, low=low, high=high, band=self.band)

    def describe(self) -> str:
        """Readable method name, e.g. for ``PatientForecast.method``."""
        check_is_fitted(self)
        return (
            f"{METHOD_LABELS[self.method]}, {len(self.members_)}-model bootstrap "
            f"{round(100 * self.band)}% band"
        )

    def save(self, folder: str | Path) -> str:
        """Write every booster as LightGBM text plus a manifest; return the manifest's SHA-256.

        The manifest lists each booster file with its SHA-256, so :meth:`load` verifies every
        file before LightGBM reads it (a truncated model file aborts the process).
        """
        check_is_fitted(self)
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        path = target / MANIFEST_FILE
        path.write_text(json.dumps(_manifest(self, target), indent=2))
        return file_digest(path)

    @classmethod
    def load(cls, folder: str | Path, *, expected_sha256: str) -> HazardForecaster:
        """Load a model saved by :meth:`save`, verifying the manifest and every booster file.

        Raises
        ------
        ArtifactIntegrityError
            If the manifest or a booster is missing or differs from its registered SHA-256.
        """
        manifest = _read_manifest(Path(folder), expected_sha256)
        return _restore(cls(**manifest["params"]), Path(folder), manifest)
