"""Tests of the seeded synthetic cohort (data.synthetic)."""

from __future__ import annotations

import doctest
import hashlib
import itertools
import logging
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, special

from data import splits, synthetic
from data.splits import assign_splits
from data.synthetic import (
    DEMO_BIAS,
    DemoBias,
    SyntheticCohort,
    generate_cohort,
    oracle_aurocs,
    parameters,
)
from data.vocabulary import (
    EHR_COLUMNS,
    ETHNICITIES,
    FEATURE_SPECS,
    GENOMICS_COLUMNS,
    HORIZON_YEARS,
    MODALITIES,
    SEXES,
    SITES,
    TREATMENTS,
)

FRAMES = ("patients", "ehr", "genomics", "truth", "lesions")
PATIENT_COLUMNS = [
    "patient_id",
    "age",
    "sex",
    "ethnicity",
    "site",
    "treatment",
    "label",
    "event_time",
    "event",
]
TRUTH_COLUMNS = [
    "patient_id",
    "true_risk",
    "true_risk_none",
    "true_risk_standard",
    "true_risk_targeted",
    "logit_demographics",
    "logit_ehr",
    "logit_genomics",
    "logit_imaging",
    "lesion_count",
    "lesion_area",
]
# sha256 of generate_cohort(300, seed=11, image_size=16, bias=None)'s values (see
# test_bias_off_keeps_the_world_as_it_was); computed with the generator as it was before the
# recording bias of DemoBias existed, so the unbiased world is provably unchanged.
BIAS_OFF_DIGEST = "1214e8e34819289ebb248d1de3d6fc2dcbb42cac6a6a131158adb708962c43ad"
LESION_COLUMNS = ["patient_id", "cy", "cx", "ry", "rx", "angle", "contrast", "texture"]


@pytest.fixture(scope="module")
def small() -> SyntheticCohort:
    return generate_cohort(120, seed=3, image_size=32)


@pytest.fixture(scope="module")
def cohort_2000() -> SyntheticCohort:
    return generate_cohort(2000, seed=0)


@pytest.fixture(scope="module")
def small_scans(small: SyntheticCohort) -> tuple[np.ndarray, np.ndarray]:
    return small.render(0, small.n_patients)


def spec_values(cohort: SyntheticCohort, name: str) -> pd.Series:
    if name == "sex_male":
        return (cohort.patients["sex"] == "M").astype(np.float64)
    for frame in (cohort.patients, cohort.ehr, cohort.genomics):
        if name in frame.columns:
            return frame[name]
    raise KeyError(name)


# --- Determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_pixels() -> None:
    first = generate_cohort(80, seed=5, image_size=32)
    second = generate_cohort(80, seed=5, image_size=32)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name), check_exact=True)
    images_1, masks_1 = first.render(0, 80)
    images_2, masks_2 = second.render(0, 80)
    assert np.array_equal(images_1, images_2)
    assert np.array_equal(masks_1, masks_2)


def test_different_seed_differs() -> None:
    first = generate_cohort(80, seed=5, image_size=32)
    other = generate_cohort(80, seed=6, image_size=32)
    assert not first.ehr.equals(other.ehr)
    assert not first.truth["true_risk"].equals(other.truth["true_risk"])
    assert not np.array_equal(first.render(0, 10)[0], other.render(0, 10)[0])


def test_image_size_changes_only_pixels() -> None:
    coarse = generate_cohort(50, seed=1, image_size=16)
    fine = generate_cohort(50, seed=1, image_size=64)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(coarse, name), getattr(fine, name))
    assert coarse.render(0, 3)[0].shape == (3, 16, 16)
    assert fine.render(0, 3)[0].shape == (3, 64, 64)


# --- Feature catalogue and schema --------------------------------------------------------------


