from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from case_api.access import ViewerDep, load_case_for_change, load_case_with_person, require_reader
from case_api.audit import service as audit
from case_api.cases import opening, reads, service
from case_api.cases.errors import OpenCaseExists
from case_api.cases.lifecycle import allowed_next
from case_api.cases.models import Case, CaseStatus
from case_api.cases.schemas import (
    CaseCreate,
    CaseRead,
    CaseUpdate,
    MunicipalityView,
    PersonSummary,
    StatusChange,
    Transfer,
)
from case_api.dependencies import IdempotencyDep
from case_api.domains.models import Domain, DomainStatus
from case_api.persons.models import Person
from shared.db import SessionDep
from shared.errors import problem_responses, render_problem
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
from shared.pagination import Page

router = APIRouter(prefix="/cases", tags=["cases"])

# What a refusal means on the routes below, for the OpenAPI document.
_NOT_YOURS = (
    "The role has no access to cases, or the token's organization does not fit its role "
    "(`reason`: `no_organization`, `unknown_organization` or `wrong_organization_type`)"
)
OPEN_PROBLEMS = problem_responses(400, 401, 403, 409, 415, 422)
OPEN_PROBLEMS[403]["description"] = (
    "The role may not open cases, the token's organization does not fit its role (`reason`), or the "
    "unit lies outside the caller's scope"
)
OPEN_PROBLEMS[409]["description"] = (
    "The person already has an open case, named by `existing_id`: transfer it or close it first"
)
LIST_PROBLEMS = problem_responses(400, 401, 403, 422)
LIST_PROBLEMS[403]["description"] = _NOT_YOURS
READ_PROBLEMS = problem_responses(401, 403, 404)
READ_PROBLEMS[403]["description"] = _NOT_YOURS


def case_etag(case: Case) -> str:
    return etag_for(f"case-{case.id}", case.version)


def to_read(case: Case, person: Person) -> CaseRead:
    return CaseRead(
        id=case.id,
        person=PersonSummary.model_validate(person),
        current_unit_id=case.current_unit_id,
        region_id=case.region_id,
        planning_basis=case.planning_basis,
        opened_at=case.opened_at,
        status=case.status,
        status_changed_at=case.status_changed_at,
        allowed_transitions=[CaseStatus(value) for value in allowed_next(case.status)],
        priority_groups=case.priority_groups,
        release_destination=case.release_destination,
        destination_note=case.destination_note,
        municipality=MunicipalityView(
            registered_kommunenummer=case.registered_kommunenummer,
            intended_kommunenummer=case.intended_kommunenummer,
            responsible_kommunenummer=case.responsible_kommunenummer,
            status=case.municipality_status,
            note=case.municipality_note,
        ),
        nav_office_id=case.nav_office_id,
        effective_release_date=case.effective_release_date,
        closed_at=case.closed_at,
        created_at=case.created_at,
        updated_at=case.updated_at,
        version=case.version,
    )


async def case_response(
    session: SessionDep, case: Case, *, person: Person | None = None, status_code: int = 200
) -> Response:
    if person is None:
        person = await service.person_of(session, case)
    # Serialized by pydantic-core straight to bytes, not to a dict and through json.dumps.
    body = to_read(case, person).model_dump_json()
    return Response(
        body, status_code=status_code, media_type="application/json", headers={"ETag": case_etag(case)}
    )


