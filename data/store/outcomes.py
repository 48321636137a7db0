"""What the stored outcome means and how complete it is.

Owns :class:`OutcomeReads` (one repository of the store): the cohort's outcome declaration
(:meth:`~OutcomeReads.outcome_spec`, the words every page uses) and the outcome counts that say
why a treatment forecast cannot be fitted (:meth:`~OutcomeReads.outcome_counts`). It must not
import torch, streamlit or the ``models``/``fusion``/``dashboard`` packages.
"""

from __future__ import annotations

from sqlalchemy import func, select

from data.store.engine import StoreBase
from data.store.schema import Outcome, OutcomeDefinition, Patient
from data.vocabulary import DEMO_OUTCOME, TREATMENTS, UNDECLARED_OUTCOME, OutcomeSpec

__all__ = ["OutcomeReads"]


class OutcomeReads(StoreBase):
    """The outcome's declaration and completeness (one repository of the store)."""

    def outcome_spec(self) -> OutcomeSpec:
        """What ``label = 1`` means in the stored cohort (two small indexed reads).

        An imported cohort's declared ``[outcome]``; the demo's words for a synthetic cohort
        (or an empty store); :data:`data.vocabulary.UNDECLARED_OUTCOME` for an import whose
        schema declared none.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    OutcomeDefinition.name,
                    OutcomeDefinition.description,
                    OutcomeDefinition.horizon_years,
                ).limit(1)
            ).first()
            if row is not None:
                horizon = None if row[2] is None else float(row[2])
                return OutcomeSpec(str(row[0]), str(row[1]), horizon)
            source = conn.execute(select(Patient.source).limit(1)).scalar()
        if source is None or source == "synthetic":
            return DEMO_OUTCOME
        return UNDECLARED_OUTCOME

    def outcome_counts(self) -> dict[str, int]:
        """How complete the outcomes are for a treatment forecast (one aggregate query).

        Keys: ``patients``, ``event_time``, ``event`` (rows with a value) and ``treatment``
        (rows whose treatment is one of :data:`data.vocabulary.TREATMENTS`).
        """
        stmt = select(
            func.count(),
            func.count(Outcome.event_time),
            func.count(Outcome.event),
            func.count().filter(Outcome.treatment.in_(TREATMENTS)),
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).one()
        return dict(
            zip(("patients", "event_time", "event", "treatment"), map(int, row), strict=True)
        )
