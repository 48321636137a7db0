"""The synthetic cohort: its frames, lazy scans and the generator entry point.

Owns :class:`SyntheticCohort` and :func:`generate_cohort`. Imports only :mod:`data.vocabulary`
and the sibling modules ``parameters``, ``bias``, ``world`` and ``scans``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from data.synthetic.bias import DEMO_BIAS, DemoBias
from data.synthetic.parameters import CATEGORIES, MAX_PATIENTS, MIN_IMAGE_SIZE, MIN_PATIENTS
from data.synthetic.scans import render_scans
from data.synthetic.world import patient_ids, simulate_world
from data.vocabulary import SITES

__all__ = ["SyntheticCohort", "generate_cohort"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticCohort:
    """A synthetic multimodal cohort with its ground truth; scans are rendered on demand.

    Build it with :func:`generate_cohort`. All frames are row-aligned by patient (row ``i`` of
    every per-patient frame is the same patient) except ``lesions``, which has one row per lesion
    sorted by patient.

    Attributes
    ----------
    n_patients : int
        Number of patients.
    seed : int
        Seed of the world; with ``n_patients`` and ``bias`` it determines everything.
    image_size : int
        Side ``H = W`` of the rendered scans in pixels.
    patients : pandas.DataFrame
        ``patient_id`` (``"P0000001"``...), ``age`` (years), ``sex`` (``"F"``/``"M"``),
        ``ethnicity``, ``site``, ``treatment`` (one of :data:`TREATMENTS`), ``label`` (1 if the
        event happens within :data:`HORIZON_YEARS`; known for every patient), ``event_time``
        (years, ``min(event time, censoring time)``) and ``event`` (1 if the event was observed
        before censoring).
    ehr : pandas.DataFrame
        ``patient_id`` and the EHR inputs of :data:`FEATURE_SPECS` (float64, NaN where missing)
        as recorded: under ``bias``, the degraded site's record is noisier and less complete
        (:meth:`DemoBias.record`); ``truth`` comes from the true values.
    genomics : pandas.DataFrame
        ``patient_id`` and the ``snp_*`` and ``driver_*`` inputs (int8, never missing).
    truth : pandas.DataFrame
        ``patient_id``; ``true_risk`` (probability of the event within the horizon under the
        received treatment) and ``true_risk_none``, ``true_risk_standard``,
        ``true_risk_targeted`` (the same under each treatment); the additive logit components
        ``logit_demographics``, ``logit_ehr``, ``logit_genomics``, ``logit_imaging``;
        ``lesion_count``, ``lesion_area`` (summed ellipse area ``pi * ry * rx`` as a fraction of
        the image, overlaps counted twice) and the latent ``severity`` and ``imaging_severity``.
    lesions : pandas.DataFrame
        One row per lesion: ``patient_id``, centre ``cy``, ``cx`` and semi-axes ``ry``, ``rx``
        (fractions of the image side), ``angle`` (radians), ``contrast`` (intensity above the
        tissue) and ``texture`` (relative intensity heterogeneity). ``contrast`` is the true
        contrast; a degraded scanner (``bias``) shows it reduced.
    bias : DemoBias or None, default=None
        The bias injected into what is observed (recruitment, scans and records), or None.
    """

    n_patients: int
    seed: int
    image_size: int
    patients: pd.DataFrame
    ehr: pd.DataFrame
    genomics: pd.DataFrame
    truth: pd.DataFrame
    lesions: pd.DataFrame
    bias: DemoBias | None = None
    _lesion_offsets: npt.NDArray[np.int64] = field(init=False, repr=False)
    _lesion_params: npt.NDArray[np.float64] = field(init=False, repr=False)
    _site_codes: npt.NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        frames = {
            "patients": self.patients,
            "ehr": self.ehr,
            "genomics": self.genomics,
            "truth": self.truth,
        }
        for name, frame in frames.items():
            if len(frame) != self.n_patients:
                raise ValueError(
                    f"Frame {name!r} has {len(frame)} rows but n_patients={self.n_patients}; "
                    "build cohorts with generate_cohort()."
                )
        counts = self.truth["lesion_count"].to_numpy(dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if offsets[-1] != len(self.lesions):
            raise ValueError(
                f"truth.lesion_count sums to {offsets[-1]} but lesions has {len(self.lesions)} "
                "rows; build cohorts with generate_cohort()."
            )
        params = self.lesions[["cy", "cx", "ry", "rx", "angle", "contrast", "texture"]]
        site_codes = pd.Categorical(self.patients["site"], categories=SITES).codes
        if np.any(site_codes < 0):
            raise ValueError(f"patients.site holds values outside {SITES}.")
        object.__setattr__(self, "_lesion_offsets", offsets)
        object.__setattr__(self, "_lesion_params", params.to_numpy(dtype=np.float64))
        object.__setattr__(self, "_site_codes", np.asarray(site_codes, dtype=np.int64))

    def render(
        self, start: int, stop: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """Render the scans and true lesion masks of patients ``start`` to ``stop - 1``.

        Each patient's pixels come from a random stream seeded by ``(seed, patient index)``, so
        rendering any chunk gives the same pixels as rendering the whole cohort.

        Parameters
        ----------
        start, stop : int
            Row range of ``patients`` (``0 <= start <= stop <= n_patients``).

        Returns
        -------
        images : numpy.ndarray of shape (stop - start, H, W), float32
            Scans: body outline, organ-like structures, smooth texture and bright textured
            lesions, with the site's scanner gain, offset, contrast curve, sharpness and noise
            (and, at a degraded site under ``bias``, fainter lesions, more blur and noise).
            Not normalised: air is about 0 (site offset), soft tissue about 0.4, lesions 0.25
            to 0.8 brighter than the tissue around them.
        masks : numpy.ndarray of shape (stop - start, H, W), uint8
            1 inside the union of the patient's lesion ellipses, else 0.

        Raises
        ------
        ValueError
            If the range is outside ``[0, n_patients]`` or ``start > stop``.
        """
        if not (0 <= start <= stop <= self.n_patients):
            raise ValueError(
                f"Invalid patient range start={start}, stop={stop}; "
                f"need 0 <= start <= stop <= n_patients={self.n_patients}."
            )
        return render_scans(
            seed=self.seed,
            bias=self.bias,
            indices=np.arange(start, stop, dtype=np.int64),
            site_codes=self._site_codes[start:stop],
            lesion_params=self._lesion_params[
                self._lesion_offsets[start] : self._lesion_offsets[stop]
            ],
            lesion_counts=np.diff(self._lesion_offsets[start : stop + 1]),
            size=self.image_size,
        )

    def iter_scans(
        self, chunk_size: int = 256
    ) -> Iterator[tuple[list[str], npt.NDArray[np.float32], npt.NDArray[np.uint8]]]:
        """Render the cohort chunk by chunk, in patient order.

        Parameters
        ----------
        chunk_size : int, default=256
            Patients per chunk; peak memory is about ``5 * chunk_size * H * W`` floats.

        Yields
        ------
        patient_ids : list of str
            Identifiers of the chunk's patients.
        images : numpy.ndarray of shape (n, H, W), float32
            Their scans (see :meth:`render`).
        masks : numpy.ndarray of shape (n, H, W), uint8
            Their true lesion masks.

        Raises
        ------
        ValueError
            If ``chunk_size < 1``.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(
                f"chunk_size must be a positive int, got {chunk_size!r}; use e.g. 256."
            )
        ids = self.patients["patient_id"].tolist()
        for start in range(0, self.n_patients, chunk_size):
            stop = min(start + chunk_size, self.n_patients)
            images, masks = self.render(start, stop)
            yield [str(pid) for pid in ids[start:stop]], images, masks


