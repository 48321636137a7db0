"""Fusion layer: turns stored records and image scores into risk, explanations and reports.

Owns the tabular features (``features``), the LightGBM fusion model (``model``), the SHAP adapter
(``explain``), what-if edits, uncertainty and display helpers, the runtime ``settings`` and the
``riskfusion`` command line (``cli``). Capabilities live in sub-packages:

- ``evaluation``: metrics, fairness audit, small-cell disclosure, performance tables.
- ``explanations``: occlusion maps, map trust, similar patients.
- ``forecast``: the treatment-hazard forecast.
- ``service``: ``RiskService``, the use cases the dashboard pages call.
- ``training``: training and scoring a stored cohort, the demo build, versions, the benchmark.
- ``reports``: audit report, figures, patient report, explanation files, safe exports.
- ``admin``: access control, background jobs, uploads, the cohort import runner.

This ``__init__`` imports nothing, so that ``fusion.settings``, ``fusion.admin.access`` and
``riskfusion --help`` load without torch, MONAI, LightGBM or SHAP; import names from their
defining modules. The package must not import streamlit or the dashboard.
"""