def test_feature_specs_are_complete_and_ordered() -> None:
    names = [spec.name for spec in FEATURE_SPECS]
    assert len(names) == len(set(names))
    assert names[:2] == ["age", "sex_male"]
    assert [spec.modality for spec in FEATURE_SPECS] == sorted(
        (spec.modality for spec in FEATURE_SPECS), key=["demographics", "ehr", "genomics"].index
    )
    assert len(EHR_COLUMNS) >= 12
    for required in ("bmi", "systolic_bp", "hba1c", "egfr", "ldl", "hdl", "crp", "heart_rate"):
        assert required in EHR_COLUMNS
    assert [n for n in GENOMICS_COLUMNS if n.startswith("snp_")] == [
        f"snp_{j:03d}" for j in range(1, 61)
    ]
    assert {"driver_egfr", "driver_kras", "driver_tp53"} <= set(GENOMICS_COLUMNS)
    kinds = {spec.name: spec.kind for spec in FEATURE_SPECS}
    assert kinds["smoking"] == "categorical"
    assert kinds["snp_001"] == "genotype"
    assert kinds["prior_events"] == "count"
    assert "ethnicity" not in names
    assert "site" not in names
    for spec in FEATURE_SPECS:
        assert spec.label
        assert spec.description
        assert spec.low is not None
        assert spec.high is not None
        assert spec.low < spec.high


def test_frame_columns_and_dtypes(small: SyntheticCohort) -> None:
    assert list(small.patients.columns) == PATIENT_COLUMNS
    assert list(small.ehr.columns) == ["patient_id", *EHR_COLUMNS]
    assert list(small.genomics.columns) == ["patient_id", *GENOMICS_COLUMNS]
    assert list(small.truth.columns)[: len(TRUTH_COLUMNS)] == TRUTH_COLUMNS
    assert list(small.lesions.columns) == LESION_COLUMNS
    assert all(small.ehr[name].dtype == np.float64 for name in EHR_COLUMNS)
    assert all(small.genomics[name].dtype == np.int8 for name in GENOMICS_COLUMNS)
    assert small.patients["age"].dtype == np.float64
    assert pd.api.types.is_integer_dtype(small.patients["label"])
    assert pd.api.types.is_integer_dtype(small.patients["event"])
    assert pd.api.types.is_integer_dtype(small.truth["lesion_count"])
    for name in ("patients", "ehr", "genomics", "truth"):
        assert len(getattr(small, name)) == small.n_patients
        assert getattr(small, name)["patient_id"].tolist() == small.patients["patient_id"].tolist()


def test_patient_ids_are_unique_and_formatted(small: SyntheticCohort) -> None:
    ids = small.patients["patient_id"]
    assert ids.is_unique
    assert ids.iloc[0] == "P0000001"
    assert ids.iloc[-1] == f"P{small.n_patients:07d}"
    assert all(re.fullmatch(r"P\d{7}", pid) for pid in ids)


def test_categorical_values(cohort_2000: SyntheticCohort) -> None:
    patients = cohort_2000.patients
    assert set(patients["sex"]) == set(SEXES)
    assert set(patients["ethnicity"]) == set(ETHNICITIES)
    assert set(patients["site"]) == set(SITES)
    assert set(patients["treatment"]) == set(TREATMENTS)
    shares = patients["ethnicity"].value_counts(normalize=True)
    assert shares.max() > 0.5  # imbalanced groups
    assert shares.min() < 0.1


def test_values_within_feature_ranges(cohort_2000: SyntheticCohort) -> None:
    for spec in FEATURE_SPECS:
        values = spec_values(cohort_2000, spec.name).dropna()
        assert values.min() >= spec.low, spec.name
        assert values.max() <= spec.high, spec.name
        if spec.kind in {"binary", "count", "categorical", "genotype"}:
            assert np.all(values == np.round(values)), spec.name
    for name in GENOMICS_COLUMNS:
        assert cohort_2000.genomics[name].notna().all()


def test_missingness_is_realistic(cohort_2000: SyntheticCohort) -> None:
    # The usual missingness; the demo bias's degraded site records even less (tested below).
    usual = (cohort_2000.patients["site"] != DEMO_BIAS.degraded_site).to_numpy()
    ehr = cohort_2000.ehr.loc[usual]
    missing = ehr[list(EHR_COLUMNS)].isna().mean()
    assert 0.1 < missing["ldl"] < 0.25
    assert missing["ldl"] == missing["hdl"]  # the lipid panel is missing as a whole
    assert 0.2 < missing["crp"] < 0.45
    assert cohort_2000.ehr[["diabetes", "prior_events", "on_statin"]].notna().all().all()
    hba1c_missing = ehr["hba1c"].isna().groupby(ehr["diabetes"]).mean()
    assert hba1c_missing[0.0] > 3 * hba1c_missing[1.0]


