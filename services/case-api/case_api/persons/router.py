from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from case_api.access import ViewerDep
from case_api.audit import service as audit
from case_api.dependencies import IdempotencyDep, VaultDep
from case_api.persons import service
from case_api.persons.errors import PersonExists
from case_api.persons.schemas import IdentityNumber, PersonCreate, PersonMatch, PersonRead
from shared.db import SessionDep
from shared.errors import problem_responses, render_problem
from shared.openapi import response_headers

router = APIRouter(prefix="/persons", tags=["persons"])


@router.post(
    "",
    response_model=PersonRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 409, 415, 422),
    summary="Register a person",
)
@response_headers("Location")
async def register_person(
    body: PersonCreate,
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    vault: VaultDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Register an inmate (`admin`, `coordinator`, `prison_staff`). The identity number goes in the
    body only, is stored encrypted and is never returned. A person who is already registered
    answers 409 with `existing_id` (no name or birth date), and the access log records that the
    caller learnt the person exists (`person.exists`)."""
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    try:
        person = await service.register(session, viewer=viewer, vault=vault, data=body)
    except PersonExists as exists:
        # Answered, not raised: a raised error rolls back the request's transaction and its log row.
        await audit.record_access(session, viewer, reads=[(exists.person_id, None)], what="person.exists")
        return render_problem(request, exists)
    return await idempotency.respond(
        PersonRead.model_validate(person), status_code=201, location=f"/api/v1/persons/{person.id}"
    )


@router.post(
    "/lookup",
    response_model=PersonMatch,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 404, 415, 422),
    summary="Find a person by identity number",
)
async def lookup_person(
    body: IdentityNumber, session: SessionDep, viewer: ViewerDep, vault: VaultDep
) -> PersonMatch:
    """Find a registered person by identity number, sent in the body (never in a URL), before
    registering them (`admin`, `coordinator`, `prison_staff`). 404 when nobody has the number.
    Otherwise the answer has the person's id; name, birth date and `created_at` only when the caller
    may read the person as `GET /persons/{id}` decides (else `details_withheld` is true). Every
    answer with an id is in the access log: `person.lookup` with the details, `person.exists`
    without."""
    match = await service.find_by_identity_number(
        session, viewer=viewer, vault=vault, number=body.identity_number.get_secret_value()
    )
    person = match.person
    if not match.details:
        await audit.record_access(session, viewer, reads=[(person.id, None)], what="person.exists")
        return PersonMatch(id=person.id, details_withheld=True)
    await audit.record_access(session, viewer, reads=[(person.id, None)], what="person.lookup")
    return PersonMatch(
        id=person.id,
        details_withheld=False,
        given_name=person.given_name,
        family_name=person.family_name,
        birth_date=person.birth_date,
        created_at=person.created_at,
    )


@router.get(
    "/{person_id}",
    response_model=PersonRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a person",
)
async def get_person(person_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> PersonRead:
    """A person the caller may see: `admin` and `auditor`; a caller who sees one of the person's
    cases; `coordinator` and `prison_staff` while the person has no case yet. 404 otherwise."""
    person = await service.get_visible(session, viewer=viewer, person_id=person_id)
    await audit.record_access(session, viewer, reads=[(person.id, None)], what="person")
    return PersonRead.model_validate(person)
