"""Tabular feature matrix of the fusion model.

Owns the fixed order of model inputs and their metadata (modality, readable label, unit). Turns
the store's wide patient frame plus the cross-fitted image score into ``X``. Must not import
streamlit or the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.vocabulary import MODALITIES

__all__ = [
    "DERIVED_DEMOGRAPHICS",
    "IMAGE_FEATURE",
    "FeatureSet",
    "build_feature_matrix",
    "image_scores",
]

IMAGE_FEATURE = "image_score"
IMAGE_FEATURE_LABEL = "Scan score (CNN logit)"
# Demographic inputs derived from the demographics table rather than stored as values.
DERIVED_DEMOGRAPHICS = {"sex_male": lambda frame: (frame["sex"] == "M").astype(np.float64)}


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Names and metadata of the fusion model's inputs, in model order.

    Attributes
    ----------
    names : tuple of str
        Column names of ``X``.
    modalities : tuple of str
        Modality of each input, one of :data:`data.vocabulary.MODALITIES`.
    labels : tuple of str
        Readable name of each input.
    units : tuple of str
        Unit of each input (``""`` if unitless).
    """

    names: tuple[str, ...]
    modalities: tuple[str, ...]
    labels: tuple[str, ...]
    units: tuple[str, ...]

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame, *, with_image: bool = True) -> FeatureSet:
        """Build the feature set from the store's feature catalogue (plus the image score)."""
        missing = {"name", "modality", "label", "unit"} - set(catalog.columns)
        if missing:
            raise ValueError(f"Feature catalogue lacks columns {sorted(missing)}.")
        unknown = sorted(set(catalog["modality"]) - set(MODALITIES))
        if unknown:
            raise ValueError(
                f"Unknown modalities {unknown} in the catalogue; allowed: {MODALITIES}."
            )
        names = [str(n) for n in catalog["name"]]
        modalities = [str(m) for m in catalog["modality"]]
        labels = [str(x) for x in catalog["label"]]
        units = [str(u) for u in catalog["unit"]]
        if with_image:
            names.append(IMAGE_FEATURE)
            modalities.append("imaging")
            labels.append(IMAGE_FEATURE_LABEL)
            units.append("logit")
        return cls(tuple(names), tuple(modalities), tuple(labels), tuple(units))

    @property
    def present_modalities(self) -> tuple[str, ...]:
        """The modalities with at least one input, in :data:`MODALITIES` order.

        A cohort imported without genomics has no genomics input, so pages, reports and files
        show exactly the modalities of this tuple.

        Examples
        --------
        >>> FeatureSet(("age", "image_score"), ("demographics", "imaging"), ("Age", "Scan"),
        ...            ("years", "logit")).present_modalities
        ('demographics', 'imaging')
        """
        return tuple(m for m in MODALITIES if m in self.modalities)

    def subset(self, modalities: Sequence[str]) -> FeatureSet:
        """The inputs of some modalities only (for single-modality baselines)."""
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown:
            raise ValueError(f"Unknown modalities {unknown}; choose from {list(MODALITIES)}.")
        keep = [i for i, m in enumerate(self.modalities) if m in modalities]
        if not keep:
            raise ValueError(f"No inputs of modalities {list(modalities)} in this feature set.")
        return FeatureSet(
            tuple(self.names[i] for i in keep),
            tuple(self.modalities[i] for i in keep),
            tuple(self.labels[i] for i in keep),
            tuple(self.units[i] for i in keep),
        )


