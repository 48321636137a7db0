"""The boosters of one bootstrap member of the forecast model, per method.

Owns the three learners of the discrete-time hazard (the S-learner: logistic treatment terms
from :mod:`fusion.forecast.terms` with a LightGBM prognosis boosted from their margin; the
T-learner: one LightGBM hazard model per arm; the offset T-learner: a shared LightGBM prognosis
plus per-arm corrections), their LightGBM parameters, early stopping of the boosting rounds and
the hazard of a fitted member. Must not import the store, streamlit or the dashboard.

A plain LightGBM S-learner, with the treatment one input among ~80, barely splits on it and
shrinks the effects to zero (the regularisation bias of tree S-learners, Kunzel et al. 2019,
PNAS 116:4156; measured in ``docs/forecast.md``). The S-learner here therefore holds the
treatment in explicit terms: a ridge-penalised logistic hazard over the interval indicators, the
standardised inputs and their missing indicators, and per treated arm an unpenalised indicator
plus arm x input effect modifiers (elastic net: ridge ``effect_penalty`` plus a lasso that sets
the modifiers that only fit noise to exactly 0). LightGBM then boosts the prognosis from that
margin (``init_score``) on the inputs and the interval only, so the non-linear prognosis is
learnt without absorbing the treatment terms. The hazard is ``sigmoid(logistic margin + booster
margin)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from scipy import special

from data.vocabulary import TREATMENTS
from fusion.forecast.survival import FloatArray
from fusion.forecast.terms import (
    Design,
    fit_treatment_terms,
    person_period_rows,
    slot_columns,
    slot_view,
    treatment_terms,
)

__all__ = [
    "FORECAST_METHODS",
    "METHOD_LABELS",
    "ForecastMethod",
    "MemberSpec",
    "Patients",
    "booster_slots",
    "fit_bootstrap",
    "fit_member",
    "lightgbm_params",
    "member_hazard",
    "tune_rounds",
]

ForecastMethod = Literal["s_learner", "offset_t_learner", "t_learner"]
FORECAST_METHODS: Final[tuple[ForecastMethod, ...]] = ("s_learner", "offset_t_learner", "t_learner")
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

Rows = tuple[Design, npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""Person-period rows: design, labels, treatment index per row."""
Patients = tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64]]
"""Patients: inputs (n_samples, n_features), follow-up, event flag, treatment index."""
BoosterRows = tuple[Design, npt.NDArray[np.int64], FloatArray | None]
"""Rows one booster sees: design view, labels, initial margin (None: none)."""


@dataclass(frozen=True, slots=True, eq=False)
class MemberSpec:
    """Everything a member's learners need, fixed by the fitted estimator.

    Attributes
    ----------
    method : {"s_learner", "offset_t_learner", "t_learner"}
        The learner.
    feature_names : tuple of str
        Patient inputs in model order.
    interval : float
        Interval width in years.
    n_intervals : int
        Number of intervals.
    z_mean, z_scale : ndarray of shape (n_features,)
        Standardisation of the inputs in the logistic terms.
    effect_penalty, effect_lasso : float
        S-learner penalties of the effect modifiers.
    lightgbm : mapping
        LightGBM parameters except the seed.
    min_rounds, max_rounds : int
        Bounds of the boosting rounds.
    """

    method: ForecastMethod
    feature_names: tuple[str, ...]
    interval: float
    n_intervals: int
    z_mean: FloatArray
    z_scale: FloatArray
    effect_penalty: float
    effect_lasso: float
    lightgbm: Mapping[str, Any]
    min_rounds: int
    max_rounds: int

    def terms(self, design: Design, codes: npt.NDArray[np.int64]) -> FloatArray:
        """The S-learner's :func:`fusion.forecast.terms.treatment_terms` of some rows."""
        return treatment_terms(
            design,
            codes,
            z_mean=self.z_mean,
            z_scale=self.z_scale,
            interval=self.interval,
            n_intervals=self.n_intervals,
        )

    def view(self, design: Design, slot: str) -> Design:
        """The columns booster ``slot`` sees (:func:`fusion.forecast.terms.slot_view`)."""
        return slot_view(design, slot, len(self.feature_names))


