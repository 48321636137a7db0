"""Evaluation of a fitted model on stored predictions.

Metrics with confidence intervals, the vectorised bootstrap fairness engine, small-cell
suppression and the numbers of the performance page.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
