"""Does each modality add anything? Its out-of-fold value, and the rule that drops it if not.

Owns the modality-value step of ``riskfusion train`` (``docs/models.md``, "Modality value"):
after the fusion model is chosen, on train+validation only (never the test split),

1. K-fold cross-validated risks of the chosen model's settings with every kept input, and with
   one modality's inputs withheld (leave-one-modality-out), on the same folds;
2. the gain when the modality is added: AUROC(with) - AUROC(without) and log-loss(without) -
   log-loss(with), each with a paired percentile bootstrap 95% CI over patients
   (:func:`fusion.evaluation.bootstrap.paired_draws`);
3. its signal of its own: the out-of-fold AUROC of a regularised logistic regression on the
   modality's inputs alone (:func:`signal_model`), with its 95% CI;
4. the pre-declared rule: a modality is kept when the CI of at least one of its two gains lies
   wholly above 0, or when its AUROC alone has a CI wholly above 0.5 (it carries signal,
   perhaps shared with another modality); otherwise it adds nothing measurable and is
   dropped. Modalities are removed
   one at a time, the weakest (lowest log-loss gain) first, and the others' gains measured again
   without it, so two modalities that carry the same signal do not both go. Demographics are the
   base every modality is added to and are always kept, and the last modality left is kept.
5. When a modality is dropped, the fusion model is refitted with that modality's inputs
   withheld (set to missing in every training and validation row): no tree can split on them,
   so the served risk does not depend on them and their TreeSHAP values are exactly 0. The
   inputs stay in the model's input list, so scoring, intervals and stored explanations keep
   their shape; :func:`unused_modalities` tells the pages which ones the risk ignores.

Pure: data in, records out; no store, no streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from data.vocabulary import MASKABLE_MODALITIES, MODALITY_LABELS
from fusion.evaluation.bootstrap import paired_draws, percentile_bounds
from fusion.features import FeatureSet, mask_modalities, modality_columns
from fusion.training.training_data import stratified_folds

__all__ = [
    "VALUE_FOLDS",
    "VALUE_RESAMPLES",
    "ModalityValue",
    "describe_modality",
    "keep_valuable_modalities",
    "modality_gains",
    "unused_modalities",
    "unused_note",
    "value_table",
    "value_view",
]

VALUE_FOLDS = 5
"""Cross-validation folds over train+validation."""
VALUE_RESAMPLES = 1000
"""Paired bootstrap resamples of the gains' 95% CIs."""
Row = Mapping[str, Any] | pd.Series
"""One modality's measurements: a table row or its dict."""
SIGNAL_C = 0.1
"""Inverse L2 strength of the modality-alone logistic regression (:func:`signal_model`)."""
TABLE_COLUMNS = (
    "auroc_gain",
    "auroc_low",
    "auroc_high",
    "log_loss_gain",
    "log_loss_low",
    "log_loss_high",
    "alone_auroc",
    "alone_low",
    "alone_high",
    "decision",
    "reason",
)


@dataclass(frozen=True, slots=True)
class ModalityValue:
    """What each modality adds out of fold, and what the rule decided.

    Attributes
    ----------
    model : estimator
        The fusion model to serve: the chosen one when nothing was dropped, otherwise the same
        settings refitted with the dropped modalities' inputs withheld.
    kept : FeatureSet
        The inputs the served risk can depend on.
    dropped : tuple of str
        Modalities the risk does not use, in :data:`data.vocabulary.MASKABLE_MODALITIES` order.
    table : DataFrame
        One row per assessed modality (index ``modality``), columns :data:`TABLE_COLUMNS`.
    n_patients : int
        Train+validation patients the gains were measured on.
    """

    model: Any
    kept: FeatureSet
    dropped: tuple[str, ...]
    table: pd.DataFrame
    n_patients: int

    def to_metrics(self) -> dict[str, Any]:
        """JSON-safe form for the registry (``metrics["modality_value"]``)."""
        return {
            "n_patients": self.n_patients,
            "folds": VALUE_FOLDS,
            "resamples": VALUE_RESAMPLES,
            "dropped": list(self.dropped),
            "rows": [
                {"modality": str(name), **{k: _plain(row[k]) for k in TABLE_COLUMNS}}
                for name, row in self.table.iterrows()
            ],
        }


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, float | np.floating) else str(value)


def value_table(metrics: Mapping[str, Any] | None) -> pd.DataFrame:
    """The table of :meth:`ModalityValue.to_metrics` back as a DataFrame (empty if absent)."""
    rows = [] if metrics is None else list(metrics.get("rows", []))
    table = pd.DataFrame(rows, columns=["modality", *TABLE_COLUMNS])
    return table.set_index("modality")


