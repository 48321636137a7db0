"""Age bands of the bias audit: where they start, their labels, and the ``age_band`` column.

Owns :data:`DEFAULT_AGE_CUTS` (``<50``, ``50-64``, ``65-74``, ``75+``), :func:`age_bands`,
:func:`add_age_band` and the parser of ``riskfusion audit --bins age=40,60,75``
(:func:`parse_bins`). A cohort declares its own cuts in ``schema.toml`` (``[audit] age_bands``),
stored with the import and read by the service. Pure: no SQL, no streamlit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "AGE_BANDS",
    "DEFAULT_AGE_CUTS",
    "add_age_band",
    "age_bands",
    "parse_bins",
]


DEFAULT_AGE_CUTS: tuple[float, ...] = (50.0, 65.0, 75.0)
"""Ages (years) where the default audit bands start: ``<50``, ``50-64``, ``65-74``, ``75+``.

A cohort changes them in its ``schema.toml`` (``[audit] age_bands = [40, 60, 75]``) and a run
in ``riskfusion audit --bins age=40,60,75`` (docs/models.md)."""


def age_bands(cuts: Sequence[float] = DEFAULT_AGE_CUTS) -> tuple[tuple[str, float, float], ...]:
    """The age bands ``(label, low, high)`` cut at ``cuts`` (years; low inclusive).

    Whole-year cuts read ``50-64``; other cuts ``50.5-<65``. Labels keep the band's lower bound
    first, so the ``<`` band of the youngest reads ``<50``.

    Raises
    ------
    ValueError
        If ``cuts`` is empty, has more than 8 ages, is not strictly increasing or leaves
        ``(0, 120)``.

    Examples
    --------
    >>> [label for label, _, _ in age_bands((40, 60, 75))]
    ['<40', '40-59', '60-74', '75+']
    >>> [label for label, _, _ in age_bands((62.5,))]
    ['<62.5', '62.5+']
    """
    values = [float(cut) for cut in cuts]
    if (
        not 1 <= len(values) <= 8
        or any(b <= a for a, b in itertools.pairwise(values))
        or not all(0.0 < cut < 120.0 for cut in values)
    ):
        raise ValueError(
            f"Age band cuts {values} are not valid; give 1 to 8 increasing ages in years "
            "between 0 and 120 where a band starts, e.g. 40,60,75 (bands <40, 40-59, 60-74, 75+)."
        )
    edges = [0.0, *values, np.inf]
    whole = all(cut == int(cut) for cut in values)
    bands = []
    for low, high in itertools.pairwise(edges):
        if low == 0.0:
            label = f"<{high:g}"
        elif np.isinf(high):
            label = f"{low:g}+"
        else:
            label = f"{low:g}-{high - 1:g}" if whole else f"{low:g}-<{high:g}"
        bands.append((label, low, high))
    return tuple(bands)


def parse_bins(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Band cuts from command-line ``NAME=CUT,CUT,...`` strings (``--bins age=40,60,75``).

    Raises
    ------
    ValueError
        If a spec is malformed, names anything but ``age`` or its cuts are invalid.

    Examples
    --------
    >>> parse_bins(["age=40,60,75"])
    {'age': (40.0, 60.0, 75.0)}
    """
    out: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name.strip() != "age" or not values:
            raise ValueError(
                f"--bins {spec!r}: give the age band cuts as age=CUT,CUT,... in years, "
                "e.g. --bins age=40,60,75 (only age is banded)."
            )
        try:
            cuts = tuple(float(value) for value in values.split(","))
        except ValueError:
            raise ValueError(
                f"--bins {spec!r}: the cuts must be numbers of years, e.g. age=40,60,75."
            ) from None
        age_bands(cuts)  # validates
        out["age"] = cuts
    return out


AGE_BANDS: tuple[tuple[str, float, float], ...] = age_bands()
"""The default age bands (:data:`DEFAULT_AGE_CUTS`)."""


def add_age_band(frame: pd.DataFrame, cuts: Sequence[float] = DEFAULT_AGE_CUTS) -> pd.DataFrame:
    """A copy of ``frame`` with ``age_band`` (text) cut from ``age`` in years at ``cuts``.

    See :func:`age_bands` for the labels; a missing age reads ``not recorded``.

    Examples
    --------
    >>> add_age_band(pd.DataFrame({"age": [39.9, 40.0, 80.0]}), (40, 60, 75))["age_band"].tolist()
    ['<40', '40-59', '75+']
    """
    bands = age_bands(cuts)
    edges = [low for _, low, _ in bands] + [np.inf]
    cut = pd.cut(frame["age"], edges, right=False, labels=[name for name, _, _ in bands])
    text = cut.astype(str).where(cut.notna(), "not recorded")
    return frame.assign(age_band=text)
