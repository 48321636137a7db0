"""Data layer: the clinical vocabulary, the cohort store, the synthetic world and cohort import.

``data`` is a Python package (code, not files); generated databases and scans live under the
artifacts directory. Its modules: :mod:`data.vocabulary` (modalities, model inputs, treatments,
horizon), :mod:`data.errors` (the exception family), :mod:`data.splits` (patient splits),
:mod:`data.scan_spec` (image preprocessing settings), :mod:`data.store` (the only SQL writer),
:mod:`data.synthetic` (the seeded demo world) and :mod:`data.cohort_import` (validating and
importing a real cohort). This file imports none of them, so that ``import data`` stays cheap.

It is the bottom layer: it must not import torch, streamlit or the ``models``, ``fusion`` or
``dashboard`` packages.
"""

from __future__ import annotations

__all__: list[str] = []
