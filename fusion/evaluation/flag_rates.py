"""How often the audit's flags fire when nothing is wrong: simulation on the unbiased demo world.

Owns :func:`false_flag_rate`, the measurement behind the documented false-flag rate of the bias
audit (docs/models.md): many small test splits are drawn from the unbiased synthetic world
(:func:`data.synthetic.generate_cohort` with ``bias=None``), each is audited as
``riskfusion audit`` would, and the share of audits with at least one false flag is counted.
No imaging is needed: the predictions are the world's true risk, optionally with logit noise
(a model that is equally good for everyone). Two nulls are measured:

* ``permuted``: the attribute's values are shuffled across patients (group sizes kept), so every
  metric is equal in every group: any flag is false (the global null).
* ``calibration``: the real attribute, predictions = the true risk (calibrated in every group),
  so calibration-in-the-large is 0 in every group: a flag on it is false, while the other
  metrics may differ for real (case mix) and are not counted.

Run ``python -m fusion.evaluation.flag_rates`` for the table in the docs. Must not import SQL or
streamlit.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from data.synthetic import generate_cohort
from fusion.evaluation.fairness import audit
from fusion.evaluation.flags import DEFAULT_ALPHA, FLAG_METHODS, TESTED_METRICS

__all__ = ["FlagRate", "false_flag_rate", "main"]

Null = Literal["permuted", "calibration"]


@dataclass(frozen=True, slots=True)
class FlagRate:
    """Outcome of :func:`false_flag_rate`.

    Attributes
    ----------
    audits : int
        Simulated audits.
    with_false_flag : int
        Audits with at least one false flag.
    comparisons : float
        Mean number of comparisons adjusted together per audit.
    """

    audits: int
    with_false_flag: int
    comparisons: float

    @property
    def rate(self) -> float:
        """Share of audits with at least one false flag."""
        return self.with_false_flag / self.audits if self.audits else float("nan")


def false_flag_rate(
    n_audits: int = 200,
    *,
    n_patients: int = 400,
    attribute: str = "site",
    null: Null = "permuted",
    method: str = "holm",
    alpha: float = DEFAULT_ALPHA,
    noise: float = 0.5,
    n_resamples: int = 200,
    min_cell: int = 11,
    seed: int = 0,
) -> FlagRate:
    """Share of simulated audits of the unbiased demo world with at least one false flag.

    Parameters
    ----------
    n_audits : int, default=200
        Simulated test splits (each a fresh unbiased world of ``n_patients``, seed ``seed + k``).
    n_patients : int, default=400
        Patients per test split (the default demo's test split has 400).
    attribute : str, default="site"
        ``sex``, ``ethnicity`` or ``site``.
    null : {"permuted", "calibration"}, default="permuted"
        Which null is simulated (see the module docstring).
    method : {"holm", "bh"}, default="holm"
        The flags' multiplicity adjustment.
    alpha : float, default=0.05
        The flags' level.
    noise : float, default=0.5
        Standard deviation of the logit noise added to the true risk (``permuted`` only; the
        ``calibration`` null needs calibrated predictions and uses none).
    n_resamples, min_cell : int
        As :func:`fusion.evaluation.fairness.audit`.
    seed : int, default=0
        First world seed; the shuffles and noise come from the same seed.

    Returns
    -------
    FlagRate
    """
    if null not in ("permuted", "calibration"):
        raise ValueError(f"null={null!r}; choose 'permuted' or 'calibration'.")
    counted = TESTED_METRICS if null == "permuted" else ("calibration_in_the_large",)
    rng = np.random.default_rng(seed)
    false_flags = 0
    comparisons = 0
    for k in range(n_audits):
        world = generate_cohort(n_patients, seed + k, image_size=16, bias=None)
        truth = world.truth["true_risk"].to_numpy(dtype=np.float64)
        groups = world.patients[[attribute]].reset_index(drop=True)
        if null == "permuted":
            logit = special.logit(np.clip(truth, 1e-6, 1 - 1e-6))
            risk = special.expit(logit + noise * rng.standard_normal(n_patients))
            groups[attribute] = rng.permutation(groups[attribute].to_numpy())
        else:
            risk = truth
        report = audit(
            world.patients["label"].to_numpy(),
            risk,
            groups,
            threshold=float(np.quantile(risk, 0.7)),
            n_resamples=n_resamples,
            random_state=seed + k,
            min_cell=min_cell,
            method=method,
            alpha=alpha,
        )
        flags = report.difference[[f"{m}_flag" for m in counted]].to_numpy()
        false_flags += bool(flags.any())
        comparisons += report.n_comparisons
    return FlagRate(n_audits, false_flags, comparisons / max(n_audits, 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the docs' false-flag table (``python -m fusion.evaluation.flag_rates``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", type=int, default=200)
    parser.add_argument("--patients", type=int, default=400)
    args = parser.parse_args(argv)
    rows = []
    for null, attribute in (
        ("permuted", "site"),
        ("permuted", "ethnicity"),
        ("calibration", "site"),
        ("calibration", "ethnicity"),
    ):
        for method in FLAG_METHODS:
            found = false_flag_rate(
                args.audits,
                n_patients=args.patients,
                attribute=attribute,
                null=null,  # type: ignore[arg-type]
                method=method,
            )
            rows.append(
                {
                    "null": null,
                    "attribute": attribute,
                    "method": method,
                    "audits": found.audits,
                    "with a false flag": found.with_false_flag,
                    "rate": round(found.rate, 3),
                    "comparisons per audit": round(found.comparisons, 1),
                }
            )
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
