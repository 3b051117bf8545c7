from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import JSONResponse

from agreement_api import access
from agreement_api.access import AGREEMENT_MANAGERS
from agreement_api.agreements import service
from agreement_api.agreements.models import (
    Agreement,
    AgreementLevel,
    AgreementStatus,
    NoticeRule,
    ReintegrationDomain,
)
from agreement_api.agreements.schemas import (
    AgreementCreate,
    AgreementRead,
    AgreementUpdate,
    AgreementVersionRead,
    NoticeRuleCreate,
    NoticeRuleRead,
    NoticeRuleUpdate,
    StatusChange,
)
from agreement_api.dependencies import IdempotencyDep
from agreement_api.resolution.router import router as resolution_router
from shared.auth import Principal, PrincipalDep, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
from shared.pagination import Page

agreements = APIRouter(prefix="/agreements", tags=["agreements"])
ManagerDep = Annotated[Principal, Depends(require_roles(*AGREEMENT_MANAGERS))]


def agreement_etag(agreement: Agreement) -> str:
    return etag_for(f"agreement-{agreement.id}", agreement.version)


def rule_etag(rule: NoticeRule) -> str:
    return etag_for(f"notice-rule-{rule.id}", rule.version)


async def require_in_scope(session: SessionDep, principal: Principal, agreement: Agreement) -> None:
    """403 unless the caller may change this agreement (:func:`access.require_agreement_manager`)."""
    await access.require_agreement_manager(session, principal, await service.party_ids(session, agreement.id))


async def agreement_response(session: SessionDep, agreement: Agreement) -> JSONResponse:
    read = await service.to_read(session, agreement)
    return JSONResponse(read.model_dump(mode="json"), headers={"ETag": agreement_etag(agreement)})


@agreements.post(
    "",
    response_model=AgreementRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 415, 422),
    summary="Create an agreement",
)
@response_headers("ETag", "Location")
async def create_agreement(
    body: AgreementCreate, session: SessionDep, principal: ManagerDep, idempotency: IdempotencyDep
) -> Response:
    """Create a draft agreement between at least two directory organizations: admin, or a
    coordinator whose organization is a party or the region of a party (403 otherwise). Send
    `Idempotency-Key` to retry safely."""
    await access.require_agreement_manager(
        session, principal, (party.organization_id for party in body.parties)
    )
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    agreement = await service.create(session, data=body, created_by=principal.subject)
    return await idempotency.respond(
        await service.to_read(session, agreement),
        status_code=201,
        location=f"/api/v1/agreements/{agreement.id}",
        headers={"ETag": agreement_etag(agreement)},
    )


@agreements.get(
    "",
    response_model=Page[AgreementRead],
    responses=problem_responses(400, 401, 422),
    summary="List agreements",
)
async def list_agreements(
    session: SessionDep,
    _principal: PrincipalDep,
    status: AgreementStatus | None = None,
    level: AgreementLevel | None = None,
    organization_id: Annotated[uuid.UUID | None, Query(description="Agreements with this party.")] = None,
    domain: Annotated[
        ReintegrationDomain | None, Query(description="Agreements covering this domain.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> Page[AgreementRead]:
    """Agreements, oldest first, filtered by status, level, party and domain."""
    rows, next_cursor = await service.list_page(
        session,
        status=status,
        level=level,
        organization_id=organization_id,
        domain=domain,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[await service.to_read(session, row) for row in rows], next_cursor=next_cursor)


@agreements.get(
    "/{agreement_id}",
    response_model=AgreementRead,
    responses=problem_responses(401, 404),
    summary="Get an agreement",
)
@response_headers("ETag")
async def get_agreement(agreement_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep) -> Response:
    """One agreement with its parties and notice rules, and its `ETag`."""
    return await agreement_response(session, await service.get(session, agreement_id=agreement_id))


@agreements.patch(
    "/{agreement_id}",
    response_model=AgreementRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change an agreement",
)
@response_headers("ETag")
async def update_agreement(
    agreement_id: uuid.UUID,
    body: AgreementUpdate,
    if_match: IfMatch,
    session: SessionDep,
    principal: ManagerDep,
) -> Response:
    """Change an agreement (admin, or a coordinator in scope before and after a change of parties:
    403 otherwise; needs `If-Match`). In place while draft or negotiating; on an active or
    under-review agreement the change is a new version and emits `agreement.changed.v1`. Signed,
    expired and terminated agreements do not change (409)."""
    agreement = await service.get(session, agreement_id=agreement_id)
    await require_in_scope(session, principal, agreement)
    if body.parties is not None:
        await access.require_agreement_manager(
            session, principal, (party.organization_id for party in body.parties)
        )
    check_if_match(if_match, agreement_etag(agreement))
    agreement = await service.update(session, agreement=agreement, data=body, changed_by=principal.subject)
    return await agreement_response(session, agreement)


@agreements.post(
    "/{agreement_id}/status",
    response_model=AgreementRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change an agreement's status",
)
@response_headers("ETag")
async def change_status(
    agreement_id: uuid.UUID, body: StatusChange, if_match: IfMatch, session: SessionDep, principal: ManagerDep
) -> Response:
    """Move the agreement along its lifecycle (admin, or a coordinator in scope: 403 otherwise;
    needs `If-Match`). An illegal move is a 409 listing `allowed_next`. Entering active, expired or
    terminated emits `agreement.activated.v1`, `agreement.expired.v1` or
    `agreement.terminated.v1`."""
    agreement = await service.get(session, agreement_id=agreement_id)
    await require_in_scope(session, principal, agreement)
    check_if_match(if_match, agreement_etag(agreement))
    agreement = await service.change_status(
        session, agreement=agreement, data=body, changed_by=principal.subject
    )
    return await agreement_response(session, agreement)


@agreements.get(
    "/{agreement_id}/versions",
    response_model=list[AgreementVersionRead],
    responses=problem_responses(401, 404),
    summary="List an agreement's versions",
)
async def list_versions(
    agreement_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep
) -> list[AgreementVersionRead]:
    """Every frozen version, oldest first. Version 1 is frozen on activation; each later change
    of an active agreement adds one."""
    await service.get(session, agreement_id=agreement_id)
    rows = await service.versions(session, agreement_id=agreement_id)
    return [AgreementVersionRead.model_validate(row) for row in rows]


@agreements.get(
    "/{agreement_id}/versions/{number}",
    response_model=AgreementVersionRead,
    responses=problem_responses(401, 404, 422),
    summary="Get one version of an agreement",
)
async def get_version(
    agreement_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=2**31 - 1, description="The version number (1 is the first).")],
    session: SessionDep,
    _principal: PrincipalDep,
) -> AgreementVersionRead:
    """The agreement as it stood in version `number`."""
    return AgreementVersionRead.model_validate(
        await service.version(session, agreement_id=agreement_id, number=number)
    )


@agreements.get(
    "/{agreement_id}/rules",
    response_model=list[NoticeRuleRead],
    responses=problem_responses(401, 404),
    summary="List an agreement's notice rules",
)
async def list_rules(
    agreement_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep
) -> list[NoticeRuleRead]:
    """The agreement's current notice rules with their data-sharing profiles."""
    await service.get(session, agreement_id=agreement_id)
    return [NoticeRuleRead.model_validate(rule) for rule in await service.rules_of(session, agreement_id)]


@agreements.post(
    "/{agreement_id}/rules",
    response_model=NoticeRuleRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 409, 415, 422),
    summary="Add a notice rule",
)
@response_headers("ETag", "Location")
async def add_rule(
    agreement_id: uuid.UUID, body: NoticeRuleCreate, session: SessionDep, principal: ManagerDep
) -> Response:
    """Add a notice rule (admin, or a coordinator in scope: 403 otherwise). On an active agreement
    this makes a new version and emits `agreement.changed.v1`."""
    agreement = await service.get(session, agreement_id=agreement_id)
    await require_in_scope(session, principal, agreement)
    rule = await service.add_rule(session, agreement=agreement, data=body, changed_by=principal.subject)
    return JSONResponse(
        NoticeRuleRead.model_validate(rule).model_dump(mode="json"),
        status_code=201,
        headers={
            "ETag": rule_etag(rule),
            "Location": f"/api/v1/agreements/{agreement.id}/rules/{rule.id}",
        },
    )


