from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from case_api.access import ViewerDep, load_case, require_reader
from case_api.audit import service as audit
from case_api.cases import service as cases
from case_api.cases.schemas import PersonSummary
from case_api.readiness import service
from case_api.readiness.schemas import ReadinessRead, UnsettledDomain
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import Page

router = APIRouter(tags=["readiness"])

Days = Annotated[
    int, Query(ge=0, le=365, description="The window: release dates up to this many days from today.")
]


def to_read(item: service.Readiness) -> ReadinessRead:
    case = item.case
    return ReadinessRead(
        case_id=case.id,
        person=PersonSummary.model_validate(item.person),
        status=case.status,
        current_unit_id=case.current_unit_id,
        responsible_kommunenummer=case.responsible_kommunenummer,
        effective_release_date=case.effective_release_date,
        days_until_release=item.days_until_release,
        in_window=item.in_window,
        ready=item.ready,
        gaps=item.gaps,
        unsettled_domains=[UnsettledDomain(domain=row.domain, status=row.status) for row in item.unsettled],
        withheld_domains=item.withheld,
    )


@router.get(
    "/cases/{case_id}/readiness",
    response_model=ReadinessRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="Release readiness of a case",
)
async def case_readiness(
    case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep, days: Days = 30
) -> ReadinessRead:
    """What is not in place for this case before release: unsettled domains, hostel-only housing, no
    confirmed release date, no consent for the responsible municipality, no contact after release."""
    case = await load_case(session, viewer, case_id)
    person = await cases.person_of(session, case)
    item = await service.case_readiness(session, viewer=viewer, case=case, person=person, days=days)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="readiness")
    return to_read(item)


@router.get(
    "/readiness",
    response_model=Page[ReadinessRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Release readiness across cases",
)
async def readiness_report(
    session: SessionDep,
    viewer: ViewerDep,
    days: Days = 30,
    unit_id: uuid.UUID | None = None,
    kommunenummer: Annotated[
        str | None, Query(pattern=r"^\d{4}$", description="Responsible municipality.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ReadinessRead]:
    """The cases you may see whose person is still inside and whose release date is within `days` or
    already passed, soonest release first, each with what is not in place."""
    require_reader(viewer)
    items, next_cursor = await service.readiness_page(
        session,
        viewer=viewer,
        days=days,
        unit_id=unit_id,
        kommunenummer=kommunenummer,
        limit=limit,
        cursor=cursor,
    )
    await audit.record_access(
        session, viewer, reads=[(item.case.person_id, item.case.id) for item in items], what="readiness"
    )
    return Page(items=[to_read(item) for item in items], next_cursor=next_cursor)
