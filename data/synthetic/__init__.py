"""Seeded synthetic multimodal cohort with a known ground truth.

This package owns the synthetic world of the demo and the tests: patients with demographics,
EHR measurements, genotypes and a lazily rendered scan, a treatment assigned with confounding
by severity, and an outcome drawn from a true risk that is the sum of one additive logit
component per modality. Because the truth is known, every model can be compared with the
oracle (:func:`oracle_aurocs`).

The cohort is a pure function of ``(n_patients, seed, bias)``: the same inputs give
bit-identical frames and pixels. The tabular part is vectorised (a million patients in
seconds); scans are rendered per chunk from a per-patient random stream, so any chunk renders
the same pixels as the full cohort and memory stays bounded.

The world, in short:

* A latent disease severity (correlated with age) drives the EHR values, treatment choice and
  diabetes; a separate latent imaging severity (correlation about 0.3 with it) drives the
  lesions, so the scan carries information that the table does not.
* ``logit_demographics`` depends on age and sex, ``logit_ehr`` on the true (pre-missingness)
  EHR values, ``logit_genomics`` on five causal SNPs and three driver mutations, and
  ``logit_imaging`` on the contrast-weighted lesion area that the renderer draws.
* ``standard`` treatment lowers the logit by 0.5; ``targeted`` by 1.5 for ``driver_egfr``
  carriers and by 0.1 otherwise.
* The event time is exponential with the constant hazard that makes
  ``P(event time <= HORIZON_YEARS) = true_risk``, so ``label`` (event within
  :data:`HORIZON_YEARS`) is ``Bernoulli(true_risk)``: events of positives fall in the horizon,
  those of negatives in the exponential tail beyond it. ``label`` is known for every patient,
  censored or not: the full-information ground truth only a synthetic world allows.
  ``event_time`` and ``event`` observe the same event time under independent
  ``Uniform(1, 10)``-year censoring, for survival models.
* Scans show a body outline with a bright rim, organ-like blobs, smooth tissue texture and
  bright textured elliptical lesions; each site's scanner has its own gain, offset and contrast
  curve (differences that per-image normalisation removes) and, without bias, the same
  sharpness and noise level.
* A documented, deliberate bias (:class:`DemoBias`, on by default, ``bias=None`` turns it off)
  changes only what is *observed*, never the truth: one site's older scanner shows lesions at
  reduced contrast, blurred and under more noise, so the imaging evidence there is weaker and
  biased low; the same site's poorer data capture records vitals and labs with extra error and
  more gaps and holds only part of its patients' history (drawn from a stream of its own, after
  the rest of the world); and one ethnic group is under-recruited. ``true_risk``, the logit
  components and ``label`` keep their meaning (they come from the true values and lesions).

Modules: ``parameters`` (the world's fixed numbers and the sites' scanners), ``bias``
(:class:`DemoBias`), ``world`` (the vectorised tabular simulation), ``scans`` (the renderer),
``cohort`` (:class:`SyntheticCohort`, :func:`generate_cohort`), ``oracle`` (what the truth
alone achieves) and ``example_cohort`` (the small cohort folder shipped for ``riskfusion
import``; not imported here, as it needs the NIfTI and DICOM writers). The vocabulary the world
speaks (modalities, model inputs, treatments, horizon) is :mod:`data.vocabulary`; patient splits
are :mod:`data.splits`.

Bottom layer: must not import torch, streamlit or the ``models``, ``fusion`` or ``dashboard``
packages, nor :mod:`data.store` or :mod:`data.cohort_import`.
"""

from __future__ import annotations

from data.synthetic.bias import DEMO_BIAS, DemoBias
from data.synthetic.cohort import SyntheticCohort, generate_cohort
from data.synthetic.oracle import oracle_aurocs, truth_aurocs

__all__ = [
    "DEMO_BIAS",
    "DemoBias",
    "SyntheticCohort",
    "generate_cohort",
    "oracle_aurocs",
    "truth_aurocs",
]
