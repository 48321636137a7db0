"""The facts a clinician checks a patient's identity by, in words (page header, sidebar, report).

Every patient page and the HTML report name the patient the same way: the id, then age, sex,
split and cohort, all read from the :class:`fusion.records.RiskResult` that also carries the
numbers shown, so a header can never name one patient while the numbers belong to another.
Must not import streamlit.
"""

from __future__ import annotations

import math

from fusion.records import RiskResult

__all__ = [
    "SEX_WORDS",
    "SPLIT_WORDS",
    "age_words",
    "cohort_words",
    "identity_facts",
    "identity_line",
    "sex_words",
]

SEX_WORDS = {"F": "female", "M": "male"}
SPLIT_WORDS = {
    "train": "training split",
    "val": "validation split",
    "test": "test split",
}


def age_words(age: float | None) -> str:
    """Age in completed years, as a clinician states it.

    Examples
    --------
    >>> age_words(67.9)
    '67 years'
    >>> age_words(float("nan"))
    'age not recorded'
    """
    if age is None or math.isnan(age):
        return "age not recorded"
    return f"{math.floor(age):.0f} years"


def sex_words(sex: str | None) -> str:
    """The stored sex code in words; an unknown code is shown as stored, never guessed.

    Examples
    --------
    >>> sex_words("F"), sex_words("X"), sex_words(None)
    ('female', 'sex X', 'sex not recorded')
    """
    if not sex:
        return "sex not recorded"
    return SEX_WORDS.get(sex, f"sex {sex}")


def cohort_words(source: str | None) -> str:
    """The cohort a patient comes from, in words.

    Examples
    --------
    >>> cohort_words("synthetic")
    'synthetic demo cohort'
    >>> cohort_words("import:hospital-a")
    'imported cohort hospital-a'
    >>> cohort_words(None)
    'cohort not recorded'
    """
    if not source:
        return "cohort not recorded"
    if source == "synthetic":
        return "synthetic demo cohort"
    if source.startswith("import:"):
        return f"imported cohort {source.removeprefix('import:')}"
    return f"cohort {source}"


def identity_facts(result: RiskResult) -> list[str]:
    """Age, sex, split, site and cohort of the patient whose risk ``result`` holds.

    Unknown sex codes and splits are shown as stored, never guessed; a missing age or sex says
    "not recorded".

    Examples
    --------
    >>> from fusion.records import RiskResult
    >>> result = RiskResult(
    ...     "P0000474", 0.766, "fusion-v1", 0.22, "test", 1, None, None,
    ...     age=67.4, sex="F", site="B", cohort="synthetic",
    ... )
    >>> identity_facts(result)
    ['67 years', 'female', 'test split', 'site B', 'synthetic demo cohort']
    """
    facts = [
        age_words(result.age),
        sex_words(result.sex),
        SPLIT_WORDS.get(result.split, f"{result.split} split"),
    ]
    if result.site:  # stored as "B" or as "site_b": say "site" once
        site = result.site
        facts.append(site if site.lower().startswith("site") else f"site {site}")
    facts.append(cohort_words(result.cohort))
    return facts


def identity_line(result: RiskResult) -> str:
    """The patient id and :func:`identity_facts` on one line.

    Examples
    --------
    >>> from fusion.records import RiskResult
    >>> identity_line(RiskResult("P1", 0.1, "v", 0.2, "train", 0, None, None, age=50.0, sex="M"))
    'P1 · 50 years · male · training split · cohort not recorded'
    """
    return " · ".join([result.patient_id, *identity_facts(result)])
