"""Honest flags: adjusted p-values against statsmodels, tests against scipy, states, tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from fusion.evaluation.audit_tables import COMPARISON_COLUMNS, GROUP_STATE_COLUMNS
from fusion.evaluation.bootstrap import group_metrics
from fusion.evaluation.fairness import audit
from fusion.evaluation.flags import (
    TESTED_METRICS,
    adjust_pvalues,
    delong_variance,
    minimum_detectable,
    wald_differences,
)
from fusion.reports.audit_report import audit_csv


@pytest.mark.parametrize(("method", "statsmodels_name"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels(method: str, statsmodels_name: str) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, size=(7, 9)) ** 2
    p[rng.random(p.shape) < 0.2] = np.nan  # comparisons not made stay out of the family
    finite = np.isfinite(p)
    expected = multipletests(p[finite], method=statsmodels_name)[1]
    got = adjust_pvalues(p, method)  # type: ignore[arg-type]
    np.testing.assert_allclose(got[finite], expected, rtol=1e-12)
    assert np.isnan(got[~finite]).all()


def test_wald_test_matches_scipy_and_its_ci_agrees_with_its_p_value() -> None:
    rng = np.random.default_rng(0)
    point = np.array([0.3, -0.02, np.nan, 0.1])
    draws = point + rng.normal(0, [0.1, 0.05, 0.1, 0.05], size=(400, 4))
    se, low, high, p = wald_differences(point, draws, alpha=0.05)
    expected_se = np.std(draws, axis=0, ddof=1)
    np.testing.assert_allclose(se[[0, 1, 3]], expected_se[[0, 1, 3]], rtol=1e-12)
    expected_p = 2 * stats.norm.sf(np.abs(point[[0, 1, 3]]) / expected_se[[0, 1, 3]])
    np.testing.assert_allclose(p[[0, 1, 3]], expected_p, rtol=1e-12)
    assert np.isnan([se[2], low[2], high[2], p[2]]).all()
    excludes_zero = (low > 0) | (high < 0)
    np.testing.assert_array_equal(excludes_zero[[0, 1, 3]], p[[0, 1, 3]] < 0.05)


def test_minimum_detectable_difference_has_the_stated_power() -> None:
    """A true difference of the MDD is detected in 80% of simulated tests at alpha / m."""
    se, m, alpha = 0.04, 12, 0.05
    mdd = float(minimum_detectable([se], alpha=alpha, n_comparisons=m)[0])
    rng = np.random.default_rng(1)
    estimates = rng.normal(mdd, se, 20_000)
    power = np.mean(2 * stats.norm.sf(np.abs(estimates) / se) < alpha / m)
    assert power == pytest.approx(0.80, abs=0.01)


def test_flags_are_the_adjusted_tests_of_the_shown_differences(cohort) -> None:
    y, risk, features = cohort
    for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
        report = audit(y, risk, features[["site"]], threshold=0.45, method=method, min_cell=11)
        raw = report.difference[[f"{m}_p" for m in TESTED_METRICS]].to_numpy()
        finite = np.isfinite(raw)
        assert report.n_comparisons == finite.sum() > 0
        adjusted = report.difference[[f"{m}_p_adjusted" for m in TESTED_METRICS]].to_numpy()
        np.testing.assert_allclose(
            adjusted[finite], multipletests(raw[finite], method=name)[1], rtol=1e-12
        )
        flags = report.difference[[f"{m}_flag" for m in TESTED_METRICS]].to_numpy()
        np.testing.assert_array_equal(flags, np.nan_to_num(adjusted, nan=1.0) < report.alpha)
        # A flag is never raised on a difference whose CI includes 0 (Wald CI, raw level).
        low = report.difference[[f"{m}_low" for m in TESTED_METRICS]].to_numpy()
        high = report.difference[[f"{m}_high" for m in TESTED_METRICS]].to_numpy()
        assert ((low[flags] > 0) | (high[flags] < 0)).all()
        # The difference is signed: group minus reference, from the same point estimates.
        ref = report.by_group.loc[report.reference]
        for metric in TESTED_METRICS:
            shown = report.difference[metric].notna()
            np.testing.assert_allclose(
                report.difference.loc[shown, metric],
                report.by_group.loc[shown, metric] - ref[metric],
                atol=1e-12,
            )
    assert report.method == "bh"


def test_bootstrap_se_is_the_spread_of_the_paired_draws(cohort) -> None:
    y, risk, features = cohort
    report = audit(y, risk, features[["sex"]], threshold=0.45, n_resamples=80, min_cell=0)
    codes = (features["sex"] == "M").to_numpy().astype(int)  # F is code 0, M code 1
    _, draws = group_metrics(y, risk, codes, threshold=0.45, n_resamples=80, random_state=0)
    reference = report.reference
    other = "M" if reference == "F" else "F"
    sign = 1.0 if other == "M" else -1.0

    def se_of(metric: str) -> float:
        high = report.difference.loc[other, f"{metric}_high"]
        return float((high - report.difference.loc[other, metric]) / stats.norm.ppf(0.975))

    diff = draws["selection_rate"][:, 1] - draws["selection_rate"][:, 0]
    assert se_of("selection_rate") == pytest.approx(np.std(sign * diff, ddof=1), rel=1e-9)
    # AUROC: the larger of the bootstrap's and DeLong's standard error of the difference.
    diff = draws["auroc"][:, 1] - draws["auroc"][:, 0]
    delong = np.sqrt(sum(_delong_brute(y[codes == c], risk[codes == c]) for c in (0, 1)))
    assert se_of("auroc") == pytest.approx(max(np.std(diff, ddof=1), delong), rel=1e-9)


def _delong_brute(y: np.ndarray, risk: np.ndarray) -> float:
    """DeLong's variance from the full matrix of pair comparisons (independent of the code)."""
    positives, negatives = risk[y == 1], risk[y == 0]
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (
        positives[:, None] == negatives[None, :]
    )
    return float(
        np.var(psi.mean(axis=1), ddof=1) / len(positives)
        + np.var(psi.mean(axis=0), ddof=1) / len(negatives)
    )


