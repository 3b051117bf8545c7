from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from case_api.access import ViewerDep
from case_api.audit import service as audit
from case_api.dependencies import IdempotencyDep, VaultDep
from case_api.persons import service
from case_api.persons.schemas import IdentityNumber, PersonCreate, PersonRead
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(prefix="/persons", tags=["persons"])


@router.post(
    "",
    response_model=PersonRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 409, 415, 422),
    summary="Register a person",
)
async def register_person(
    body: PersonCreate, session: SessionDep, viewer: ViewerDep, vault: VaultDep, idempotency: IdempotencyDep
) -> Response:
    """Register an inmate. The identity number goes in the body only, is stored encrypted and is never
    returned. A person who is already registered answers 409 with `existing_id`."""
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    person = await service.register(session, viewer=viewer, vault=vault, data=body)
    return await idempotency.respond(
        PersonRead.model_validate(person), status_code=201, location=f"/api/v1/persons/{person.id}"
    )


@router.post(
    "/lookup",
    response_model=PersonRead,
    responses=problem_responses(401, 403, 404, 415, 422),
    summary="Find a person by identity number",
)
async def lookup_person(
    body: IdentityNumber, session: SessionDep, viewer: ViewerDep, vault: VaultDep
) -> PersonRead:
    """Find a registered person by identity number, sent in the body (never in a URL)."""
    person = await service.find_by_identity_number(
        session, viewer=viewer, vault=vault, number=body.identity_number.get_secret_value()
    )
    await audit.record_access(session, viewer, reads=[(person.id, None)], what="person.lookup")
    return PersonRead.model_validate(person)


@router.get(
    "/{person_id}",
    response_model=PersonRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a person",
)
async def get_person(person_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> PersonRead:
    """A person the caller may see through one of their cases."""
    person = await service.get_visible(session, viewer=viewer, person_id=person_id)
    await audit.record_access(session, viewer, reads=[(person.id, None)], what="person")
    return PersonRead.model_validate(person)