def value_view(metrics: Mapping[str, Any] | None) -> pd.DataFrame:
    """The table in words for pages: one row per modality, gains with their 95% CIs.

    Examples
    --------
    >>> row = {"modality": "imaging", "auroc_gain": -0.01, "auroc_low": -0.04,
    ...        "auroc_high": 0.02, "log_loss_gain": -0.002, "log_loss_low": -0.01,
    ...        "log_loss_high": 0.004, "alone_auroc": 0.52, "alone_low": 0.41,
    ...        "alone_high": 0.63, "decision": "dropped", "reason": "no gain"}
    >>> value_view({"rows": [row]}).iloc[0].tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['Imaging', '-0.01 (-0.04 to 0.02)', '-0.002 (-0.010 to 0.004)', '0.52 (0.41 to 0.63)',
     'not used by the risk', 'no gain']
    """
    table = value_table(metrics)
    return pd.DataFrame(
        {
            "Modality": [MODALITY_LABELS.get(str(m), str(m)) for m in table.index],
            "AUROC gain (95% CI)": [
                f"{r.auroc_gain:.2f} ({r.auroc_low:.2f} to {r.auroc_high:.2f})"
                for r in table.itertuples()
            ],
            "Log-loss gain (95% CI)": [
                f"{r.log_loss_gain:.3f} ({r.log_loss_low:.3f} to {r.log_loss_high:.3f})"
                for r in table.itertuples()
            ],
            "AUROC alone (95% CI)": [
                f"{r.alone_auroc:.2f} ({r.alone_low:.2f} to {r.alone_high:.2f})"
                for r in table.itertuples()
            ],
            "Decision": [
                "not used by the risk" if d == "dropped" else "used" for d in table["decision"]
            ],
            "Reason": [str(r) for r in table["reason"]],
        }
    )


