"""Explanations beyond SHAP.

Fusion-aware occlusion, map trust figures (pointing game, deletion) and similar patients.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
