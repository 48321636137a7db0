"""Writer of the small example cohort shipped in ``data/examples/cohort/``.

Owns :func:`write_example_cohort` (deterministic: the same arguments give the same files) and
the tiny NIfTI / DICOM writers the tests reuse. The tables come from the seeded synthetic
generator; the scans are the synthetic 2D scans saved as PNG and ``.npy``, plus a few 3D CT
volumes (NIfTI and one DICOM series) built around them. Regenerate with
``python -m data.synthetic.example_cohort data/examples/cohort``.

Bottom layer: must not import torch, streamlit or the ``models``/``fusion``/``dashboard``
packages.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path
from typing import Final

import nibabel as nib
import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from data.splits import assign_splits
from data.synthetic import generate_cohort
from data.vocabulary import DEMO_OUTCOME, EHR_COLUMNS, ETHNICITIES, FEATURE_SPECS, SITES, TREATMENTS

__all__ = ["write_dicom", "write_example_cohort", "write_nifti"]

SMOKING: Final[tuple[str, ...]] = ("never", "former", "current")
FIXED_UID_ROOT: Final[str] = "1.2.826.0.1.3680043.10.1234."  # example root: deterministic UIDs


def write_nifti(
    path: Path, volume: npt.NDArray[np.number], spacing: tuple[float, float, float]
) -> None:
    """Write ``volume`` (X, Y, Z) as NIfTI in RAS with the given voxel spacing (mm)."""
    affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(np.asarray(volume, dtype=np.int16), affine)
    image.header.set_xyzt_units("mm")
    data = image.to_bytes()
    # gzip with a fixed timestamp: the same volume always gives the same bytes.
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def write_dicom(
    path: Path,
    pixels: npt.NDArray[np.integer],
    *,
    slice_index: int = 0,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    series: str = "1",
    patient_name: str = "",
) -> None:
    """Write one CT slice (rows, cols) as a DICOM file (HU via rescale slope 1, intercept 0).

    ``patient_name`` lets tests put personal data in the header to check it is never stored.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(f"{FIXED_UID_ROOT}{series}.{slice_index + 1}")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = f"{FIXED_UID_ROOT}{series}"
    ds.SeriesInstanceUID = f"{FIXED_UID_ROOT}{series}.0"
    ds.Modality = "CT"
    ds.PatientName = patient_name
    ds.PatientID = ""
    ds.InstanceNumber = slice_index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(slice_index * spacing[2])]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
    ds.SliceThickness = float(spacing[2])
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.int16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def _ct_volume(scan: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int16]:
    """A (X, Y, Z) CT-like volume: the 2D scan in HU on the middle slices, air elsewhere."""
    lo, hi = np.percentile(scan, [1, 99])
    hu = -200.0 + 450.0 * np.clip((scan - lo) / max(hi - lo, 1e-6), 0, 1)
    volume = np.full((*scan.shape, depth), -1000.0, dtype=np.float32)
    for z in range(depth // 4, depth - depth // 4):
        volume[:, :, z] = hu
    # (rows, cols) picture -> RAS (X, Y): columns run along X, rows from anterior down.
    return np.round(volume.transpose(1, 0, 2)[:, ::-1, :]).astype(np.int16)


def write_example_cohort(
    directory: Path, n_patients: int = 160, seed: int = 7, image_size: int = 64
) -> None:
    """Write the example cohort folder (replacing what is there).

    Parameters
    ----------
    directory : Path
        Target folder; created, and its previous contents removed.
    n_patients : int, default=160
        Cohort size (160: enough positives in each split for ``riskfusion train`` to measure
        something, under 1 MB of files).
    seed : int, default=7
        Seed of the synthetic generator.
    image_size : int, default=64
        Side of the 2D scans.
    """
    cohort = generate_cohort(n_patients, seed, image_size=image_size, bias=None)  # unbiased world
    if directory.exists():
        shutil.rmtree(directory)
    images = directory / "images"
    images.mkdir(parents=True)
    patients = cohort.patients.loc[:, ["patient_id", "age", "sex", "ethnicity", "site"]].copy()
    patients["age"] = patients["age"].round(1)
    # A stratified split column, so every split of a small cohort holds both classes.
    patients["split"] = assign_splits(cohort.patients["label"].to_numpy(), seed=seed)
    ehr = cohort.ehr.set_index("patient_id")
    for column in EHR_COLUMNS:
        values = ehr[column].to_numpy()
        if column == "smoking":
            patients[column] = [None if np.isnan(v) else SMOKING[int(v)] for v in values]
        else:
            patients[column] = np.round(values, 2)
    patients.to_csv(directory / "patients.csv", index=False)
    cohort.genomics.to_csv(directory / "genomics.csv", index=False)
    outcomes = cohort.patients.loc[:, ["patient_id", "label", "event_time", "event", "treatment"]]
    outcomes.assign(event_time=outcomes["event_time"].round(3)).to_csv(
        directory / "outcomes.csv", index=False
    )
    ids = cohort.patients["patient_id"].tolist()
    for index, (pid, scan) in enumerate(
        (pid, scan)
        for chunk_ids, scans, _ in cohort.iter_scans(64)
        for pid, scan in zip(chunk_ids, scans, strict=True)
    ):
        if index >= len(ids) - 2:
            continue  # the last two patients have no scan (a missing modality)
        if index < 2:
            write_nifti(images / f"{pid}.nii.gz", _ct_volume(scan, 8), (1.0, 1.0, 2.0))
        elif index == 2:
            series = images / pid
            series.mkdir()
            volume = _ct_volume(scan[::2, ::2], 6)  # (X, Y, Z) in RAS
            for z in range(volume.shape[2]):
                # DICOM rows run along +Y (posterior) and columns along +X (left) in LPS.
                lps = volume[::-1, ::-1, z]
                write_dicom(
                    series / f"slice_{z:02d}.dcm", lps.T, slice_index=z, spacing=(2.0, 2.0, 3.0)
                )
        elif index % 40 == 5:
            np.save(images / f"{pid}.npy", scan.astype(np.float32), allow_pickle=False)
        else:
            lo, hi = float(scan.min()), float(scan.max())
            grey = np.round(255 * (scan - lo) / max(hi - lo, 1e-6)).astype(np.uint8)
            Image.fromarray(grey).save(images / f"{pid}.png", optimize=True)
    (directory / "schema.toml").write_text(_schema_text(image_size), encoding="utf-8")


def _schema_text(image_size: int) -> str:
    """The example's schema: every column with its role, unit and plausible range."""
    lines = [
        "# Schema of the example cohort (docs/import.md). Edit roles, units and ranges here.",
        "[cohort]",
        'name = "example"',
        'id_column = "patient_id"',
        "hash_ids = false",
        "",
        "[outcome]  # what label = 1 means; no horizon_years for a cross-sectional outcome",
        f'name = "{DEMO_OUTCOME.name}"',
        'description = "An event within 5 years of baseline (synthetic world)."',
        f"horizon_years = {DEMO_OUTCOME.horizon_years:g}",
        "",
        "[images]",
        'modality = "other"   # CT | MR | other; NIfTI/DICOM below are CT in HU',
        f"size = {image_size}",
        "spacing = [1.0, 1.0, 2.0]",
        "ct_window = [-160.0, 240.0]",
        "percentiles = [1.0, 99.0]",
        'slice = "max_foreground"',
        "",
        "[columns.age]",
        'role = "numeric"',
        'unit = "years"',
        "low = 18",
        "high = 95",
        "required = true",
        "",
        "[columns.sex]",
        'role = "sensitive"',
        'values = ["F", "M"]',
        "required = true",
        "",
        "[columns.ethnicity]",
        'role = "sensitive"',
        f"values = {list(ETHNICITIES)!r}".replace("'", '"'),
        "",
        "[columns.site]",
        'role = "sensitive"',
        f"values = {list(SITES)!r}".replace("'", '"'),
        "",
        "[columns.treatment]",
        'role = "categorical"',
        f"values = {list(TREATMENTS)!r}".replace("'", '"'),
    ]
    for spec in FEATURE_SPECS:
        if spec.modality != "ehr":
            continue
        lines += ["", f"[columns.{spec.name}]"]
        if spec.name == "smoking":
            lines += ['role = "categorical"', f"values = {list(SMOKING)!r}".replace("'", '"')]
        else:
            lines.append(f'role = "{spec.kind}"')
        lines.append(f'label = "{spec.label}"')
        if spec.unit:
            lines.append(f'unit = "{spec.unit}"')
        if spec.kind in ("numeric", "count") and spec.low is not None and spec.high is not None:
            lines += [f"low = {spec.low:g}", f"high = {spec.high:g}"]
        description = "Smoking status." if spec.name == "smoking" else spec.description
        lines.append(f'description = "{description}"')
    lines += [
        "",
        '[columns."snp_*"]',
        'role = "genotype"',
        'description = "Minor-allele count at a germline variant."',
        "",
        '[columns."driver_*"]',
        'role = "binary"',
        'description = "1 if the tumour carries this driver mutation."',
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    write_example_cohort(Path(sys.argv[1] if len(sys.argv) > 1 else "data/examples/cohort"))
