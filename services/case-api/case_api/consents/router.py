from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from case_api.access import (
    WRITERS,
    Viewer,
    ViewerDep,
    load_case,
    load_case_for_change,
    load_case_unscoped,
)
from case_api.audit import service as audit
from case_api.consents import service
from case_api.consents.schemas import ConsentCreate, ConsentList, ConsentRead, ConsentWithdrawal, Decision
from case_api.dependencies import IdempotencyDep
from case_api.domains.models import Domain
from case_api.organizations import service as organizations
from case_api.organizations.service import UnknownOrganization
from shared.auth import Role
from shared.db import SessionDep
from shared.errors import Forbidden, problem_responses
from shared.openapi import response_headers

router = APIRouter(prefix="/cases/{case_id}", tags=["consents"])

# Who may see the consents of a case and ask the disclosure question: those who record consent,
# and auditors. Consent-gated roles may not: a consent's scope tells about its other recipients.
CONSENT_READERS = WRITERS | {Role.AUDITOR}


def require_consent_reader(viewer: Viewer) -> None:
    if viewer.role not in CONSENT_READERS:
        raise Forbidden(f"Role {viewer.role.value!r} may not read consents or ask about disclosure")


@router.post(
    "/consents",
    response_model=ConsentRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 415, 422),
    summary="Record a consent or legal basis",
)
@response_headers("Location")
async def give_consent(
    case_id: uuid.UUID,
    body: ConsentCreate,
    session: SessionDep,
    viewer: ViewerDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Record which organizations (by id or by type) may be told which domains of the case, on the
    inmate's consent or on a legal basis. Send `Idempotency-Key` to retry safely."""
    case = await load_case_for_change(session, viewer, case_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    consent = await service.give(session, viewer=viewer, case=case, data=body)
    return await idempotency.respond(
        consent, status_code=201, location=f"/api/v1/cases/{case.id}/consents/{consent.id}"
    )


@router.get(
    "/consents",
    response_model=ConsentList,
    responses=problem_responses(401, 403, 404),
    summary="List the consents of a case",
)
async def list_consents(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> ConsentList:
    """Every consent and legal basis of the case, active and withdrawn, oldest first."""
    require_consent_reader(viewer)
    case = await load_case(session, viewer, case_id)
    items = await service.list_for_case(session, case_id=case.id)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="consents")
    return ConsentList(items=items)


@router.get(
    "/consents/{consent_id}",
    response_model=ConsentRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a consent",
)
async def get_consent(
    case_id: uuid.UUID, consent_id: uuid.UUID, session: SessionDep, viewer: ViewerDep
) -> ConsentRead:
    require_consent_reader(viewer)
    case = await load_case(session, viewer, case_id)
    consent = await service.get(session, case_id=case.id, consent_id=consent_id)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="consent")
    return consent


@router.post(
    "/consents/{consent_id}/withdraw",
    response_model=ConsentRead,
    responses=problem_responses(401, 403, 404, 409, 415, 422),
    summary="Withdraw a consent",
)
async def withdraw_consent(
    case_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    body: ConsentWithdrawal | None = None,
) -> ConsentRead:
    """Withdraw a consent (or legal basis). It stops covering anything at once; a consent already
    withdrawn answers 409."""
    case = await load_case_for_change(session, viewer, case_id)
    return await service.withdraw(
        session, viewer=viewer, case=case, consent_id=consent_id, reason=body.reason if body else None
    )


@router.get(
    "/disclosure",
    response_model=Decision,
    responses=problem_responses(401, 403, 404, 422),
    summary="May an organization receive a domain now?",
)
async def check_disclosure(
    case_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    organization_id: Annotated[uuid.UUID, Query(description="The organization that would receive.")],
    domain: Annotated[Domain, Query(description="The domain it would receive.")],
) -> Decision:
    """Whether an active consent or legal basis on the case covers this organization (by id or by
    its type) for this domain right now, and which one. The `service` role (notify-worker) may ask
    this about any case; it may call no other case endpoint."""
    if viewer.role is Role.SERVICE:
        # The notice worker asks this question for every case; the answer discloses no case data.
        case = await load_case_unscoped(session, case_id)
    else:
        require_consent_reader(viewer)
        case = await load_case(session, viewer, case_id)
    organization = await organizations.get(session, organization_id)
    if organization is None:
        raise UnknownOrganization(
            f"No organization {organization_id} in the directory", field="organization_id"
        )
    return await service.may_receive(session, case_id=case.id, organization=organization, domain=domain)