def test_physiology_is_plausible(cohort_2000: SyntheticCohort) -> None:
    ehr = cohort_2000.ehr
    hba1c = ehr["hba1c"].groupby(ehr["diabetes"]).mean()
    assert hba1c[1.0] > hba1c[0.0] + 1.0
    age = cohort_2000.patients["age"]
    assert ehr["egfr"].corr(age) < -0.3
    assert ehr["systolic_bp"].corr(age) > 0.1


def test_genotypes_follow_hardy_weinberg(cohort_2000: SyntheticCohort) -> None:
    genotypes = cohort_2000.genomics[[f"snp_{j:03d}" for j in range(1, 61)]].to_numpy()
    maf = genotypes.mean(axis=0) / 2
    assert maf.min() > 0.02
    assert maf.max() < 0.55
    heterozygous = (genotypes == 1).mean(axis=0)
    np.testing.assert_allclose(heterozygous, 2 * maf * (1 - maf), atol=0.05)
    for driver in ("driver_egfr", "driver_kras", "driver_tp53"):
        assert 0.03 < cohort_2000.genomics[driver].mean() < 0.22


def test_outcome_is_consistent(cohort_2000: SyntheticCohort) -> None:
    patients = cohort_2000.patients
    label, event, time = patients["label"], patients["event"], patients["event_time"]
    assert set(label) == {0, 1}
    assert set(event) == {0, 1}
    assert 0.2 <= label.mean() <= 0.3
    assert (time > 0).all()
    assert (time <= 10.0).all()
    # An event observed within the horizon is a label; a censored label was censored early.
    assert (label[(event == 1) & (time <= HORIZON_YEARS)] == 1).all()
    assert (time[(label == 1) & (event == 0)] < HORIZON_YEARS).all()
    assert (label[(event == 1) & (time > HORIZON_YEARS)] == 0).all()
    expected = cohort_2000.truth["true_risk"].mean()
    assert abs(label.mean() - expected) < 4 * math.sqrt(expected * (1 - expected) / len(label))


def test_true_logit_is_additive(cohort_2000: SyntheticCohort) -> None:
    truth = cohort_2000.truth
    components = truth[[f"logit_{name}" for name in MODALITIES]].sum(axis=1)
    intercept = special.logit(truth["true_risk_none"]) - components
    np.testing.assert_allclose(intercept, intercept.iloc[0], atol=1e-8)
    for name in MODALITIES:
        assert 0.6 < truth[f"logit_{name}"].std() < 1.1, name
    received = cohort_2000.patients["treatment"].to_numpy()
    by_treatment = truth[[f"true_risk_{t}" for t in TREATMENTS]].to_numpy()
    chosen = by_treatment[np.arange(len(truth)), [TREATMENTS.index(t) for t in received]]
    np.testing.assert_array_equal(truth["true_risk"], chosen)


def test_lesion_table_matches_truth(cohort_2000: SyntheticCohort) -> None:
    truth, lesions = cohort_2000.truth, cohort_2000.lesions
    counts = lesions.groupby("patient_id").size()
    expected = truth.set_index("patient_id")["lesion_count"]
    pd.testing.assert_series_equal(
        counts.reindex(expected.index, fill_value=0), expected, check_names=False
    )
    area = (math.pi * lesions["ry"] * lesions["rx"]).groupby(lesions["patient_id"]).sum()
    np.testing.assert_allclose(
        area.reindex(expected.index, fill_value=0.0), truth["lesion_area"].to_numpy()
    )
    assert lesions[["cy", "cx"]].stack().between(0.0, 1.0).all()
    assert lesions[["ry", "rx"]].stack().between(0.03, 0.15).all()
    lesion_free = (truth["lesion_count"] == 0).mean()
    assert 0.3 < lesion_free < 0.5


def test_imaging_carries_information_beyond_the_table(cohort_2000: SyntheticCohort) -> None:
    truth = cohort_2000.truth
    assert 0.15 < truth["severity"].corr(truth["imaging_severity"]) < 0.45
    imaging = truth["logit_imaging"]
    free = truth["lesion_count"] == 0
    assert imaging[free].nunique() == 1
    assert imaging[free].iloc[0] < imaging[~free].min()


# --- Treatment ---------------------------------------------------------------------------------


