"""The slice search: finds a miscalibrated group, confirms it on held-out data, invents none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit, logit

from fusion.evaluation.slices import bin_inputs, calibration_departure, find_slices, recalibrate

COLUMNS = ["sex", "site", "bin_x"]


def _cohort(n: int, seed: int, *, broken: str | None) -> pd.DataFrame:
    """Risks calibrated for everyone, except (if ``broken``) too flat at one site."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "site": rng.choice(["site_a", "site_b", "site_c"], n),
            "x": rng.normal(size=n),
        }
    )
    true = expit(-1.0 + 1.2 * frame["x"].to_numpy() + rng.normal(0, 0.3, n))
    frame["label"] = (rng.random(n) < true).astype(int)
    risk = true.copy()
    if broken is not None:  # the model sees this site's patients badly: risks shrunk and low
        at = (frame["site"] == broken).to_numpy()
        risk[at] = expit(0.3 * logit(true[at]) - 0.8)
    frame["risk"] = risk
    return frame


def _search(seed: int, *, broken: str | None, method: str = "holm") -> pd.DataFrame:
    discovery = _cohort(1500, seed, broken=broken)
    confirmation = _cohort(1500, seed + 10_000, broken=broken)
    discovery["bin_x"] = bin_inputs(discovery, ["x"])["x"]
    confirmation["bin_x"] = bin_inputs(confirmation, ["x"], edges_from=discovery)["x"]
    return find_slices(
        discovery, confirmation, COLUMNS, threshold=0.3, min_size=11, adjustment=method
    )


def test_a_miscalibrated_site_is_found_and_confirmed() -> None:
    for seed in range(5):
        table = _search(seed, broken="site_c")
        confirmed = table.loc[table["confirmed"]]
        assert confirmed["slice"].str.contains("site = site_c").any(), table.head()
        # The strongest evidence is site_c (the other sites depart only from the overall
        # recalibration that site_c pulled).
        strongest = confirmed.sort_values("p_value")["slice"].iloc[0]
        assert "site = site_c" in strongest


def test_a_calibrated_model_rarely_gets_a_slice_confirmed() -> None:
    """Holm over the tested slices: any false confirmation in at most ~5% of cohorts."""
    false = sum(bool(_search(seed, broken=None)["confirmed"].any()) for seed in range(40))
    assert false <= 5  # binomial(40, 0.05): P(X > 5) < 0.05


def test_benjamini_hochberg_is_offered_and_holm_is_no_less_strict() -> None:
    holm = _search(3, broken="site_c", method="holm")
    bh = _search(3, broken="site_c", method="bh")
    assert (bh["p_adjusted"] <= holm["p_adjusted"] + 1e-12).all()
    with pytest.raises(ValueError, match="holm"):
        _search(3, broken=None, method="bonferroni")


def test_small_slices_are_neither_tested_nor_shown() -> None:
    table = _search(1, broken="site_c")
    assert (table["n"] >= 11).all()
    assert (table["n_discovery"] >= 22).all()


def test_cox_score_test_agrees_with_the_likelihood_ratio_test() -> None:
    rng = np.random.default_rng(7)
    risk = rng.uniform(0.05, 0.9, 3000)
    y = (rng.random(3000) < expit(0.2 + 0.7 * logit(risk))).astype(float)
    stat, p_value, oe = calibration_departure(y, risk)
    z = logit(risk)
    full = sm.GLM(y, sm.add_constant(z), family=sm.families.Binomial()).fit()
    null_llf = np.sum(y * np.log(risk) + (1 - y) * np.log(1 - risk))  # a = 0, b = 1
    lr = 2 * (full.llf - null_llf)
    assert stat == pytest.approx(lr, rel=0.15)
    assert p_value < 1e-6
    assert oe == pytest.approx(y.sum() / risk.sum())


def test_recalibration_removes_an_overall_slope() -> None:
    rng = np.random.default_rng(8)
    true = rng.uniform(0.05, 0.9, 5000)
    y = (rng.random(5000) < true).astype(float)
    extreme = expit(2.0 * logit(true))
    fixed = recalibrate(y, extreme)(extreme)
    assert calibration_departure(y, fixed)[1] > 0.01
    assert calibration_departure(y, extreme)[1] < 1e-6
