"""Reading the audit trail: a case's timeline (every change) and the access logs (every read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from case_api.access import AUDIT_READERS, Viewer, ViewerDep, load_case
from case_api.audit import service
from case_api.persons.errors import PersonNotFound
from case_api.persons.models import Person
from shared.auth import Role
from shared.db import SessionDep
from shared.errors import Forbidden, problem_responses
from shared.pagination import Page

router = APIRouter(tags=["audit"])

ACCESS_LOG_READERS = frozenset({Role.ADMIN, Role.AUDITOR})

Limit = Annotated[int, Query(ge=1, le=200)]


class TimelineEntryRead(BaseModel):
    """One change: who (and in which role and organization), when, what, before and after."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    actor: str = Field(
        description="The subject of the token that made the change; `pseudonym:` and 32 hex digits "
        "(a keyed hash) when the subject holds an identity number."
    )
    actor_role: str
    actor_organization_id: uuid.UUID | None
    action: str = Field(examples=["consent.withdrawn"])
    entity: str = Field(examples=["consent"])
    entity_id: str | None
    before: dict[str, Any] | None = Field(description="The changed fields before; null for a creation.")
    after: dict[str, Any] | None
    correlation_id: str | None


class AccessLogEntryRead(BaseModel):
    """One read of a person's data: who, for which organization, what, and on which basis."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    person_id: uuid.UUID
    case_id: uuid.UUID | None
    actor: str = Field(description="Who read: as `actor` in the timeline.")
    actor_role: str
    actor_organization_id: uuid.UUID | None
    what: str = Field(examples=["case"])
    basis: str = Field(
        description="`consent`, `audit` or `role:<role>`.", examples=["role:coordinator", "consent"]
    )
    correlation_id: str | None


def _require(viewer: Viewer, roles: frozenset[Role], what: str) -> None:
    if viewer.role not in roles:
        raise Forbidden(f"Role {viewer.role.value!r} may not read {what}")


@router.get(
    "/cases/{case_id}/timeline",
    response_model=Page[TimelineEntryRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="The timeline of a case",
)
async def case_timeline(
    case_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[TimelineEntryRead]:
    """Every change to the case, oldest first, with a cursor for the next page. For admins,
    auditors and coordinators of the case's region. The read is itself logged."""
    _require(viewer, AUDIT_READERS, "timelines")
    case = await load_case(session, viewer, case_id)
    rows, next_cursor = await service.timeline_page(session, case_id=case.id, limit=limit, cursor=cursor)
    await service.record_access(session, viewer, reads=[(case.person_id, case.id)], what="timeline")
    return Page(items=[TimelineEntryRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/cases/{case_id}/access-log",
    response_model=Page[AccessLogEntryRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Who read this case",
)
async def case_access_log(
    case_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[AccessLogEntryRead]:
    """Every read of the case's person data, newest first. For admins and auditors; the read is
    itself logged."""
    _require(viewer, ACCESS_LOG_READERS, "access logs")
    case = await load_case(session, viewer, case_id)
    rows, next_cursor = await service.access_log_page(session, case_id=case.id, limit=limit, cursor=cursor)
    await service.record_access(session, viewer, reads=[(case.person_id, case.id)], what="access_log")
    return Page(items=[AccessLogEntryRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/persons/{person_id}/access-log",
    response_model=Page[AccessLogEntryRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Who read this person's data",
)
async def person_access_log(
    person_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[AccessLogEntryRead]:
    """Who read this person's data, when, and on what basis, across all their cases, newest first.
    For admins and auditors; the read is itself logged."""
    _require(viewer, ACCESS_LOG_READERS, "access logs")
    if await session.get(Person, person_id) is None:
        raise PersonNotFound(f"No person {person_id}")
    rows, next_cursor = await service.access_log_page(
        session, person_id=person_id, limit=limit, cursor=cursor
    )
    await service.record_access(session, viewer, reads=[(person_id, None)], what="access_log")
    return Page(items=[AccessLogEntryRead.model_validate(row) for row in rows], next_cursor=next_cursor)
