"""case-api's events. Thin on purpose: references, dates and statuses, never personal details
(no names, no identity numbers); consumers fetch details with their own token."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.cases.models import Case
from case_api.models import CaseOutbox
from shared.events import EventEnvelope
from shared.outbox import add_event

CASE_OPENED = "case.opened.v1"
CASE_STATUS_CHANGED = "case.status_changed.v1"
CASE_RELEASE_DATE_CHANGED = "case.release_date_changed.v1"
CASE_MUNICIPALITY_CHANGED = "case.municipality_changed.v1"
CASE_CONSENT_GIVEN = "case.consent_given.v1"
CASE_CONSENT_WITHDRAWN = "case.consent_withdrawn.v1"
CASE_TRANSFERRED = "case.transferred.v1"
CASE_CLOSED = "case.closed.v1"
CASE_UPDATED = "case.updated.v1"


def case_facts(case: Case) -> dict[str, Any]:
    """What every case event carries so a consumer can act without another call."""
    return {
        "case_id": str(case.id),
        "status": case.status.value,
        "current_unit_id": str(case.current_unit_id),
        "region_id": str(case.region_id) if case.region_id else None,
        "release_destination": case.release_destination.value,
        "responsible_kommunenummer": case.responsible_kommunenummer,
        "municipality_status": case.municipality_status.value,
        "nav_office_id": str(case.nav_office_id) if case.nav_office_id else None,
        "effective_release_date": case.effective_release_date.isoformat()
        if case.effective_release_date
        else None,
    }


def emit(session: AsyncSession, event_type: str, case: Case, **data: Any) -> EventEnvelope:
    return add_event(
        session,
        CaseOutbox,
        type=event_type,
        source="case-api",
        subject=f"case/{case.id}",
        data={**case_facts(case), **data},
    )


# The responsibility group changed for a post-release contact (added, changed or ended).
CASE_GROUP_CHANGED = "case.group_changed.v1"

# A service market talk led to a referral: an action in one of the case's domains.
CASE_MARKET_REFERRAL_MADE = "case.market_referral_made.v1"
