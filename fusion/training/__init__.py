"""Training and scoring any stored cohort.

The fusion training run, scoring, serving artifacts, model versions, the demo build and the
benchmark.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