def unused_modalities(metrics: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Modalities a fusion version's risk does not use (from its ``modality_value`` metrics)."""
    return () if metrics is None else tuple(str(m) for m in metrics.get("dropped", []))


def _fold_estimator(model: Any) -> Any:
    """An unfitted copy of the chosen model, with its early-stopped number of rounds fixed."""
    estimator = clone(model)
    rounds = getattr(model, "best_iteration_", None)
    if rounds is not None and "n_estimators" in estimator.get_params():
        estimator.set_params(n_estimators=max(int(rounds), 1))
    return estimator


def signal_model() -> Pipeline:
    """The modality-alone model: mean imputation, standardisation, L2 logistic (C=0.1).

    Stable on a few dozen patients and many inputs, where boosted trees on one modality are
    mostly noise; used only to ask whether a modality carries any signal of its own.
    """
    return make_pipeline(
        SimpleImputer(strategy="mean", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=SIGNAL_C, max_iter=1000),
    )


def _oof_risk(
    model: Any, X: pd.DataFrame, y: npt.NDArray[np.int64], folds: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    risk = np.empty(len(X))
    for k in np.unique(folds):
        held = folds == k
        fitted = _fold_estimator(model).fit(X[~held], y[~held])
        risk[held] = fitted.predict_proba(X[held])[:, 1]
    return risk


def modality_gains(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    columns: Mapping[str, Sequence[str]],
    candidates: Sequence[str],
    *,
    withheld: Sequence[str] = (),
    n_folds: int = VALUE_FOLDS,
    n_resamples: int = VALUE_RESAMPLES,
    random_state: int = 0,
) -> pd.DataFrame:
    """Out-of-fold gain of adding each candidate modality to every other kept input.

    Parameters
    ----------
    model : estimator
        The chosen fusion model (fitted or not); each fold fits a clone of it.
    X : DataFrame of shape (n_samples, n_features)
        Inputs of train+validation patients only.
    y : array-like of shape (n_samples,)
        0/1 outcomes.
    columns : mapping of modality to sequence of str
        The inputs of each modality (:func:`fusion.features.modality_columns`).
    candidates : sequence of str
        Modalities to assess.
    withheld : sequence of str, default=()
        Modalities already dropped (withheld from every fit).
    n_folds : int, default=5
    n_resamples : int, default=1000
    random_state : int, default=0
        Seed of the folds and of the bootstrap.

    Returns
    -------
    DataFrame
        Index ``modality``; ``auroc_gain, auroc_low, auroc_high, log_loss_gain, log_loss_low,
        log_loss_high`` (positive = the modality helps).
    """
    labels = np.asarray(y).astype(np.int64)
    folds = stratified_folds(labels, n_folds, random_state)
    base = mask_modalities(X, columns, withheld)
    risks = [_oof_risk(model, base, labels, folds)]
    for modality in candidates:
        risks.append(_oof_risk(model, mask_modalities(base, columns, [modality]), labels, folds))
    for modality in candidates:  # the modality's own inputs only: does it carry any signal?
        alone = X.loc[:, list(columns[modality])]
        risks.append(_oof_risk(signal_model(), alone, labels, folds))
    point, draws = paired_draws(
        labels, np.column_stack(risks), n_resamples=n_resamples, random_state=random_state
    )
    n = len(candidates)
    without = slice(1, 1 + n)
    auroc_gain = point["auroc"][0] - point["auroc"][without]
    loss_gain = point["log_loss"][without] - point["log_loss"][0]
    auroc_low, auroc_high = percentile_bounds(draws["auroc"][:, :1] - draws["auroc"][:, without])
    loss_low, loss_high = percentile_bounds(
        draws["log_loss"][:, without] - draws["log_loss"][:, :1]
    )
    alone_low, alone_high = percentile_bounds(draws["auroc"][:, 1 + n :])
    return pd.DataFrame(
        {
            "auroc_gain": auroc_gain,
            "auroc_low": auroc_low,
            "auroc_high": auroc_high,
            "log_loss_gain": loss_gain,
            "log_loss_low": loss_low,
            "log_loss_high": loss_high,
            "alone_auroc": point["auroc"][1 + n :],
            "alone_low": alone_low,
            "alone_high": alone_high,
        },
        index=pd.Index(list(candidates), name="modality"),
    )


def _adds_value(row: Row) -> bool:
    """The pre-declared rule: a gain whose 95% CI lies above 0, or signal of its own."""
    return _gains(row) or _own_signal(row)


def _gains(row: Row) -> bool:
    return bool(row["auroc_low"] > 0 or row["log_loss_low"] > 0)


def _own_signal(row: Row) -> bool:
    return bool(row["alone_low"] > 0.5)


def keep_valuable_modalities(
    model: Any,
    X: pd.DataFrame,
    y: npt.ArrayLike,
    train: npt.ArrayLike,
    val: npt.ArrayLike,
    features: FeatureSet,
    *,
    n_folds: int = VALUE_FOLDS,
    n_resamples: int = VALUE_RESAMPLES,
    random_state: int = 0,
) -> ModalityValue:
    """Measure each modality's value inside train+validation and drop those that add nothing.

    Parameters
    ----------
    model : estimator
        The chosen fusion model, fitted on the training split with early stopping on the
        validation split (``fit(X, y, X_val=..., y_val=...)``).
    X : DataFrame of shape (n_samples, n_features)
        Every patient's inputs, in ``features`` order (test rows are never read).
    y : array-like of shape (n_samples,)
        0/1 outcomes.
    train, val : array-like of bool of shape (n_samples,)
        The training and validation rows.
    features : FeatureSet
        The model inputs.
    n_folds, n_resamples, random_state
        See :func:`modality_gains`.

    Returns
    -------
    ModalityValue
    """
    train_rows = np.asarray(train, dtype=bool)
    val_rows = np.asarray(val, dtype=bool)
    inside = train_rows | val_rows
    labels = np.asarray(y).astype(np.int64)
    columns = modality_columns(features)
    remaining = [m for m in MASKABLE_MODALITIES if columns.get(m)]
    base_inputs = len(features.names) - sum(len(columns[m]) for m in remaining)
    rows: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    while remaining:
        gains = modality_gains(
            model,
            X.loc[inside],
            labels[inside],
            columns,
            remaining,
            withheld=dropped,
            n_folds=n_folds,
            n_resamples=n_resamples,
            random_state=random_state,
        )
        measured: dict[str, dict[str, Any]] = {
            str(m): {str(k): v for k, v in gains.loc[m].items()} for m in remaining
        }
        failing = [m for m in remaining if not _adds_value(measured[m])]
        rows.update(measured)
        if not failing or (len(remaining) == 1 and base_inputs == 0):
            break
        weakest = min(failing, key=lambda m: float(measured[m]["log_loss_gain"]))
        dropped.append(weakest)
        remaining.remove(weakest)
    assessed = [m for m in MASKABLE_MODALITIES if m in rows]
    table = pd.DataFrame([rows[m] for m in assessed], index=pd.Index(assessed, name="modality"))
    table["decision"] = ["dropped" if m in dropped else "kept" for m in assessed]
    table["reason"] = [_reason(rows[m], m in dropped) for m in assessed]
    order = tuple(m for m in MASKABLE_MODALITIES if m in dropped)
    served = model
    if order:
        served = clone(model).fit(
            mask_modalities(X.loc[train_rows], columns, order),
            labels[train_rows],
            X_val=mask_modalities(X.loc[val_rows], columns, order),
            y_val=labels[val_rows],
        )
    kept_modalities = [m for m in dict.fromkeys(features.modalities) if m not in order]
    return ModalityValue(
        model=served,
        kept=features.subset(kept_modalities),
        dropped=order,
        table=table.loc[:, list(TABLE_COLUMNS)],
        n_patients=int(inside.sum()),
    )


def _reason(row: Row, dropped: bool) -> str:
    """Why the rule kept or dropped a modality, in words."""
    if dropped:
        if row["auroc_gain"] <= 0 and row["log_loss_gain"] <= 0:
            return "no gain: the model does as well or better without it, and no signal alone"
        return "its gains' 95% CIs include 0 and its AUROC alone's CI includes 0.5"
    if _gains(row):
        return f"its {'AUROC' if row['auroc_low'] > 0 else 'log-loss'} gain's 95% CI lies above 0"
    if _own_signal(row):
        return "signal of its own (AUROC alone, CI above 0.5), no measurable gain over the others"
    return "the last modality left: kept so that the model has inputs"


HAS_MODALITY = {"imaging": "a scan", "genomics": "genomic results", "ehr": "EHR results"}


def unused_note(modality: str, row: Row) -> str:
    """What the patient page says about a modality the patient has and the risk does not use.

    Examples
    --------
    >>> row = {"auroc_gain": -0.01, "auroc_low": -0.04, "auroc_high": 0.02}
    >>> print(unused_note("imaging", row))  # doctest: +NORMALIZE_WHITESPACE
    Imaging: this patient has a scan, but the risk model does not use it: in training it
    added nothing measurable (AUROC gain -0.01, 95% CI -0.04 to 0.02), so it does not move
    this risk.
    """
    label = MODALITY_LABELS.get(modality, modality)
    return (
        f"{label}: this patient has {HAS_MODALITY.get(modality, label + ' results')}, but the "
        "risk model does not use it: in training it added nothing measurable (AUROC gain "
        f"{row['auroc_gain']:.2f}, 95% CI {row['auroc_low']:.2f} to {row['auroc_high']:.2f}), so "
        "it does not move this risk."
    )


def describe_modality(modality: str, row: Row) -> str:
    """One plain sentence about a modality's value and what the rule did with it.

    Examples
    --------
    >>> row = {"auroc_gain": -0.01, "auroc_low": -0.04, "auroc_high": 0.02,
    ...        "log_loss_gain": -0.002, "log_loss_low": -0.01, "log_loss_high": 0.004,
    ...        "alone_auroc": 0.52, "alone_low": 0.41, "alone_high": 0.63, "decision": "dropped"}
    >>> print(describe_modality("imaging", row))  # doctest: +NORMALIZE_WHITESPACE
    Imaging: adds nothing measurable (AUROC gain -0.01, 95% CI -0.04 to 0.02; log-loss gain
    -0.002, 95% CI -0.010 to 0.004; AUROC alone 0.52, 95% CI 0.41 to 0.63): not used by the
    risk
    """
    label = MODALITY_LABELS.get(modality, modality)
    numbers = (
        f"AUROC gain {row['auroc_gain']:.2f}, 95% CI {row['auroc_low']:.2f} to "
        f"{row['auroc_high']:.2f}; log-loss gain {row['log_loss_gain']:.3f}, 95% CI "
        f"{row['log_loss_low']:.3f} to {row['log_loss_high']:.3f}; AUROC alone "
        f"{row['alone_auroc']:.2f}, 95% CI {row['alone_low']:.2f} to {row['alone_high']:.2f}"
    )
    if row["decision"] == "dropped":
        return f"{label}: adds nothing measurable ({numbers}): not used by the risk"
    if _gains(row):
        return f"{label}: adds measurable value ({numbers}): used"
    if _own_signal(row):
        return (
            f"{label}: carries signal of its own but no measurable gain over the other "
            f"modalities ({numbers}): used"
        )
    return f"{label}: adds nothing measurable ({numbers}), but kept as the last modality left"