def test_delong_variance_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 300).astype(float)
    risk = np.round(rng.uniform(size=300) * 0.5 + 0.3 * y, 2)  # rounded: ties too
    codes = rng.integers(0, 3, 300)
    got = delong_variance(y, risk, codes, 4)
    for code in range(3):
        member = codes == code
        assert got[code] == pytest.approx(_delong_brute(y[member], risk[member]), rel=1e-12)
    assert np.isnan(got[3])  # an empty group


def test_a_real_gap_is_flagged_and_a_small_group_is_insufficient_evidence() -> None:
    rng = np.random.default_rng(5)
    sizes = {"a": 1500, "b": 1500, "tiny": 40}
    group = np.repeat(list(sizes), list(sizes.values()))
    n = len(group)
    y = rng.integers(0, 2, n)
    informative = np.clip(0.5 * y + rng.uniform(0, 0.5, n), 0, 1)
    # b's risk is half noise: lower AUROC and TPR; tiny is as good as a.
    risk = np.where(group == "b", 0.5 * informative + 0.5 * rng.uniform(size=n), informative)
    report = audit(y, risk, pd.DataFrame({"g": group}), threshold=0.5, reference="a")
    assert report.difference.loc["b", "auroc_flag"]
    assert report.difference.loc["b", "auroc"] < 0
    states = report.group_states().set_index("group")
    assert states.loc["b", "state"] == "flagged"
    assert "auroc" in states.loc["b", "flagged_metrics"]
    assert states.loc["tiny", "state"] == "insufficient evidence"
    assert states.loc["tiny", "mdd_max"] > report.margin
    assert states.loc["a", "state"] == "reference"
    table = report.comparisons()
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert table["state"].iloc[0] == "flagged"  # flags first
    assert list(report.group_states().columns) == list(GROUP_STATE_COLUMNS)


