"""case-api's events, built from their contracts in :mod:`shared.contracts.events`. Thin on purpose:
references, dates and statuses, never personal details (no names, no identity numbers); consumers
fetch details with their own token."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.cases.models import Case
from case_api.models import CaseOutbox
from shared.contracts.events import CaseFacts
from shared.events import EventEnvelope
from shared.outbox import add_event

F = TypeVar("F", bound=CaseFacts)


def case_facts(case: Case) -> dict[str, Any]:
    """What every case event carries so a consumer can act without another call."""
    return {
        "case_id": case.id,
        "status": case.status.value,
        "current_unit_id": case.current_unit_id,
        "region_id": case.region_id,
        "release_destination": case.release_destination.value,
        "responsible_kommunenummer": case.responsible_kommunenummer,
        "municipality_status": case.municipality_status.value,
        "nav_office_id": case.nav_office_id,
        "effective_release_date": case.effective_release_date,
    }


def emit(session: AsyncSession, contract: type[F], case: Case, **data: Any) -> EventEnvelope:
    """Stage a ``contract`` event about ``case``: its facts plus ``data``."""
    return add_event(session, CaseOutbox, contract(**case_facts(case), **data), subject=f"case/{case.id}")
