"""Treatment forecasts: risk over time under each treatment option, and its proof.

Modules, in reading order:

* :mod:`~fusion.forecast.survival`: person-period expansion, Kaplan-Meier, cumulative risk,
  the bootstrap band and the anchoring of hazards to a given risk (pure numpy).
* :mod:`~fusion.forecast.terms`: the person-period design and the S-learner's elastic-net
  logistic treatment terms.
* :mod:`~fusion.forecast.learners`: the LightGBM boosters of one bootstrap member per method
  (S-learner, T-learner, offset T-learner) and early stopping.
* :mod:`~fusion.forecast.hazard`: the :class:`~fusion.forecast.hazard.HazardForecaster`
  estimator, saving and loading.
* :mod:`~fusion.forecast.patient`: one patient's
  :class:`~fusion.forecast.patient.PatientForecast`, the comparison of options ("not
  distinguishable") and the JSON document of ``riskfusion forecast``.
* :mod:`~fusion.forecast.proof`: the proof against the synthetic oracle (PEHE, Spearman,
  calibration).
* :mod:`~fusion.forecast.build`: fitting, measuring and registering the forecast model of a
  fusion version after training.

Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