def _check_int(name: str, value: object, low: int, high: int | None, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}; {hint}.")
    number = int(value)
    if number < low or (high is not None and number > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {allowed}, got {number}; {hint}.")
    return number


def generate_cohort(
    n_patients: int = 2000,
    seed: int = 0,
    *,
    image_size: int = 128,
    bias: DemoBias | None = DEMO_BIAS,
) -> SyntheticCohort:
    """Generate the synthetic cohort, a pure function of ``(n_patients, seed, bias)``.

    The tabular data and ground truth are simulated at once (vectorised); scans are rendered
    lazily by :meth:`SyntheticCohort.render` / :meth:`SyntheticCohort.iter_scans`.

    Parameters
    ----------
    n_patients : int, default=2000
        Number of patients, between 10 and 9,999,999.
    seed : int, default=0
        Non-negative seed of the world.
    image_size : int, default=128
        Side of the rendered scans in pixels (at least 16). It changes only the pixels, never
        the tabular data or the truth.
    bias : DemoBias or None, default=DEMO_BIAS
        Deliberate, documented bias in what is observed (see :class:`DemoBias`): a degraded
        scanner and poorer data capture at one site, and an under-recruited group. None gives
        the unbiased world: the same patients draw for draw, except those whose ethnicity the
        recruitment bias changes (and everything that depends on it), with scans of equal
        quality and complete, unperturbed records at every site.

    Returns
    -------
    SyntheticCohort
        Frames ``patients``, ``ehr``, ``genomics``, ``truth`` and ``lesions``.

    Raises
    ------
    TypeError
        If an argument is not an int.
    ValueError
        If an argument is out of range.

    Examples
    --------
    >>> cohort = generate_cohort(100, seed=1, image_size=32)
    >>> cohort.patients["patient_id"].iloc[0]
    'P0000001'
    >>> images, masks = cohort.render(0, 4)
    >>> images.shape, masks.dtype
    ((4, 32, 32), dtype('uint8'))
    """
    n = _check_int(
        "n_patients", n_patients, MIN_PATIENTS, MAX_PATIENTS, "pass e.g. n_patients=2000"
    )
    seed = _check_int("seed", seed, 0, None, "pass a non-negative seed such as 0")
    size = _check_int("image_size", image_size, MIN_IMAGE_SIZE, 1024, "use e.g. image_size=128")

    if bias is not None and not isinstance(bias, DemoBias):
        raise TypeError(
            f"bias must be a DemoBias or None, got {type(bias).__name__} {bias!r}; pass "
            "DEMO_BIAS (default) or None to turn the bias off."
        )
    world = simulate_world(n, seed, bias)
    ids = pd.array(patient_ids(n), dtype="str")
    columns = {
        name: pd.array(list(CATEGORIES[name]), dtype="str").take(values.astype(np.intp))
        if name in CATEGORIES
        else values
        for name, values in world.columns.items()
    }
    patients = pd.DataFrame({"patient_id": ids, **columns})
    ehr = pd.DataFrame({"patient_id": ids, **world.ehr})
    genomics = pd.DataFrame({"patient_id": ids, **world.genomics})
    truth = pd.DataFrame({"patient_id": ids, **world.truth})
    lesions = pd.DataFrame({"patient_id": ids.take(world.lesion_patient), **world.lesions})
    logger.info(
        "Generated synthetic cohort: n_patients=%d seed=%d bias=%s prevalence=%.3f lesions=%d",
        n,
        seed,
        "off" if bias is None else "on",
        float(world.columns["label"].mean()),
        len(lesions),
    )
    return SyntheticCohort(n, seed, size, patients, ehr, genomics, truth, lesions, bias)