def lightgbm_params(
    *, learning_rate: float, num_leaves: int, min_child_samples: int, n_jobs: int
) -> dict[str, Any]:
    """LightGBM parameters of every booster, except the seed."""
    return {
        "objective": "binary",
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_child_samples": min_child_samples,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "num_threads": n_jobs,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def booster_slots(method: str) -> list[str]:
    """Booster slots of one member: ``["prognostic"]``, arms, or both.

    Examples
    --------
    >>> booster_slots("offset_t_learner")
    ['prognostic', 'arm_none', 'arm_standard', 'arm_targeted']
    """
    arms = [f"arm_{name}" for name in TREATMENTS]
    if method == "s_learner":
        return ["prognostic"]
    if method == "offset_t_learner":
        return ["prognostic", *arms]
    return arms


def _train(
    spec: MemberSpec,
    n_rounds: list[int],
    slot_index: int,
    rows: BoosterRows,
    seed: int,
    validation: BoosterRows | None,
) -> lgb.Booster:
    """Train one booster; with ``validation``, early stopping sets ``n_rounds[slot_index]``."""
    design, y, init = rows
    slot = booster_slots(spec.method)[slot_index]
    if np.unique(y).size < 2:
        raise ValueError(
            f"No events (or no event-free intervals) for booster {slot!r}; fit on more "
            "patients (or, for the T-learner, on arms with events) or use "
            "method='s_learner'."
        )
    columns = slot_columns(spec.feature_names, slot)
    train = lgb.Dataset(design, label=y, init_score=init, feature_name=columns, free_raw_data=True)
    params = {**spec.lightgbm, "seed": seed}
    if validation is not None and np.unique(validation[1]).size < 2:
        # Too few validation rows to stop early on (a small arm): keep the minimum.
        n_rounds[slot_index] = spec.min_rounds
        validation = None
    if validation is None:
        return lgb.train(params, train, num_boost_round=n_rounds[slot_index])
    v_design, v_y, v_init = validation
    valid = lgb.Dataset(v_design, label=v_y, init_score=v_init, reference=train)
    booster = lgb.train(
        params,
        train,
        num_boost_round=spec.max_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    best = int(booster.best_iteration or spec.max_rounds)
    n_rounds[slot_index] = max(best, spec.min_rounds)
    return booster


def _fit_partially_linear(
    spec: MemberSpec, n_rounds: list[int], rows: Rows, seed: int, validation: Rows | None
) -> tuple[list[lgb.Booster], FloatArray]:
    """Logistic hazard with treatment terms, then LightGBM boosting of the prognosis."""
    design, y, codes = rows
    terms = spec.terms(design, codes)
    theta = fit_treatment_terms(
        terms,
        y,
        n_features=len(spec.feature_names),
        n_intervals=spec.n_intervals,
        effect_penalty=spec.effect_penalty,
        effect_lasso=spec.effect_lasso,
    )
    view = spec.view(design, "prognostic")
    v_rows = None
    if validation is not None:
        v_terms = spec.terms(validation[0], validation[2])
        v_rows = (spec.view(validation[0], "prognostic"), validation[1], v_terms @ theta)
    prognostic = _train(spec, n_rounds, 0, (view, y, terms @ theta), seed, v_rows)
    return [prognostic], theta


def fit_member(
    spec: MemberSpec,
    n_rounds: list[int],
    rows: Rows,
    seed: int,
    *,
    validation: Rows | None = None,
) -> tuple[list[lgb.Booster], FloatArray | None]:
    """Fit one member's boosters (and, S-learner, its treatment terms).

    Parameters
    ----------
    spec : MemberSpec
        The learner and its settings.
    n_rounds : list of int
        Boosting rounds per slot of :func:`booster_slots`; with ``validation`` early stopping
        sets them (in place), without it every booster uses them.
    rows : tuple (design, y, codes)
        Person-period rows to fit on.
    seed : int
        LightGBM seed of the member.
    validation : tuple (design, y, codes), optional
        Person-period rows of the validation patients.

    Returns
    -------
    boosters : list of lightgbm.Booster
        One per slot.
    theta : ndarray or None
        S-learner: the logistic coefficients; None for the other methods.
    """
    if spec.method == "s_learner":
        return _fit_partially_linear(spec, n_rounds, rows, seed, validation)
    design, y, codes = rows
    boosters = []
    offset = spec.method == "offset_t_learner"
    arm_view = spec.view(design, "arm")
    base: FloatArray | None = None
    v_rows: BoosterRows | None = None
    if validation is not None:
        v_rows = (spec.view(validation[0], "arm"), validation[1], None)
    if offset:
        prognostic = _train(spec, n_rounds, 0, (arm_view, y, None), seed, v_rows)
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
        arm_rows = (arm_view[arm], y[arm], None if base is None else base[arm])
        boosters.append(
            _train(spec, n_rounds, code + int(offset), arm_rows, seed + 1 + code, v_data)
        )
    return boosters, None


def member_hazard(
    spec: MemberSpec,
    boosters: Sequence[lgb.Booster],
    design: Design,
    codes: npt.NDArray[np.int64],
    theta: FloatArray | None = None,
) -> FloatArray:
    """Interval hazard of one fitted member on person-period rows, shape (n_rows,)."""
    if spec.method == "s_learner":
        view = spec.view(design, "prognostic")
        margin = boosters[0].predict(view, raw_score=True)
        if theta is not None:
            margin = margin + spec.terms(design, codes) @ theta
    else:
        view = spec.view(design, "arm")
        margin = np.zeros(len(design), dtype=np.float64)
        arms = boosters
        if spec.method == "offset_t_learner":
            margin += boosters[0].predict(view, raw_score=True)
            arms = boosters[1:]
        for code, booster in enumerate(arms):
            rows = codes == code
            margin[rows] += booster.predict(view[rows], raw_score=True)
    return np.asarray(special.expit(margin), dtype=np.float64)


def fit_bootstrap(
    spec: MemberSpec,
    n_rounds: list[int],
    patients: Patients,
    *,
    n_bootstrap: int,
    random_state: int,
) -> tuple[list[list[lgb.Booster]], list[FloatArray | None]]:
    """Fit the bootstrap members on patient-level resamples.

    Parameters
    ----------
    spec : MemberSpec
        The learner and its settings.
    n_rounds : list of int
        Boosting rounds per slot (see :func:`fit_member`).
    patients : tuple (values, time, event, codes)
        Inputs of shape (n_samples, n_features) and follow-up, event flag and treatment index
        of shape (n_samples,).
    n_bootstrap : int
        Number of members.
    random_state : int
        Seed of the resampling; member ``b`` boosts with seed ``random_state + 1000 * (b + 1)``.

    Returns
    -------
    members : list of list of lightgbm.Booster
        Each member's boosters.
    coefs : list of ndarray or None
        Each member's logistic coefficients (S-learner) or None.
    """
    values, time, event, codes = patients
    rng = np.random.default_rng(random_state)
    members: list[list[lgb.Booster]] = []
    coefs: list[FloatArray | None] = []
    for b in range(n_bootstrap):
        draw = rng.integers(0, time.size, time.size)
        rows = person_period_rows(
            values[draw], time[draw], event[draw], codes[draw], spec.interval, spec.n_intervals
        )
        boosters, theta = fit_member(spec, n_rounds, rows, random_state + 1000 * (b + 1))
        members.append(boosters)
        coefs.append(theta)
    return members, coefs


def tune_rounds(
    spec: MemberSpec, n_rounds: list[int], patients: Patients, validation: Patients, *, seed: int
) -> None:
    """Set ``n_rounds`` (in place) by early stopping of one member fitted on all patients.

    Parameters
    ----------
    spec : MemberSpec
        The learner and its settings.
    n_rounds : list of int
        Boosting rounds per slot of :func:`booster_slots`, overwritten.
    patients, validation : tuple (values, time, event, codes)
        Training and validation patients.
    seed : int
        LightGBM seed.
    """
    rows = person_period_rows(*patients, spec.interval, spec.n_intervals)
    v_rows = person_period_rows(*validation, spec.interval, spec.n_intervals)
    fit_member(spec, n_rounds, rows, seed, validation=v_rows)
