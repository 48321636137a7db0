"""Use cases the pages and the command line call.

The :class:`RiskService` facade (re-exported here) and the patient, cohort, forecast and
audit-trail use cases behind it.
"""

from __future__ import annotations

from fusion.service.facade import RiskService

__all__ = ["RiskService"]
