from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from case_api.access import ViewerDep, load_case, load_case_for_change
from case_api.audit import service as audit
from case_api.dependencies import IdempotencyDep
from case_api.domains import service
from case_api.domains.models import SETTLED_STATUSES, CaseDomain, Domain, DomainAction
from case_api.domains.schemas import (
    NORWEGIAN_TERMS,
    ActionCreate,
    ActionRead,
    ActionUpdate,
    DomainList,
    DomainRead,
    DomainUpdate,
)
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers

router = APIRouter(prefix="/cases/{case_id}/domains", tags=["domains"])


def domain_etag(case_domain: CaseDomain) -> str:
    return etag_for(f"domain-{case_domain.id}", case_domain.version)


def action_etag(action: DomainAction) -> str:
    return etag_for(f"action-{action.id}", action.version)


def action_read(action: DomainAction, domain: Domain) -> ActionRead:
    return ActionRead(
        id=action.id,
        domain=domain,
        description=action.description,
        responsible_organization_id=action.responsible_organization_id,
        contact_name=action.contact_name,
        contact_phone=action.contact_phone,
        contact_email=action.contact_email,
        due_date=action.due_date,
        done=action.done_at is not None,
        done_at=action.done_at,
        overdue=service.is_overdue(action),
        created_at=action.created_at,
        created_by=action.created_by,
        updated_at=action.updated_at,
        updated_by=action.updated_by,
        version=action.version,
        etag=action_etag(action),
    )


def domain_read(case_domain: CaseDomain, actions: list[DomainAction]) -> DomainRead:
    return DomainRead(
        domain=case_domain.domain,
        term=NORWEGIAN_TERMS[case_domain.domain],
        status=case_domain.status,
        settled=case_domain.status in SETTLED_STATUSES,
        needs=case_domain.needs,
        goals=case_domain.goals,
        hostel_only=case_domain.hostel_only,
        updated_at=case_domain.updated_at,
        updated_by=case_domain.updated_by,
        version=case_domain.version,
        etag=domain_etag(case_domain),
        actions=[action_read(action, case_domain.domain) for action in actions],
    )


async def domain_response(session: SessionDep, case_domain: CaseDomain) -> JSONResponse:
    actions = await service.actions_of(session, case_domain)
    body = domain_read(case_domain, actions).model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": domain_etag(case_domain)})


def action_response(action: DomainAction, domain: Domain, *, status_code: int = 200) -> JSONResponse:
    body = action_read(action, domain).model_dump(mode="json")
    return JSONResponse(body, status_code=status_code, headers={"ETag": action_etag(action)})


@router.get(
    "", response_model=DomainList, responses=problem_responses(401, 403, 404, 422), summary="List domains"
)
async def list_domains(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> DomainList:
    """The case's reintegration domains with their actions. Consent-gated roles see only the domains
    their consent covers. Each domain carries its own `etag` for changes."""
    case = await load_case(session, viewer, case_id)
    rows = await service.list_domains(session, viewer=viewer, case=case)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="domains")
    return DomainList(case_id=case.id, items=[domain_read(row, actions) for row, actions in rows])


@router.get(
    "/{domain}",
    response_model=DomainRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a domain",
)
@response_headers("ETag")
async def get_domain(case_id: uuid.UUID, domain: Domain, session: SessionDep, viewer: ViewerDep) -> Response:
    """One domain with its actions and its `ETag`. 404 when your consent does not cover it."""
    case = await load_case(session, viewer, case_id)
    case_domain = await service.load_domain(session, viewer=viewer, case=case, domain=domain)
    await audit.record_access(
        session, viewer, reads=[(case.person_id, case.id)], what=f"domain:{domain.value}"
    )
    return await domain_response(session, case_domain)


@router.patch(
    "/{domain}",
    response_model=DomainRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change a domain",
)
@response_headers("ETag")
async def update_domain(
    case_id: uuid.UUID,
    domain: Domain,
    body: DomainUpdate,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Change status, needs, goals or (housing only) the hostel-only flag. Needs `If-Match` with the
    domain's ETag (not the case's). A closed case is 409."""
    case = await load_case_for_change(session, viewer, case_id)
    case_domain = await service.load_domain(session, viewer=viewer, case=case, domain=domain)
    check_if_match(if_match, domain_etag(case_domain))
    case_domain = await service.update_domain(
        session, viewer=viewer, case=case, case_domain=case_domain, data=body
    )
    return await domain_response(session, case_domain)


@router.post(
    "/{domain}/actions",
    response_model=ActionRead,
    status_code=201,
    responses=problem_responses(401, 403, 404, 409, 415, 422),
    summary="Add an action",
)
@response_headers("ETag", "Location")
async def add_action(
    case_id: uuid.UUID,
    domain: Domain,
    body: ActionCreate,
    session: SessionDep,
    viewer: ViewerDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Add something to be done in the domain, optionally with the responsible organization, a contact
    and a due date. A closed case is 409. Send `Idempotency-Key` to retry safely."""
    case = await load_case_for_change(session, viewer, case_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    case_domain = await service.load_domain(session, viewer=viewer, case=case, domain=domain)
    action = await service.add_action(session, viewer=viewer, case=case, case_domain=case_domain, data=body)
    return await idempotency.respond(
        action_read(action, domain),
        status_code=201,
        location=f"/api/v1/cases/{case.id}/domains/{domain.value}/actions/{action.id}",
        headers={"ETag": action_etag(action)},
    )


@router.patch(
    "/{domain}/actions/{action_id}",
    response_model=ActionRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422),
    summary="Change, complete or reopen an action",
)
@response_headers("ETag")
async def update_action(
    case_id: uuid.UUID,
    domain: Domain,
    action_id: uuid.UUID,
    body: ActionUpdate,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Change an action's fields; `done: true` marks it done, `done: false` reopens it. `If-Match` with
    the action's ETag is checked when sent. A closed case is 409."""
    case = await load_case_for_change(session, viewer, case_id)
    case_domain = await service.load_domain(session, viewer=viewer, case=case, domain=domain)
    action = await service.load_action(session, case_domain=case_domain, action_id=action_id)
    check_if_match(if_match, action_etag(action), required=False)
    action = await service.update_action(
        session, viewer=viewer, case=case, case_domain=case_domain, action=action, data=body
    )
    return action_response(action, domain)