@router.post(
    "",
    response_model=CaseRead,
    status_code=201,
    responses=OPEN_PROBLEMS,
    summary="Open a case",
)
@response_headers("ETag", "Location")
async def open_case(
    request: Request, body: CaseCreate, session: SessionDep, viewer: ViewerDep, idempotency: IdempotencyDep
) -> Response:
    """Open a case for a registered person in a unit of the caller's scope. A person has one open
    case at a time: while another is open the answer is 409 with `existing_id`, and the access log
    records that the caller learnt that case exists (`case.exists`). Send `Idempotency-Key` to retry
    safely."""
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    try:
        opened = await opening.open_case(session, viewer=viewer, data=body)
        case, person = (
            opened if opened is not None else await service.open_case(session, viewer=viewer, data=body)
        )
    except OpenCaseExists as exists:
        # Answered, not raised: a raised error rolls back the request's transaction and its log row.
        await audit.record_access(
            session, viewer, reads=[(exists.person_id, exists.case_id)], what="case.exists"
        )
        return render_problem(request, exists)
    return await idempotency.respond(
        to_read(case, person),
        status_code=201,
        location=f"/api/v1/cases/{case.id}",
        headers={"ETag": case_etag(case)},
    )


@router.get(
    "",
    response_model=Page[CaseRead],
    responses=LIST_PROBLEMS,
    summary="List cases",
)
async def list_cases(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID | None = None,
    kommunenummer: Annotated[
        str | None, Query(pattern=r"^\d{4}$", description="Responsible municipality.")
    ] = None,
    release_from: Annotated[date | None, Query(description="Effective release date on or after.")] = None,
    release_to: Annotated[date | None, Query(description="Effective release date on or before.")] = None,
    status: Annotated[list[CaseStatus] | None, Query()] = None,
    domain: Domain | None = None,
    domain_status: DomainStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    """The cases the caller may see, newest first, with a cursor for the next page."""
    require_reader(viewer)
    rows, next_cursor = await service.list_page(
        session,
        viewer=viewer,
        unit_id=unit_id,
        kommunenummer=kommunenummer,
        release_from=release_from,
        release_to=release_to,
        statuses=status,
        domain=domain,
        domain_status=domain_status,
        limit=limit,
        cursor=cursor,
    )
    await audit.record_access(
        session, viewer, reads=[(person.id, case.id) for case, person in rows], what="case.list"
    )
    page = Page[CaseRead](items=[to_read(case, person) for case, person in rows], next_cursor=next_cursor)
    # Serialized once by pydantic-core, not validated again against the response model.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/{case_id}",
    response_model=CaseRead,
    responses=READ_PROBLEMS,
    summary="Read a case",
)
@response_headers("ETag")
async def get_case(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    """One case, with its `ETag` for later changes."""
    found = await reads.read_case(session, viewer, case_id)
    if found is None:
        case, person = await load_case_with_person(session, viewer, case_id)
        await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="case")
    else:
        case, person = found
    return await case_response(session, case, person=person)


@router.patch(
    "/{case_id}",
    response_model=CaseRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change a case",
)
@response_headers("ETag")
async def update_case(
    case_id: uuid.UUID, body: CaseUpdate, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Change priority groups, release destination or NAV office. Needs `If-Match` with the case's ETag."""
    case = await load_case_for_change(session, viewer, case_id)
    check_if_match(if_match, case_etag(case))
    case = await service.update_case(session, viewer=viewer, case=case, data=body)
    return await case_response(session, case)


@router.post(
    "/{case_id}/status",
    response_model=CaseRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change the status",
)
@response_headers("ETag")
async def change_status(
    case_id: uuid.UUID, body: StatusChange, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Move the case along its lifecycle. An illegal move is 409 naming the allowed ones. Needs `If-Match`."""
    case = await load_case_for_change(session, viewer, case_id)
    check_if_match(if_match, case_etag(case))
    case = await service.change_status(
        session, viewer=viewer, case=case, status=body.status, reason=body.reason
    )
    return await case_response(session, case)


@router.post(
    "/{case_id}/transfer",
    response_model=CaseRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Transfer to another unit",
)
@response_headers("ETag")
async def transfer_case(
    case_id: uuid.UUID, body: Transfer, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Move the whole case to another unit. Needs `If-Match`."""
    case = await load_case_for_change(session, viewer, case_id)
    check_if_match(if_match, case_etag(case))
    case = await service.transfer(
        session, viewer=viewer, case=case, to_unit_id=body.to_unit_id, reason=body.reason
    )
    return await case_response(session, case)