@agreements.get(
    "/{agreement_id}/rules/{rule_id}",
    response_model=NoticeRuleRead,
    responses=problem_responses(401, 404),
    summary="Get a notice rule",
)
@response_headers("ETag")
async def get_rule(
    agreement_id: uuid.UUID, rule_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep
) -> Response:
    """One notice rule, with the `ETag` a change needs."""
    agreement = await service.get(session, agreement_id=agreement_id)
    rule = await service.get_rule(session, agreement=agreement, rule_id=rule_id)
    return JSONResponse(
        NoticeRuleRead.model_validate(rule).model_dump(mode="json"), headers={"ETag": rule_etag(rule)}
    )


@agreements.patch(
    "/{agreement_id}/rules/{rule_id}",
    response_model=NoticeRuleRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change a notice rule",
)
@response_headers("ETag")
async def update_rule(
    agreement_id: uuid.UUID,
    rule_id: uuid.UUID,
    body: NoticeRuleUpdate,
    if_match: IfMatch,
    session: SessionDep,
    principal: ManagerDep,
) -> Response:
    """Change a notice rule (admin, or a coordinator in scope: 403 otherwise; needs `If-Match` with
    the rule's ETag from creation or a change). On an active agreement this makes a new version."""
    agreement = await service.get(session, agreement_id=agreement_id)
    await require_in_scope(session, principal, agreement)
    rule = await service.get_rule(session, agreement=agreement, rule_id=rule_id)
    check_if_match(if_match, rule_etag(rule))
    rule = await service.update_rule(
        session, agreement=agreement, rule=rule, data=body, changed_by=principal.subject
    )
    return JSONResponse(
        NoticeRuleRead.model_validate(rule).model_dump(mode="json"), headers={"ETag": rule_etag(rule)}
    )


@agreements.delete(
    "/{agreement_id}/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409, 412),
    summary="Remove a notice rule",
)
async def delete_rule(
    agreement_id: uuid.UUID, rule_id: uuid.UUID, if_match: IfMatch, session: SessionDep, principal: ManagerDep
) -> Response:
    """Remove a notice rule (admin, or a coordinator in scope: 403 otherwise; `If-Match`
    optional). On an active agreement this makes a new version."""
    agreement = await service.get(session, agreement_id=agreement_id)
    await require_in_scope(session, principal, agreement)
    rule = await service.get_rule(session, agreement=agreement, rule_id=rule_id)
    check_if_match(if_match, rule_etag(rule), required=False)
    await service.delete_rule(session, agreement=agreement, rule=rule, changed_by=principal.subject)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router = APIRouter()
router.include_router(agreements)
router.include_router(resolution_router)
