"""The words a cohort gets: its outcome, its modalities, an example id, demo or not.

Owns :class:`CohortWords`, :func:`read_cohort_words` (a few small indexed reads) and
:func:`cohort_words` (read once per service and kept beside it). Pages, reports, files and the
command line take their outcome name ("Fused risk (Current diagnosis)"), their modality lists and
their demo-only sentences from here, so a real cohort never sees "5-year event", genomics it does
not have, or "rebuild the demo". Must not import streamlit.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data.store import CohortStore
from data.vocabulary import MASKABLE_MODALITIES, MaskableModality, OutcomeSpec
from fusion.features import FeatureSet

if TYPE_CHECKING:
    from fusion.service.facade import RiskService

__all__ = ["CohortWords", "cohort_words", "read_cohort_words", "retrain_hint"]

# One CohortWords per live service (the dashboard's cached one, a CLI command's).
_WORDS: weakref.WeakKeyDictionary[RiskService, CohortWords] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class CohortWords:
    """What a page may say about the stored cohort.

    Attributes
    ----------
    outcome : OutcomeSpec
        What the risk is the probability of.
    modalities : tuple of str
        The modalities the active model has inputs of, in model order.
    maskable : tuple of str
        Of those, the ones a what-if may switch off, in toggle order.
    example_id : str
        A patient id of the store (for a search box's placeholder); ``""`` if empty.
    is_demo : bool
        Whether the cohort is the synthetic demo (ground truth: oracle, true lesion outlines,
        "rebuild the demo").
    """

    outcome: OutcomeSpec
    modalities: tuple[str, ...]
    maskable: tuple[MaskableModality, ...]
    example_id: str
    is_demo: bool


def read_cohort_words(store: CohortStore, features: FeatureSet) -> CohortWords:
    """The stored cohort's words (outcome declaration, first patient id, ground truth)."""
    present = features.present_modalities
    first = store.search_patients("", limit=1)
    return CohortWords(
        outcome=store.outcome_spec(),
        modalities=present,
        maskable=tuple(m for m in MASKABLE_MODALITIES if m in present),
        example_id=str(first["patient_id"].iloc[0]) if len(first) else "",
        is_demo=store.has_ground_truth(),
    )


def cohort_words(service: RiskService) -> CohortWords:
    """The words of the service's cohort, read on first use and kept while the service lives.

    An import that only edits ``[outcome]`` shows after a restart of the dashboard (a new
    service); ``riskfusion`` commands read it afresh.
    """
    words = _WORDS.get(service)
    if words is None:
        words = _WORDS[service] = read_cohort_words(service.store, service.features)
    return words


def retrain_hint(is_demo: bool) -> str:
    """How to build what a model version lacks: rebuild the demo, or retrain the cohort.

    Examples
    --------
    >>> retrain_hint(False)
    'retrain the model (`riskfusion train`)'
    """
    if is_demo:
        return "rebuild the demo (`riskfusion demo --no-serve --rebuild`)"
    return "retrain the model (`riskfusion train`)"
