"""Treatment forecasts.

The hazard estimator, per-patient risk over time under each treatment, and its proof against
the synthetic oracle.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