def test_treatment_is_confounded_by_severity(cohort_2000: SyntheticCohort) -> None:
    treated = cohort_2000.patients["treatment"] != "none"
    truth = cohort_2000.truth
    assert truth["severity"][treated].mean() > truth["severity"][~treated].mean() + 0.4
    assert truth["true_risk_none"][treated].mean() > truth["true_risk_none"][~treated].mean()
    carrier = cohort_2000.genomics["driver_egfr"] == 1
    targeted = cohort_2000.patients["treatment"] == "targeted"
    assert targeted[carrier].mean() > 2 * targeted[~carrier].mean()


def test_targeted_effect_is_larger_for_egfr_carriers(cohort_2000: SyntheticCohort) -> None:
    truth = cohort_2000.truth
    carrier = cohort_2000.genomics["driver_egfr"] == 1
    targeted_gain = truth["true_risk_none"] - truth["true_risk_targeted"]
    standard_gain = truth["true_risk_none"] - truth["true_risk_standard"]
    assert (targeted_gain > 0).all()
    assert targeted_gain[carrier].mean() > 5 * targeted_gain[~carrier].mean()
    assert targeted_gain[carrier].mean() > standard_gain[carrier].mean()
    assert standard_gain[~carrier].mean() > targeted_gain[~carrier].mean()
    logit_effect = special.logit(truth["true_risk_targeted"]) - special.logit(
        truth["true_risk_none"]
    )
    np.testing.assert_allclose(logit_effect[carrier], -1.5, atol=1e-8)
    np.testing.assert_allclose(logit_effect[~carrier], -0.1, atol=1e-8)


# --- Rendering ---------------------------------------------------------------------------------


def test_render_shapes_and_dtypes(small: SyntheticCohort, small_scans: tuple) -> None:
    images, masks = small_scans
    assert images.shape == (small.n_patients, 32, 32)
    assert masks.shape == images.shape
    assert images.dtype == np.float32
    assert masks.dtype == np.uint8
    assert np.isfinite(images).all()
    assert set(np.unique(masks)) <= {0, 1}
    empty_images, empty_masks = small.render(5, 5)
    assert empty_images.shape == (0, 32, 32)
    assert empty_masks.shape == (0, 32, 32)


@pytest.mark.parametrize(("image_size", "cuts"), [(32, (0, 13, 14, 47, 70)), (128, (0, 3, 4, 7))])
def test_chunked_render_equals_full_render(image_size: int, cuts: tuple[int, ...]) -> None:
    cohort = generate_cohort(70, seed=11, image_size=image_size)
    full_images, full_masks = cohort.render(0, cuts[-1])
    parts = [cohort.render(start, stop) for start, stop in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), full_images)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), full_masks)


def test_iter_scans_covers_cohort_in_order(small: SyntheticCohort, small_scans: tuple) -> None:
    chunks = list(small.iter_scans(chunk_size=17))
    assert [len(ids) for ids, _, _ in chunks] == [17] * 7 + [1]
    ids = [pid for chunk_ids, _, _ in chunks for pid in chunk_ids]
    assert ids == small.patients["patient_id"].tolist()
    assert np.array_equal(np.concatenate([images for _, images, _ in chunks]), small_scans[0])
    assert np.array_equal(np.concatenate([masks for _, _, masks in chunks]), small_scans[1])


def test_masks_are_the_union_of_lesion_ellipses() -> None:
    size = 64  # every semi-axis is at least 0.03 * 64 > 1 px, so no lesion is enlarged
    cohort = generate_cohort(40, seed=2, image_size=size)
    _, masks = cohort.render(0, 40)
    centres = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    for index, pid in enumerate(cohort.patients["patient_id"]):
        q = np.full((size, size), np.inf)
        for lesion in cohort.lesions[cohort.lesions["patient_id"] == pid].itertuples():
            dy, dx = yy - lesion.cy, xx - lesion.cx
            cos, sin = math.cos(lesion.angle), math.sin(lesion.angle)
            along = (dy * cos + dx * sin) / lesion.ry
            across = (dx * cos - dy * sin) / lesion.rx
            q = np.minimum(q, along**2 + across**2)
        assert masks[index][q < 0.97].all()
        assert not masks[index][q > 1.03].any()


def test_lesion_free_patients_have_empty_masks(small: SyntheticCohort, small_scans: tuple) -> None:
    _, masks = small_scans
    counts = small.truth["lesion_count"].to_numpy()
    assert (counts == 0).any()
    assert (counts > 0).any()
    assert not masks[counts == 0].any()
    assert masks[counts > 0].reshape(int((counts > 0).sum()), -1).any(axis=1).all()


