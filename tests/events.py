"""Events for tests, built from their contracts: a test that publishes or hands a consumer an
event sends one a real producer could have sent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from shared.contracts.events import (
    CaseFacts,
    CaseOpened,
    EventPayload,
    NotifyRecomputeRequested,
    OrganizationChanged,
    OrganizationCreated,
)
from shared.events import EventEnvelope

P = TypeVar("P", bound=EventPayload)


def envelope(payload: EventPayload, *, subject: str, occurred_at: datetime | None = None) -> EventEnvelope:
    extra: dict[str, Any] = {"occurred_at": occurred_at} if occurred_at is not None else {}
    return EventEnvelope(
        type=payload.TYPE, source=payload.PRODUCER, subject=subject, data=payload.data(), **extra
    )


def case_event(
    case_id: uuid.UUID,
    model: type[CaseFacts] = CaseOpened,
    *,
    occurred_at: datetime | None = None,
    **data: Any,
) -> EventEnvelope:
    """A case event with plausible facts; ``data`` overrides any of them."""
    defaults: dict[str, Any] = {
        "case_id": case_id,
        "status": "planning",
        "current_unit_id": uuid.uuid4(),
        "region_id": None,
        "release_destination": "municipality",
        "responsible_kommunenummer": None,
        "municipality_status": "unresolved",
        "nav_office_id": None,
        "effective_release_date": None,
    }
    if model is CaseOpened:
        defaults |= {"planning_basis": "final_judgment", "opened_at": datetime.now().astimezone()}
    payload = model.model_validate(defaults | data)
    return envelope(payload, subject=f"case/{case_id}", occurred_at=occurred_at)


def organization_event(
    organization_id: uuid.UUID,
    type: str,
    name: str,
    *,
    parent_id: uuid.UUID | None = None,
    kommunenummer: str | None = None,
    changed: list[str] | None = None,
) -> EventEnvelope:
    """``organization.created.v1``, or ``organization.changed.v1`` when ``changed`` is given."""
    fields: dict[str, Any] = {
        "organization_id": organization_id,
        "type": type,
        "name": name,
        "kommunenummer": kommunenummer,
        "enhetsnummer": None,
        "parent_id": parent_id,
    }
    payload: EventPayload = (
        OrganizationChanged(**fields, changed=changed)
        if changed is not None
        else OrganizationCreated(**fields)
    )
    return envelope(payload, subject=f"organization/{organization_id}")


def placeholder(n: int) -> NotifyRecomputeRequested:
    """A small real event for tests of the outbox and the bus themselves; ``n`` is its reason."""
    return NotifyRecomputeRequested(case_id=uuid.uuid4(), reason=str(n), caused_by=uuid.uuid4())
