"""Use cases the pages and the command line call.

:mod:`fusion.service.facade` holds the :class:`RiskService` facade; the patient, evidence,
forecasting, cohort and audit-trail use cases live in the modules beside it and work on one
:class:`fusion.service.patient_case.PatientCase` loaded per request. Import from the modules:
this package re-exports nothing, so importing one use case does not load the others.
"""
