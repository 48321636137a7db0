"""Errors raised by the data layer.

Owns the small exception family of :mod:`data`; imports nothing from the project.
"""

from __future__ import annotations

__all__ = ["ArtifactIntegrityError", "CohortError", "PatientNotFoundError", "StoreNotBuiltError"]


class CohortError(Exception):
    """Base class for problems with a stored or imported cohort."""


class PatientNotFoundError(CohortError, KeyError):
    """A patient id that the store does not hold."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else "patient not found"


class StoreNotBuiltError(CohortError):
    """The store holds no cohort or no active model yet."""


class ArtifactIntegrityError(CohortError):
    """A model artifact is missing or its SHA-256 differs from the registered one."""