def build_feature_matrix(frame: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    """Select and derive the model inputs from a wide patient frame.

    Parameters
    ----------
    frame : DataFrame of shape (n_samples, ...)
        Wide patient frame from :meth:`data.store.CohortStore.iter_patient_frames`, with
        ``image_score`` joined when the feature set uses it.
    features : FeatureSet
        Inputs to build, in model order.

    Returns
    -------
    DataFrame of shape (n_samples, n_features)
        Float64 columns in ``features.names`` order, indexed by ``patient_id``; NaN where a
        value is missing (LightGBM handles missing values natively).

    Raises
    ------
    ValueError
        If a required column is absent.

    Examples
    --------
    >>> fs = FeatureSet(("age", "sex_male"), ("demographics",) * 2, ("Age", "Male"), ("y", ""))
    >>> frame = pd.DataFrame({"patient_id": ["P1"], "age": [61.0], "sex": ["M"]})
    >>> build_feature_matrix(frame, fs).to_dict("records")
    [{'age': 61.0, 'sex_male': 1.0}]
    """
    columns: dict[str, np.ndarray] = {}
    for name in features.names:
        if name in DERIVED_DEMOGRAPHICS and name not in frame.columns:
            columns[name] = DERIVED_DEMOGRAPHICS[name](frame).to_numpy()
        elif name in frame.columns:
            columns[name] = pd.to_numeric(frame[name], errors="raise").to_numpy(np.float64)
        else:
            raise ValueError(
                f"Feature {name!r} is missing from the patient frame; it has columns "
                f"{sorted(map(str, frame.columns))[:20]}... Rebuild the store or the feature set."
            )
    X = pd.DataFrame(columns, index=pd.Index(frame["patient_id"].astype(str), name="patient_id"))
    return X.loc[:, list(features.names)]


def image_scores(embeddings: pd.DataFrame, scaling: Mapping[str, Sequence[float]]) -> pd.Series:
    """Per-patient image score from the fold nets that never trained on the patient.

    The score is the mean of those nets' standardised logits.

    Parameters
    ----------
    embeddings : DataFrame
        Rows of :meth:`data.store.CohortStore.load_embeddings` (``patient_id, fold,
        in_training, logit``).
    scaling : mapping of fold (str) to ``[mean, sd]``
        From :func:`logit_scaling`, stored with the imaging model version.

    Returns
    -------
    Series
        ``image_score`` indexed by ``patient_id``.
    """
    unseen = embeddings.loc[~embeddings["in_training"]]
    folds = unseen["fold"].astype(str)
    mean = folds.map(lambda k: scaling[k][0]).astype(np.float64)
    sd = folds.map(lambda k: scaling[k][1]).astype(np.float64)
    standardised = (unseen["logit"] - mean) / sd
    return standardised.groupby(unseen["patient_id"]).mean().rename(IMAGE_FEATURE)


def modality_columns(features: FeatureSet) -> dict[str, tuple[str, ...]]:
    """The inputs of each modality of a feature set, in model order.

    Examples
    --------
    >>> features = FeatureSet(("age", "bp", "image_score"), ("demographics", "ehr", "imaging"),
    ...                       ("Age", "BP", "Scan"), ("years", "mmHg", "logit"))
    >>> modality_columns(features)["imaging"]
    ('image_score',)
    """
    return {
        modality: tuple(
            name
            for name, of in zip(features.names, features.modalities, strict=True)
            if of == modality
        )
        for modality in MODALITIES
    }


def mask_modalities(
    X: pd.DataFrame, columns: Mapping[str, Sequence[str]], missing: Sequence[str]
) -> pd.DataFrame:
    """``X`` with every input of the ``missing`` modalities set to missing (NaN).

    The fusion model scores a missing input the way it learnt missing values in training, so
    this is "that modality is not available" (what-if, calibrated intervals without a modality).

    Parameters
    ----------
    X : DataFrame of shape (n_samples, n_features)
        Fused inputs.
    columns : mapping of modality to sequence of str
        The inputs of each modality (:func:`modality_columns`); modalities not listed have none.
    missing : sequence of str
        Modalities to mask.

    Returns
    -------
    DataFrame
        A masked copy, or ``X`` itself when nothing is masked.

    Examples
    --------
    >>> X = pd.DataFrame({"bp": [120.0], "image_score": [1.5]})
    >>> mask_modalities(X, {"imaging": ("image_score",)}, ["imaging"]).iloc[0].tolist()
    [120.0, nan]
    """
    masked = [column for modality in missing for column in columns.get(modality, ())]
    if not masked:
        return X
    edited = X.copy()
    edited.loc[:, masked] = np.nan
    return edited
