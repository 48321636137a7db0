"""The documented demo bias: what one site observes worse, and who is under-recruited.

Owns :class:`DemoBias` and :data:`DEMO_BIAS`. The bias changes only what is observed (scanner,
record, recruitment), never the truth. Imports only :mod:`data.vocabulary` and
:mod:`data.synthetic.parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

from data.synthetic.parameters import (
    EHR_SPECS,
    ETHNICITY_P,
    LOG_RECORDED,
    RECORDED_SPREAD,
    RECORDING_STREAM,
    SITE_SCANNERS,
    Scanner,
)
from data.vocabulary import ETHNICITIES, SITES

__all__ = ["DEMO_BIAS", "DemoBias"]


@dataclass(frozen=True, slots=True)
class DemoBias:
    """A documented bias injected into what the synthetic demo observes (never into the truth).

    Well-known failure modes of clinical cohorts, so that a bias audit finds something real:

    * **Degraded scanner at one site.** ``degraded_site``'s older scanner has poorer
      low-contrast detectability: lesions appear at ``lesion_contrast`` times their contrast,
      edges are ``blur_factor`` times softer and the noise is ``noise_factor`` times higher.
      The lesions (and so ``logit_imaging``, ``true_risk`` and ``label``) are unchanged, so the
      imaging score is less informative and biased low there: the model misses more of that
      site's events (lower TPR and AUROC, negative calibration-in-the-large).
    * **Poorer data capture at the same site.** ``degraded_site`` records its patients' vitals
      and labs (BMI, blood pressure, heart rate, HbA1c, eGFR, lipids, CRP, haemoglobin) with
      extra measurement error of ``record_noise`` times each value's population spread
      (uncalibrated point-of-care devices, values copied from old results, transcription
      slips), leaves each of them unrecorded with an extra probability ``record_missing``, and,
      since its patients are also treated elsewhere (fragmented care), holds only
      ``history_capture`` of their prior admissions and diabetes diagnoses. The true values
      still drive ``logit_ehr``, ``true_risk`` and ``label``; only the record is worse, so the
      strongest modality is less informative there and under-states the disease: the model
      ranks that site's patients worse and misses more of its events (lower AUROC and TPR).
    * **Under-represented group.** ``rare_ethnicity`` is recruited at ``rare_share`` of the
      cohort instead of its population share (the freed share goes to the largest group), so
      its metrics carry wide intervals and its intersections are small cells. It is also the
      group most often seen at the degraded site (45%).

    Attributes
    ----------
    degraded_site : str, default="site_c"
        One of :data:`SITES`.
    lesion_contrast : float, default=0.35
        Factor in (0, 1] on the lesion contrast in that site's scans.
    blur_factor : float, default=2.0
        Factor >= 1 on the width of the scanner's point-spread blur.
    noise_factor : float, default=2.5
        Factor >= 1 on the scanner noise standard deviation.
    record_noise : float, default=2.0
        Measurement-error standard deviation of that site's recorded vitals and labs, in
        multiples of each value's population spread (CRP: multiplicative, on the log scale);
        in [0, 5], 0 for none.
    record_missing : float, default=0.5
        Extra probability in [0, 0.9] that each of those values goes unrecorded at that site
        (the lipid panel as one), on top of the usual missingness.
    history_capture : float, default=0.3
        Probability in (0, 1] that each prior admission, and a diabetes diagnosis, of a patient
        of that site is in its record (1 for a complete record).
    rare_ethnicity : str, default="Black"
        One of :data:`ETHNICITIES` except the largest.
    rare_share : float, default=0.03
        Cohort share of ``rare_ethnicity``, in (0, its population share].

    Raises
    ------
    ValueError
        If a site or group is unknown, or a factor or share is out of range.

    Examples
    --------
    >>> DemoBias(lesion_contrast=0.5).degraded_site
    'site_c'
    """

    degraded_site: str = "site_c"
    lesion_contrast: float = 0.35
    blur_factor: float = 2.0
    noise_factor: float = 2.5
    record_noise: float = 2.0
    record_missing: float = 0.5
    history_capture: float = 0.3
    rare_ethnicity: str = "Black"
    rare_share: float = 0.03

    def __post_init__(self) -> None:
        if self.degraded_site not in SITES:
            raise ValueError(
                f"Unknown degraded_site {self.degraded_site!r}; choose one of {SITES}."
            )
        largest = ETHNICITIES[int(np.argmax(ETHNICITY_P))]
        if self.rare_ethnicity not in ETHNICITIES or self.rare_ethnicity == largest:
            raise ValueError(
                f"rare_ethnicity={self.rare_ethnicity!r}; choose one of "
                f"{[e for e in ETHNICITIES if e != largest]} (the largest group cannot be rare)."
            )
        population = ETHNICITY_P[ETHNICITIES.index(self.rare_ethnicity)]
        # (name, value, lowest allowed, highest allowed, whether the lowest is allowed itself)
        checks = (
            ("lesion_contrast", self.lesion_contrast, 0.0, 1.0, False),
            ("blur_factor", self.blur_factor, 1.0, 10.0, True),
            ("noise_factor", self.noise_factor, 1.0, 10.0, True),
            ("record_noise", self.record_noise, 0.0, 5.0, True),
            ("record_missing", self.record_missing, 0.0, 0.9, True),
            ("history_capture", self.history_capture, 0.0, 1.0, False),
            ("rare_share", self.rare_share, 0.0, population, False),
        )
        for name, value, low, high, closed in checks:
            if not (low <= value <= high) or (value == low and not closed):
                interval = f"{'[' if closed else '('}{low}, {high}]"
                raise ValueError(
                    f"{name}={value!r} is out of range; pass a number in {interval} "
                    f"(default {_BIAS_DEFAULTS[name]})."
                )

    def ethnicity_p(self) -> tuple[float, ...]:
        """Recruitment shares of :data:`ETHNICITIES` under this bias (summing to 1)."""
        shares = list(ETHNICITY_P)
        rare = ETHNICITIES.index(self.rare_ethnicity)
        shares[int(np.argmax(ETHNICITY_P))] += shares[rare] - self.rare_share
        shares[rare] = self.rare_share
        return tuple(shares)

    def scanners(self) -> tuple[Scanner, ...]:
        """Per-site scanners with ``degraded_site``'s blur and noise raised."""
        out = list(SITE_SCANNERS)
        site = SITES.index(self.degraded_site)
        base = out[site]
        out[site] = Scanner(
            gain=base.gain,
            offset=base.offset,
            curve=base.curve,
            edge_px=base.edge_px * self.blur_factor,
            noise_sd=base.noise_sd * self.noise_factor,
        )
        return tuple(out)

    def lesion_contrasts(self) -> tuple[float, ...]:
        """Per-site factor on the rendered lesion contrast."""
        return tuple(self.lesion_contrast if site == self.degraded_site else 1.0 for site in SITES)

    def record(
        self,
        ehr: Mapping[str, npt.NDArray[np.float64]],
        site_codes: npt.NDArray[np.int64],
        seed: int,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """The EHR as ``degraded_site`` records it: noisier, less complete, history under-held.

        Parameters
        ----------
        ehr : mapping of str to ndarray of shape (n_patients,)
            Every EHR column of :data:`EHR_COLUMNS` after the usual missingness (NaN where
            missing); not modified.
        site_codes : ndarray of int of shape (n_patients,)
            Index of each patient's site in :data:`SITES`.
        seed : int
            Seed of the world; the errors come from their own stream of it, so the rest of the
            world is drawn exactly as without the bias.

        Returns
        -------
        dict of str to ndarray of shape (n_patients,)
            The recorded columns; other sites' values are returned unchanged.
        """
        rng = np.random.default_rng([seed, RECORDING_STREAM])
        n = site_codes.size
        here = site_codes == SITES.index(self.degraded_site)
        recorded = {name: np.array(values, dtype=np.float64) for name, values in ehr.items()}
        ranges = {spec.name: (spec.low, spec.high) for spec in EHR_SPECS}
        # Every patient gets its draws, at any site and for any knob value, so they stay aligned.
        errors = rng.standard_normal((len(RECORDED_SPREAD), n))
        lost = rng.random((len(RECORDED_SPREAD), n)) < self.record_missing
        lost[list(RECORDED_SPREAD).index("hdl")] = lost[list(RECORDED_SPREAD).index("ldl")]
        for row, (name, spread) in enumerate(RECORDED_SPREAD.items()):
            true = recorded[name]
            error = self.record_noise * spread * errors[row]
            noisy = true * np.exp(error) if name in LOG_RECORDED else true + error
            noisy = np.clip(noisy, *ranges[name])
            noisy[lost[row]] = np.nan
            recorded[name] = np.where(here, noisy, true)
        admissions = rng.binomial(recorded["prior_events"].astype(np.int64), self.history_capture)
        coded = rng.random(n) < self.history_capture
        recorded["prior_events"] = np.where(here, admissions, recorded["prior_events"])
        recorded["diabetes"] = np.where(here & ~coded, 0.0, recorded["diabetes"])
        return recorded


_BIAS_DEFAULTS: Final[dict[str, object]] = {f.name: f.default for f in fields(DemoBias)}

DEMO_BIAS: Final[DemoBias] = DemoBias()
"""The bias the demo injects by default (see :class:`DemoBias`; ``bias=None`` turns it off)."""
