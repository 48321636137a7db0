"""Feature set metadata and the feature matrix built from a wide patient frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from data.vocabulary import MODALITIES
from fusion.features import IMAGE_FEATURE, FeatureSet, build_feature_matrix


@pytest.fixture
def catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["sbp", "age", "sex_male", "snp_a"],
            "modality": ["ehr", "demographics", "demographics", "genomics"],
            "label": ["Systolic BP", "Age", "Male", "SNP A"],
            "unit": ["mmHg", "years", "", ""],
            "kind": ["continuous", "continuous", "binary", "genotype"],
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    """A wide patient frame as the store returns it, columns in another order."""
    return pd.DataFrame(
        {
            "snp_a": [2, 0, 1],
            "patient_id": ["P0000003", "P0000001", "P0000002"],
            "sex": ["M", "F", "M"],
            "sbp": [120.0, np.nan, 140.5],
            "age": [61.0, 45.5, 70.0],
            "split": ["train", "val", "test"],
            IMAGE_FEATURE: [0.3, -1.2, np.nan],
        }
    )


def test_from_catalog_appends_the_image_feature(catalog: pd.DataFrame) -> None:
    features = FeatureSet.from_catalog(catalog)
    assert features.names == ("sbp", "age", "sex_male", "snp_a", IMAGE_FEATURE)
    assert features.modalities == ("ehr", "demographics", "demographics", "genomics", "imaging")
    assert features.labels[-1] == "Scan score (CNN logit)"
    assert features.units == ("mmHg", "years", "", "", "logit")
    assert set(features.modalities) <= set(MODALITIES)


def test_from_catalog_without_image(catalog: pd.DataFrame) -> None:
    features = FeatureSet.from_catalog(catalog, with_image=False)
    assert features.names == ("sbp", "age", "sex_male", "snp_a")
    assert "imaging" not in features.modalities
    assert len(features.labels) == len(features.units) == 4


def test_from_catalog_rejects_unknown_modality(catalog: pd.DataFrame) -> None:
    catalog.loc[0, "modality"] = "labs"
    with pytest.raises(ValueError, match=r"Unknown modalities \['labs'\] in the catalogue"):
        FeatureSet.from_catalog(catalog)


def test_from_catalog_rejects_missing_columns(catalog: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['unit'\]"):
        FeatureSet.from_catalog(catalog.drop(columns="unit"))


def test_feature_set_is_frozen(catalog: pd.DataFrame) -> None:
    features = FeatureSet.from_catalog(catalog)
    with pytest.raises(dataclasses.FrozenInstanceError):
        features.names = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("modalities", "names"),
    [
        (["ehr"], ("sbp",)),
        (["imaging"], (IMAGE_FEATURE,)),
        (["genomics", "demographics"], ("age", "sex_male", "snp_a")),  # keeps model order
    ],
)
def test_subset_keeps_model_order(
    catalog: pd.DataFrame, modalities: list[str], names: tuple[str, ...]
) -> None:
    subset = FeatureSet.from_catalog(catalog).subset(modalities)
    assert subset.names == names
    assert set(subset.modalities) == set(modalities)
    assert len(subset.labels) == len(subset.units) == len(names)


def test_subset_errors(catalog: pd.DataFrame) -> None:
    features = FeatureSet.from_catalog(catalog, with_image=False)
    with pytest.raises(ValueError, match=r"Unknown modalities \['radiology'\]; choose from"):
        features.subset(["radiology"])
    with pytest.raises(ValueError, match=r"No inputs of modalities \['imaging'\]"):
        features.subset(["imaging"])


def test_build_feature_matrix(catalog: pd.DataFrame, frame: pd.DataFrame) -> None:
    features = FeatureSet.from_catalog(catalog)
    X = build_feature_matrix(frame, features)

    assert list(X.columns) == list(features.names)
    assert X.index.name == "patient_id"
    assert X.index.tolist() == ["P0000003", "P0000001", "P0000002"]  # row order kept
    assert (X.dtypes == np.float64).all()
    assert X["sex_male"].tolist() == [1.0, 0.0, 1.0]
    assert X["snp_a"].tolist() == [2.0, 0.0, 1.0]
    assert X.loc["P0000001", "age"] == 45.5
    # Missing values stay missing (LightGBM handles them).
    assert np.isnan(X.loc["P0000001", "sbp"])
    assert np.isnan(X.loc["P0000002", IMAGE_FEATURE])
    assert X.isna().sum().sum() == 2


def test_build_feature_matrix_reports_a_missing_feature(
    catalog: pd.DataFrame, frame: pd.DataFrame
) -> None:
    with pytest.raises(ValueError, match=r"Feature 'sbp' is missing from the patient frame"):
        build_feature_matrix(frame.drop(columns="sbp"), FeatureSet.from_catalog(catalog))
    with pytest.raises(ValueError, match=rf"Feature '{IMAGE_FEATURE}' is missing"):
        build_feature_matrix(frame.drop(columns=IMAGE_FEATURE), FeatureSet.from_catalog(catalog))


def test_build_feature_matrix_rejects_non_numeric_values(
    catalog: pd.DataFrame, frame: pd.DataFrame
) -> None:
    frame["sbp"] = frame["sbp"].astype(object)
    frame.loc[0, "sbp"] = "high"
    with pytest.raises(ValueError, match="high"):
        build_feature_matrix(frame, FeatureSet.from_catalog(catalog, with_image=False))
