"""Proof of the forecast against the synthetic oracle: effect recovery and calibration.

Owns the measures of how well a fitted forecast model recovers the synthetic cohort's true
individual treatment effects (PEHE, Spearman correlation, against a treatment-agnostic and a
naive unadjusted baseline) and how well its horizon risk is calibrated (Kaplan-Meier observed
risk by bin, ECE). Must not import the store, streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from data.vocabulary import HORIZON_YEARS, TREATMENTS
from fusion.forecast.hazard import HazardForecaster
from fusion.forecast.survival import (
    REFERENCE_TREATMENT,
    FloatArray,
    check_survival,
    kaplan_meier,
    treatment_codes,
)

__all__ = [
    "calibration_errors",
    "calibration_table",
    "effect_metrics",
    "effect_proof",
    "naive_risks",
]


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
    t, e = check_survival(time, event)
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
    t, e = check_survival(time, event)
    codes = treatment_codes(treatment)
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
