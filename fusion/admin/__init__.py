"""Operations around the models.

Roles and sign-in, background jobs, uploads and the cohort import runner.
Import from the modules: this package re-exports nothing, so importing it stays cheap.
"""
