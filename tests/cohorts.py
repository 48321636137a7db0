"""Cohort folders for tests: copies of the shipped example with a known problem."""

from __future__ import annotations

import shutil
from pathlib import Path

from fusion.admin.uploads import EXAMPLE_COHORT


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
