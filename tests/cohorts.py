"""Cohort folders for tests: copies of the shipped example with a known problem, and cohorts
unlike the demo world (:func:`write_unlike_cohort`).

The demo world is polished: every patient has a scan, genomics, a 5-year event with its time and
treatment, and each modality carries signal. A real cohort need not: :func:`write_unlike_cohort`
writes one that differs in every way issue 15 lists, small enough for a test (200 patients, 32x32
scans, a few seconds to write).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image

from fusion.admin.uploads import EXAMPLE_COHORT

UNLIKE_OUTCOME = "Current diagnosis"
"""The declared outcome of :func:`write_unlike_cohort` (cross-sectional: no horizon)."""


def broken_copy(folder: Path) -> Path:
    """Copy the shipped example to ``folder`` with ``age = "twenty"`` in its first patient row."""
    cohort = Path(shutil.copytree(EXAMPLE_COHORT, folder))
    patients = cohort / "patients.csv"
    lines = patients.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("age")] = "twenty"
    lines[1] = ",".join(row)
    patients.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cohort


@dataclass(frozen=True, slots=True)
class UnlikeCohort:
    """What :func:`write_unlike_cohort` wrote (for assertions).

    Attributes
    ----------
    folder : Path
        The cohort folder (``schema.toml``, ``patients.csv``, ``outcomes.csv``, ``images/``).
    patient_ids : tuple of str
        Ids as written in the files (lower-case; the importer stores them upper-case).
    with_scan : tuple of str
        The patients with a scan (as written).
    wrong_unit_rows : tuple of int
        Spreadsheet rows of ``patients.csv`` whose ``brain_volume`` is in mm³ instead of mL.
    """

    folder: Path
    patient_ids: tuple[str, ...]
    with_scan: tuple[str, ...]
    wrong_unit_rows: tuple[int, ...]


def write_unlike_cohort(
    folder: Path,
    *,
    n_patients: int = 200,
    seed: int = 0,
    scan_share: float = 0.6,
    mixed_units: Literal["none", "tight", "loose"] = "none",
    wrong_unit_share: float = 0.93,
    image_size: int = 32,
) -> UnlikeCohort:
    """Write a cohort folder unlike the demo world.

    About ``n_patients`` memory-clinic patients with lower-case ids (``mem-0001``); one 2D MR
    slice (PNG) for a ``scan_share`` of them, pure noise (an uninformative modality); no
    genomics file; a cross-sectional binary outcome (``label`` only: no event time, no
    treatment) declared in ``schema.toml`` as "Current diagnosis" without a horizon; one strong
    tabular predictor (``cognitive_score``) and weak ones (age, ``brain_volume``);
    socio-economic status missing for some; no ``split`` column (the hash split applies).

    Parameters
    ----------
    folder : Path
        Target folder (created; must not exist).
    n_patients : int, default=200
        Number of patients.
    seed : int, default=0
        Seed of every random draw.
    scan_share : float, default=0.6
        Share of patients with a scan.
    mixed_units : {"none", "tight", "loose"}, default="none"
        ``"tight"``/``"loose"``: a ``wrong_unit_share`` of ``brain_volume`` values are written
        in mm³ (1000x the mL of the rest), with a tight (800-2000 mL) or a loose (0-2,000,000)
        declared range.
    wrong_unit_share : float, default=0.93
        Share of ``brain_volume`` values in the wrong unit when ``mixed_units`` is set.
    image_size : int, default=32
        Side of the PNG scans.

    Returns
    -------
    UnlikeCohort
        The folder and what was written.
    """
    rng = np.random.default_rng(seed)
    ids = [f"mem-{i:04d}" for i in range(1, n_patients + 1)]
    age = np.round(rng.normal(72, 8, n_patients).clip(50, 95), 1)
    sex = rng.choice(["F", "M"], n_patients)
    cognitive = np.round(rng.normal(24, 4, n_patients).clip(0, 30), 0)
    volume = np.round(rng.normal(1150, 110, n_patients).clip(850, 1600), 1)
    ses = rng.choice(["low", "middle", "high"], n_patients).astype(object)
    ses[rng.random(n_patients) < 0.2] = None  # socio-economic status not recorded for some
    logit = -1.0 - 0.9 * (cognitive - 24) + 0.03 * (age - 72) - 0.002 * (volume - 1150)
    label = (rng.random(n_patients) < 1 / (1 + np.exp(-logit))).astype(int)
    wrong_rows: tuple[int, ...] = ()
    volume_cells = volume.astype(object)
    if mixed_units != "none":
        wrong = rng.random(n_patients) < wrong_unit_share
        volume_cells[wrong] = np.round(volume[wrong] * 1000.0, 0)
        wrong_rows = tuple(int(i) + 2 for i in np.flatnonzero(wrong))
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "patient_id": ids,
            "age": age,
            "sex": sex,
            "ses": ses,
            "cognitive_score": cognitive,
            "brain_volume": volume_cells,
        }
    ).to_csv(folder / "patients.csv", index=False)
    pd.DataFrame({"patient_id": ids, "label": label}).to_csv(folder / "outcomes.csv", index=False)
    images = folder / "images"
    images.mkdir()
    with_scan = [pid for pid in ids if rng.random() < scan_share]
    for pid in with_scan:  # noise: the scan says nothing about the outcome
        pixels = rng.integers(0, 256, (image_size, image_size), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{pid}.png")
    low, high = {"none": (800, 2000), "tight": (800, 2000), "loose": (0, 2_000_000)}[mixed_units]
    (folder / "schema.toml").write_text(
        f"""[cohort]
name = "memory"
id_column = "patient_id"

[outcome]
name = "{UNLIKE_OUTCOME}"
description = "Dementia diagnosed at the visit (cross-sectional)."

[images]
modality = "MR"
size = {image_size}

[columns.age]
role = "numeric"
unit = "years"
low = 40
high = 100
required = true

[columns.ses]
role = "categorical"
values = ["low", "middle", "high"]
label = "Socio-economic status"

[columns.cognitive_score]
role = "numeric"
label = "Cognitive score"
unit = "points"
low = 0
high = 30

[columns.brain_volume]
role = "numeric"
label = "Brain volume"
unit = "mL"
low = {low}
high = {high}
""",
        encoding="utf-8",
    )
    return UnlikeCohort(folder, tuple(ids), tuple(with_scan), wrong_rows)
