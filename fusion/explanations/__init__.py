"""Explanations beyond SHAP.

Modules:

* :mod:`~fusion.explanations.occlusion`: fusion-aware occlusion of the scan (the risk as a
  function of the image) and its map.
* :mod:`~fusion.explanations.map_measures`: measures of one map against a known lesion
  (pointing game, energy inside, deletion drops), the baseline maps, SHAP additivity.
* :mod:`~fusion.explanations.map_trust`: the trust report of a model version, measured on
  lesion-positive test scans, the ranking of the maps by it and its sentence.
* :mod:`~fusion.explanations.similar`: similar patients, nearest neighbours in the fused
  model's SHAP space.

Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