def test_summary_is_signed_and_agrees_with_the_flags() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    group = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    risk = np.clip(0.4 * y + rng.uniform(0, 0.6, n) - 0.25 * (group == "c"), 0, 1)
    report = audit(y, risk, pd.DataFrame({"g": group}), threshold=0.5, reference="a")
    row = report.summary.loc["demographic_parity_difference"]
    assert row["group"] == "c"
    assert row["metric"] == "selection_rate"
    assert row["difference"] < 0  # c is selected less: the sign says so
    assert row["high"] < 0
    assert row["flagged"] == report.difference.loc["c", "selection_rate_flag"]
    assert row["flagged"]
    fair = audit(y, rng.uniform(size=n), pd.DataFrame({"g": group}), threshold=0.5)
    dp = fair.summary.loc["demographic_parity_difference"]
    # A CI that includes 0 is never flagged; the between-group spread has no CI of its own.
    assert (dp["low"] < 0 < dp["high"]) == (not dp["flagged"])
    assert "value" in fair.summary.columns


def test_one_group_shown_says_nothing_was_compared() -> None:
    group = np.array(["big"] * 300 + ["small"] * 5 + ["other"] * 6)
    y = np.tile([0, 1], len(group))[: len(group)]
    risk = np.linspace(0.01, 0.99, len(group))
    report = audit(y, risk, pd.DataFrame({"g": group}), threshold=0.5)
    assert (~report.by_group["suppressed"]).sum() == 1
    assert report.n_comparisons == 0
    assert report.nothing_compared is not None
    assert report.nothing_compared.startswith("Nothing could be compared")
    assert report.comparisons().empty
    # No disparity of 0.0 [0.0, 0.0]: the summary has nothing to say.
    assert report.summary[["value", "difference", "low", "high"]].isna().all().all()
    single = audit(y, risk, pd.DataFrame({"site": ["site_a"] * len(y)}), threshold=0.5)
    assert "every patient of the audit is in one group" in single.nothing_compared
    two = audit(
        y[:300],
        risk[:300],
        pd.DataFrame({"g": group[:300]}).assign(g=["a", "b"] * 150),
        threshold=0.5,
    )
    assert two.nothing_compared is None


def test_csv_keeps_numbers_numeric_with_a_suppression_column() -> None:
    rng = np.random.default_rng(4)
    group = np.repeat(["a", "b", "c", "d"], [200, 150, 8, 30])
    y = rng.integers(0, 2, len(group))
    risk = rng.uniform(size=len(group))
    report = audit(y, risk, pd.DataFrame({"g": group}), threshold=0.5, n_resamples=50)
    table = pd.read_csv(io.StringIO(audit_csv(report)))
    assert table["n"].dtype.kind == "i" or table["n"].isna().any()
    text = audit_csv(report)
    assert "suppressed (n <" not in text
    assert ".0," not in text.split("\n")[1].split(",")[4]  # n is whole: 200, not 200.0
    for column in ("auroc", "diff_auroc", "diff_auroc_p_adjusted", "diff_auroc_mdd"):
        assert table[column].dtype.kind == "f", column
    hidden = table.loc[table["suppressed"]]
    assert set(hidden["group"]) == {"c", "d"}
    assert hidden["n"].isna().all()
    assert hidden["suppressed_reason"].str.startswith("group suppressed").all()
    shown = table.loc[~table["suppressed"]]
    assert (shown["n"] == shown["n"].round()).all()


def _tolerance(alpha: float, n: int) -> float:
    """Two binomial standard errors of a rate of ``alpha`` over ``n`` audits."""
    return 2.0 * float(np.sqrt(alpha * (1.0 - alpha) / n))


@pytest.mark.parametrize(
    ("null", "attribute", "method", "n_audits"),
    [
        ("permuted", "site", "holm", 100),
        ("permuted", "ethnicity", "bh", 60),
        ("calibration", "ethnicity", "holm", 60),
    ],
)
def test_false_flag_rate_on_the_unbiased_demo_world_is_at_most_alpha(
    null: str, attribute: str, method: str, n_audits: int
) -> None:
    """Simulated audits of the unbiased world (``--no-bias``): any false flag <= alpha + 2 SE.

    The documented rates (docs/models.md) come from the same function with 200 audits.
    """
    from fusion.evaluation.flag_rates import false_flag_rate

    found = false_flag_rate(
        n_audits,
        attribute=attribute,
        null=null,  # type: ignore[arg-type]
        method=method,
        n_resamples=100,
        seed=1000,
    )
    assert found.comparisons > 3  # the audits did compare groups
    assert found.rate <= 0.05 + _tolerance(0.05, n_audits), found