def lesion_contrast(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean intensity inside each lesion mask minus a ring around it (NaN without lesions)."""
    out = np.full(len(images), np.nan)
    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        if mask.any():
            ring = ndimage.binary_dilation(mask, iterations=4) & ~ndimage.binary_dilation(mask)
            out[index] = image[mask == 1].mean() - image[ring].mean()
    return out


def test_lesions_are_brighter_than_surrounding_body() -> None:
    cohort = generate_cohort(60, seed=4, image_size=64, bias=None)
    differences_array = lesion_contrast(*cohort.render(0, 60))
    differences_array = differences_array[~np.isnan(differences_array)]
    assert differences_array.mean() > 0.15  # scanner noise is 0.04
    assert (differences_array > 0.05).mean() > 0.9


def test_sites_differ_in_appearance(cohort_2000: SyntheticCohort) -> None:
    sites = cohort_2000.patients["site"].to_numpy()
    images, _ = cohort_2000.render(0, 300)
    background = images[:, :4, :4].mean(axis=(1, 2))  # air in the corner: the scanner offset
    means = {site: background[sites[:300] == site].mean() for site in SITES}
    assert means["site_b"] > means["site_a"] + 0.05
    assert means["site_c"] < means["site_a"] - 0.03


# --- Injected demo bias ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[SyntheticCohort, SyntheticCohort]:
    """The same world with the demo bias on and off (64 px scans keep the render cheap)."""
    return (
        generate_cohort(1500, seed=7, image_size=64, bias=DEMO_BIAS),
        generate_cohort(1500, seed=7, image_size=64, bias=None),
    )


def air_noise(cohort: SyntheticCohort, rows: int = 400) -> pd.Series:
    """Standard deviation of the air in a corner of each scan (pure scanner noise), by site."""
    images, _ = cohort.render(0, rows)
    noise = images[:, :8, :8].reshape(rows, -1).std(axis=1)
    return pd.Series(noise).groupby(cohort.patients["site"].to_numpy()[:rows]).mean()


def test_bias_off_gives_every_site_the_same_noise(pair) -> None:
    _, unbiased = pair
    noise = air_noise(unbiased)
    assert noise.max() / noise.min() < 1.1


def test_bias_on_degrades_only_its_site(pair) -> None:
    biased, _ = pair
    noise = air_noise(biased)
    others = noise.drop(DEMO_BIAS.degraded_site)
    assert noise[DEMO_BIAS.degraded_site] > 2 * others.max()
    assert others.max() / others.min() < 1.1


def test_bias_shows_lesions_fainter_at_the_degraded_site(pair) -> None:
    biased, unbiased = pair
    rows = 600
    on = lesion_contrast(*biased.render(0, rows))
    off = lesion_contrast(*unbiased.render(0, rows))
    site = biased.patients["site"].to_numpy()[:rows]
    same = (site == unbiased.patients["site"].to_numpy()[:rows]) & ~np.isnan(off)
    degraded = same & (site == DEMO_BIAS.degraded_site)
    ratio = on[degraded].mean() / off[degraded].mean()
    # The lesion layer is scaled by lesion_contrast; the extra blur softens it a little more.
    assert DEMO_BIAS.lesion_contrast * 0.7 < ratio <= DEMO_BIAS.lesion_contrast * 1.05
    np.testing.assert_array_equal(on[same & ~degraded], off[same & ~degraded])


def test_bias_under_recruits_one_group(pair) -> None:
    biased, unbiased = pair
    rare = DEMO_BIAS.rare_ethnicity
    share_on = (biased.patients["ethnicity"] == rare).mean()
    share_off = (unbiased.patients["ethnicity"] == rare).mean()
    assert share_on == pytest.approx(DEMO_BIAS.rare_share, abs=0.01)
    assert share_off > 3 * share_on
    assert sum(DEMO_BIAS.ethnicity_p()) == pytest.approx(1.0)


def test_bias_changes_what_is_observed_not_the_truth(pair) -> None:
    biased, unbiased = pair
    same = (biased.patients["ethnicity"] == unbiased.patients["ethnicity"]).to_numpy()
    assert 0.85 < same.mean() < 1.0  # only the re-recruited patients differ
    for name in ("patients", "genomics", "truth"):
        on, off = getattr(biased, name), getattr(unbiased, name)
        pd.testing.assert_frame_equal(on.loc[same], off.loc[same])
    # The EHR as recorded differs only at the degraded site (its poorer data capture).
    elsewhere = same & (biased.patients["site"] != DEMO_BIAS.degraded_site).to_numpy()
    pd.testing.assert_frame_equal(biased.ehr.loc[elsewhere], unbiased.ehr.loc[elsewhere])
    pd.testing.assert_frame_equal(biased.lesions, unbiased.lesions)
    images_on, masks_on = biased.render(0, 200)
    images_off, masks_off = unbiased.render(0, 200)
    assert np.array_equal(masks_on, masks_off)  # the true lesions are the same
    degraded = (biased.patients["site"] == DEMO_BIAS.degraded_site).to_numpy()[:200]
    kept = same[:200] & ~degraded
    assert np.array_equal(images_on[kept], images_off[kept])
    assert not np.array_equal(images_on[same[:200] & degraded], images_off[same[:200] & degraded])
    assert biased.bias is DEMO_BIAS
    assert unbiased.bias is None


RECORDED_LABS = (
    "bmi",
    "systolic_bp",
    "diastolic_bp",
    "heart_rate",
    "hba1c",
    "egfr",
    "ldl",
    "hdl",
    "hemoglobin",
)


def test_bias_records_the_degraded_sites_ehr_worse_but_keeps_the_truth(pair) -> None:
    biased, unbiased = pair
    same = (biased.patients["ethnicity"] == unbiased.patients["ethnicity"]).to_numpy()
    here = same & (biased.patients["site"] == DEMO_BIAS.degraded_site).to_numpy()
    on, off = biased.ehr.loc[here], unbiased.ehr.loc[here]
    # The truth behind the record is the same: logit_ehr, true risk and label are untouched.
    pd.testing.assert_frame_equal(biased.truth.loc[here], unbiased.truth.loc[here])
    for name in RECORDED_LABS:
        both = on[name].notna() & off[name].notna()
        error = (on[name] - off[name])[both] / parameters.RECORDED_SPREAD[name]
        # Clipping to the plausible range trims some of the strong default error's spread.
        assert 0.7 * DEMO_BIAS.record_noise < error.std() <= 1.1 * DEMO_BIAS.record_noise, name
        # Extra missingness on top of the usual (a value missing without bias stays missing).
        assert (on[name].isna() | off[name].notna()).all()
        extra = on[name].isna().mean() - off[name].isna().mean()
        assert extra == pytest.approx(DEMO_BIAS.record_missing * off[name].notna().mean(), abs=0.06)
    np.testing.assert_array_equal(on["ldl"].isna(), on["hdl"].isna())  # the lipid panel as one
    # The history is under-held: never more admissions or diagnoses than the full record.
    assert (on["prior_events"] <= off["prior_events"]).all()
    assert (on["diabetes"] <= off["diabetes"]).all()
    held = on["prior_events"].sum() / off["prior_events"].sum()
    assert held == pytest.approx(DEMO_BIAS.history_capture, abs=0.1)
    coded = on["diabetes"].sum() / off["diabetes"].sum()
    assert coded == pytest.approx(DEMO_BIAS.history_capture, abs=0.15)
    # Codes and counts stay valid values; every recorded value stays in its plausible range.
    for spec in FEATURE_SPECS:
        if spec.modality == "ehr":
            values = biased.ehr[spec.name].dropna()
            assert values.between(spec.low, spec.high).all(), spec.name
    assert set(on["diabetes"].unique()) <= {0.0, 1.0}
    assert (on["prior_events"] == on["prior_events"].round()).all()


def test_record_noise_is_that_many_population_spreads() -> None:
    """A mild error (rarely clipped) has the documented size: record_noise spreads, unbiased."""
    mild = DemoBias(record_noise=0.5, record_missing=0.0, history_capture=1.0)
    biased = generate_cohort(3000, seed=7, image_size=16, bias=mild)
    unbiased = generate_cohort(3000, seed=7, image_size=16, bias=None)
    same = (biased.patients["ethnicity"] == unbiased.patients["ethnicity"]).to_numpy()
    here = same & (biased.patients["site"] == mild.degraded_site).to_numpy()
    on, off = biased.ehr.loc[here], unbiased.ehr.loc[here]
    for name in (*RECORDED_LABS, "crp"):
        if name == "crp":  # multiplicative, on the log scale
            error = np.log(on[name] / off[name]).dropna() / parameters.RECORDED_SPREAD[name]
        else:
            error = (on[name] - off[name]).dropna() / parameters.RECORDED_SPREAD[name]
        assert abs(error.mean()) < 0.1, name
        assert 0.42 < error.std() < 0.55, name
    # Nothing but the recorded measurements changes, and the missingness is the usual.
    untouched = [c for c in EHR_COLUMNS if c not in (*RECORDED_LABS, "crp")]
    pd.testing.assert_frame_equal(on[untouched], off[untouched])
    pd.testing.assert_frame_equal(on.isna(), off.isna())


def test_bias_off_keeps_the_world_as_it_was() -> None:
    """bias=None draws nothing from the recording stream: its cohort is pinned bit for bit."""
    cohort = generate_cohort(300, seed=11, image_size=16, bias=None)
    parts = [
        cohort.ehr.drop(columns="patient_id").to_numpy(np.float64),
        cohort.truth.drop(columns="patient_id").to_numpy(np.float64),
        cohort.patients[["age", "label", "event_time"]].to_numpy(np.float64),
        cohort.genomics.drop(columns="patient_id").to_numpy(np.int8),
    ]
    # Rounded to 1e-9: the last bits of exp/log differ between numpy/scipy builds (the unrounded
    # digest changed with the libraries alone, on an unchanged generator).
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(np.round(p, 9)).tobytes() for p in parts))
    # Digest of the same cohort from the generator before the recording bias was added.
    assert digest.hexdigest() == BIAS_OFF_DIGEST


@pytest.mark.parametrize(
    ("knob", "changed"),
    [
        ("record_noise", (*RECORDED_LABS, "crp")),
        ("record_missing", (*RECORDED_LABS, "crp")),
        ("history_capture", ("prior_events", "diabetes")),
    ],
)
def test_each_recording_knob_acts_alone(knob: str, changed: tuple[str, ...]) -> None:
    quiet = {"record_noise": 0.0, "record_missing": 0.0, "history_capture": 1.0}
    unbiased = generate_cohort(600, seed=5, image_size=16, bias=None)
    same_world = generate_cohort(600, seed=5, image_size=16, bias=DemoBias(**quiet))
    same = (same_world.patients["ethnicity"] == unbiased.patients["ethnicity"]).to_numpy()
    pd.testing.assert_frame_equal(same_world.ehr.loc[same], unbiased.ehr.loc[same])
    louder = generate_cohort(600, seed=5, image_size=16, bias=DemoBias(**{**quiet, knob: 0.5}))
    here = same & (louder.patients["site"] == DEMO_BIAS.degraded_site).to_numpy()
    for name in EHR_COLUMNS:
        differs = not louder.ehr.loc[here, name].equals(unbiased.ehr.loc[here, name])
        assert differs == (name in changed), name
    pd.testing.assert_frame_equal(louder.ehr.loc[same & ~here], unbiased.ehr.loc[same & ~here])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"degraded_site": "site_z"}, r"Unknown degraded_site 'site_z'; choose one of"),
        ({"rare_ethnicity": "White"}, r"rare_ethnicity='White'; choose one of"),
        ({"lesion_contrast": 0.0}, r"lesion_contrast=0.0 is out of range; pass a number in \(0"),
        ({"noise_factor": 0.5}, r"noise_factor=0.5 is out of range; pass a number in \[1.0"),
        ({"record_noise": -0.1}, r"record_noise=-0.1 is out of range; pass a number in \[0.0"),
        ({"record_missing": 1.0}, r"record_missing=1.0 is out of range; pass a number in \[0.0"),
        ({"history_capture": 0.0}, r"history_capture=0.0 is out of range; pass a number in \(0"),
        ({"rare_share": 0.5}, r"rare_share=0.5 is out of range"),
    ],
)
def test_demo_bias_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DemoBias(**kwargs)


def test_generate_cohort_rejects_a_bias_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"bias must be a DemoBias or None, got bool"):
        generate_cohort(20, image_size=16, bias=True)  # type: ignore[arg-type]


# --- Splits ------------------------------------------------------------------------------------


def test_splits_are_stratified_and_deterministic(cohort_2000: SyntheticCohort) -> None:
    labels = cohort_2000.patients["label"].to_numpy()
    splits = assign_splits(labels, seed=0)
    assert splits.shape == labels.shape
    assert set(splits.tolist()) == {"train", "val", "test"}
    for name, fraction in zip(("train", "val", "test"), (0.6, 0.2, 0.2), strict=True):
        members = splits == name
        assert abs(members.mean() - fraction) < 0.005
        assert abs(labels[members].mean() - labels.mean()) < 0.005
    assert np.array_equal(splits, assign_splits(labels, seed=0))
    assert not np.array_equal(splits, assign_splits(labels, seed=1))
    custom = assign_splits(labels, seed=0, fractions=(0.5, 0.25, 0.25))
    assert abs((custom == "test").mean() - 0.25) < 0.005


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        ([0, 1] * 10, {"fractions": (0.6, 0.2, 0.1)}, r"fractions must be three positive"),
        ([0, 1] * 10, {"fractions": (0.5, 0.5)}, r"fractions must be three positive"),
        ([[0, 1], [1, 0]], {}, r"labels must be 1-D"),
        ([0, 1, 1], {}, r"too few to fill all three splits"),
        ([0, 1] * 10, {"seed": -1}, r"seed must be >= 0"),
    ],
)
def test_assign_splits_rejects_bad_arguments(labels: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        assign_splits(labels, **kwargs)


# --- Oracle ------------------------------------------------------------------------------------


def test_oracle_fusion_beats_every_single_modality(cohort_2000: SyntheticCohort) -> None:
    scores = oracle_aurocs(cohort_2000)
    assert list(scores) == ["all", *MODALITIES]
    best_single = max(scores[name] for name in MODALITIES)
    assert scores["all"] - best_single >= 0.05
    for name in MODALITIES:
        assert scores[name] > 0.58, name


def test_oracle_on_a_subset(cohort_2000: SyntheticCohort) -> None:
    splits = assign_splits(cohort_2000.patients["label"], seed=0)
    scores = oracle_aurocs(cohort_2000, splits == "test")
    assert all(0.5 < value < 1.0 for value in scores.values())
    with pytest.raises(ValueError, match=r"mask must be a boolean array of shape \(2000,\)"):
        oracle_aurocs(cohort_2000, np.ones(10, dtype=bool))
    one_class = (cohort_2000.patients["label"] == 1).to_numpy()
    with pytest.raises(ValueError, match=r"single label class"):
        oracle_aurocs(cohort_2000, one_class)


# --- Validation, logging, docs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_patients": 5}, ValueError, r"n_patients must be between 10 and 9999999, got 5"),
        ({"n_patients": 10_000_000}, ValueError, r"n_patients must be between 10"),
        ({"n_patients": 20.5}, TypeError, r"n_patients must be an int, got float 20.5"),
        ({"n_patients": True}, TypeError, r"n_patients must be an int"),
        ({"seed": -3}, ValueError, r"seed must be >= 0, got -3; pass a non-negative seed"),
        ({"image_size": 8}, ValueError, r"image_size must be between 16 and 1024, got 8"),
    ],
)
def test_generate_cohort_rejects_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    arguments = {"n_patients": 20, "seed": 0, "image_size": 16} | kwargs
    with pytest.raises(error, match=match):
        generate_cohort(**arguments)


@pytest.mark.parametrize(("start", "stop"), [(-1, 3), (5, 2), (0, 121)])
def test_render_rejects_bad_ranges(small: SyntheticCohort, start: int, stop: int) -> None:
    with pytest.raises(ValueError, match=r"need 0 <= start <= stop <= n_patients=120"):
        small.render(start, stop)


def test_iter_scans_rejects_bad_chunk_size(small: SyntheticCohort) -> None:
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int, got 0"):
        next(small.iter_scans(chunk_size=0))


def test_logs_hold_no_patient_ids(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="data.synthetic"):
        generate_cohort(30, seed=0, image_size=16)
    assert "Generated synthetic cohort" in caplog.text
    assert "P00" not in caplog.text


def test_docstring_examples() -> None:
    from data.synthetic import bias, cohort, oracle, scans, world

    for module in (synthetic, bias, cohort, oracle, parameters, scans, world, splits):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
