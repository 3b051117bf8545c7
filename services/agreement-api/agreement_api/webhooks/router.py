from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from agreement_api import access
from agreement_api.dependencies import IdempotencyDep
from agreement_api.webhooks import service
from agreement_api.webhooks.models import EndpointState, WebhookEndpoint, WebhookKey
from agreement_api.webhooks.schemas import (
    DeliveryResult,
    DisableRequest,
    KeyRotated,
    RotateRequest,
    SigningKey,
    SigningKeys,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookKeyRead,
    WebhookKeyWithSecret,
)
from agreement_api.webhooks.signing import KeyVault, get_vault
from agreement_api.webhooks.ssrf import UrlPolicy
from shared.auth import Principal, PrincipalDep, Role, require_roles
from shared.db import SessionDep, utcnow
from shared.errors import BadRequest, problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
from shared.pagination import Page

log = structlog.get_logger("agreement_api.webhooks")

router = APIRouter(tags=["webhooks"])

VaultDep = Annotated[KeyVault, Depends(get_vault)]


def get_policy(request: Request) -> UrlPolicy:
    return UrlPolicy.from_settings(request.app.state.settings)


PolicyDep = Annotated[UrlPolicy, Depends(get_policy)]


def endpoint_etag(endpoint: WebhookEndpoint) -> str:
    return etag_for(f"webhook-{endpoint.id}", endpoint.version)


def endpoint_response(endpoint: WebhookEndpoint, *, status_code: int = 200) -> JSONResponse:
    return JSONResponse(
        WebhookEndpointRead.model_validate(endpoint).model_dump(mode="json"),
        status_code=status_code,
        headers={"ETag": endpoint_etag(endpoint)},
    )


def with_secret(key: WebhookKey, secret: str | None) -> WebhookKeyWithSecret:
    return WebhookKeyWithSecret(**WebhookKeyRead.model_validate(key).model_dump(), secret=secret)


async def managed_endpoint(
    session: SessionDep, endpoint_id: uuid.UUID, principal: Principal
) -> WebhookEndpoint:
    endpoint = await service.get(session, endpoint_id=endpoint_id)
    access.require_endpoint_manager(principal, endpoint.organization_id)
    return endpoint


@router.post(
    "/organizations/{organization_id}/webhooks",
    response_model=WebhookEndpointCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 404, 415, 422),
)
@response_headers("ETag", "Location")
async def create_webhook(
    organization_id: uuid.UUID,
    body: WebhookEndpointCreate,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency: IdempotencyDep,
    vault: VaultDep,
    policy: PolicyDep,
) -> Response:
    """Register a webhook endpoint (admin, or the organization's own integration admin).

    The answer carries the first signing key's secret: it is shown only this once. Accepts
    `Idempotency-Key`; a replayed answer omits the secret. Emits `endpoint.created.v1`."""
    access.require_endpoint_manager(principal, organization_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    endpoint, issued = await service.create(
        session, organization_id=organization_id, data=body, policy=policy, vault=vault
    )
    location = f"/api/v1/webhooks/{endpoint.id}"
    headers = {"ETag": endpoint_etag(endpoint)}
    read = WebhookEndpointRead.model_validate(endpoint).model_dump()
    # The stored idempotent answer never holds the secret.
    await idempotency.respond(
        WebhookEndpointCreated(**read, key=with_secret(issued.key, None)), location=location, headers=headers
    )
    full = WebhookEndpointCreated(**read, key=with_secret(issued.key, issued.secret))
    return JSONResponse(
        full.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={**headers, "Location": location, "Cache-Control": "no-store"},
    )


@router.get(
    "/organizations/{organization_id}/webhooks",
    response_model=Page[WebhookEndpointRead],
    responses=problem_responses(400, 401, 403, 404),
)
async def list_webhooks(
    organization_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> Page[WebhookEndpointRead]:
    """An organization's webhook endpoints, oldest first."""
    access.require_endpoint_reader(principal, organization_id)
    rows, next_cursor = await service.list_page(
        session, organization_id=organization_id, limit=limit, cursor=cursor
    )
    return Page(items=[WebhookEndpointRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/webhooks/{endpoint_id}", response_model=WebhookEndpointRead, responses=problem_responses(401, 403, 404)
)
@response_headers("ETag")
async def get_webhook(endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    """One webhook endpoint, with its `ETag`."""
    endpoint = await service.get(session, endpoint_id=endpoint_id)
    access.require_endpoint_reader(principal, endpoint.organization_id)
    return endpoint_response(endpoint)


@router.patch(
    "/webhooks/{endpoint_id}",
    response_model=WebhookEndpointRead,
    responses=problem_responses(401, 403, 404, 412, 415, 422, 428),
)
@response_headers("ETag")
async def update_webhook(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    if_match: IfMatch,
    session: SessionDep,
    principal: PrincipalDep,
    policy: PolicyDep,
) -> Response:
    """Change URL (checked again), description, event types or rate limit. Needs `If-Match`;
    emits `endpoint.changed.v1`."""
    endpoint = await managed_endpoint(session, endpoint_id, principal)
    check_if_match(if_match, endpoint_etag(endpoint))
    return endpoint_response(await service.update(session, endpoint=endpoint, data=body, policy=policy))


@router.post(
    "/webhooks/{endpoint_id}/disable",
    response_model=WebhookEndpointRead,
    responses=problem_responses(401, 403, 404, 412, 415, 422),
)
@response_headers("ETag")
async def disable_webhook(
    endpoint_id: uuid.UUID,
    body: DisableRequest,
    if_match: IfMatch,
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    """Stop deliveries to the endpoint. Honours `If-Match` when sent; emits `endpoint.disabled.v1`.

    Also open to the `service` role, for any endpoint: notify-worker disables one that answered 410
    or failed for too long. The worker never overwrites the reason of an endpoint that is already
    disabled (a person's reason stands)."""
    endpoint = await service.get(session, endpoint_id=endpoint_id)
    access.require_endpoint_disabler(principal, endpoint.organization_id)
    check_if_match(if_match, endpoint_etag(endpoint), required=False)
    if principal.role is Role.SERVICE and endpoint.state is not EndpointState.ACTIVE:
        return endpoint_response(endpoint)
    return endpoint_response(await service.disable(session, endpoint=endpoint, reason=body.reason))


@router.post(
    "/webhooks/{endpoint_id}/enable",
    response_model=WebhookEndpointRead,
    responses=problem_responses(401, 403, 404, 412, 422),
)
@response_headers("ETag")
async def enable_webhook(
    endpoint_id: uuid.UUID, if_match: IfMatch, session: SessionDep, principal: PrincipalDep, policy: PolicyDep
) -> Response:
    """Resume deliveries (the URL is checked again). Honours `If-Match`; emits `endpoint.changed.v1`."""
    endpoint = await managed_endpoint(session, endpoint_id, principal)
    check_if_match(if_match, endpoint_etag(endpoint), required=False)
    return endpoint_response(await service.enable(session, endpoint=endpoint, policy=policy))


@router.post(
    "/webhooks/{endpoint_id}/keys/rotate",
    response_model=KeyRotated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 415, 422),
)
async def rotate_key(
    endpoint_id: uuid.UUID, body: RotateRequest, session: SessionDep, principal: PrincipalDep, vault: VaultDep
) -> Response:
    """Make a new signing key of `kind`; the current keys of that kind keep signing for
    `overlap_hours`, then expire. The new secret is shown only in this answer.
    Emits `endpoint.key_rotated.v1`."""
    endpoint = await managed_endpoint(session, endpoint_id, principal)
    issued, old = await service.rotate(
        session, endpoint=endpoint, kind=body.kind, overlap=timedelta(hours=body.overlap_hours), vault=vault
    )
    result = KeyRotated(
        key=with_secret(issued.key, issued.secret),
        retiring=[WebhookKeyRead.model_validate(key) for key in old],
    )
    return JSONResponse(
        result.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/webhooks/{endpoint_id}/keys",
    response_model=list[WebhookKeyRead],
    responses=problem_responses(401, 403, 404),
)
async def list_keys(
    endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> list[WebhookKeyRead]:
    """The endpoint's keys, newest first, without secrets."""
    endpoint = await service.get(session, endpoint_id=endpoint_id)
    access.require_endpoint_reader(principal, endpoint.organization_id)
    return [
        WebhookKeyRead.model_validate(key) for key in await service.keys(session, endpoint_id=endpoint.id)
    ]


@router.get(
    "/webhooks/{endpoint_id}/signing-keys",
    response_model=SigningKeys,
    responses=problem_responses(400, 401, 403, 404),
)
async def get_signing_keys(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_roles(Role.SERVICE))],
    vault: VaultDep,
    at: datetime | None = None,
) -> Response:
    """The keys valid at `at` (default now) with their secrets, for notify-worker to sign
    deliveries (role `service` only; every fetch is logged, the secrets never)."""
    if at is not None and at.tzinfo is None:
        raise BadRequest("`at` needs a timezone", invalid_param="at")
    moment = at or utcnow()
    endpoint = await service.get(session, endpoint_id=endpoint_id)
    valid = await service.signing_keys(session, endpoint_id=endpoint.id, at=moment, vault=vault)
    log.info(
        "webhook.signing_keys_fetched",
        endpoint_id=str(endpoint.id),
        subject=principal.subject,
        role=principal.role.value,
        at=moment.isoformat(),
        key_ids=[str(item.key.id) for item in valid],
    )
    result = SigningKeys(
        endpoint_id=endpoint.id,
        at=moment,
        keys=[
            SigningKey(
                id=item.key.id,
                kind=item.key.kind,
                secret=item.secret,
                public_key=item.key.public_key,
                not_before=item.key.not_before,
                expires_at=item.key.expires_at,
            )
            for item in valid
        ],
    )
    return JSONResponse(result.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.post(
    "/webhooks/{endpoint_id}/test",
    response_model=DeliveryResult,
    responses=problem_responses(401, 403, 404),
)
async def send_test_event(
    endpoint_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, vault: VaultDep, policy: PolicyDep
) -> DeliveryResult:
    """Send a signed `webhook.test.v1` to the endpoint now and report what happened. The URL
    guard runs again before sending; a refused or failed delivery is reported in `error`."""
    endpoint = await managed_endpoint(session, endpoint_id, principal)
    delivery = await service.send_test_event(session, endpoint=endpoint, policy=policy, vault=vault)
    log.info(
        "webhook.test_sent",
        endpoint_id=str(endpoint.id),
        subject=principal.subject,
        status_code=delivery.status_code,
        error=delivery.error,
    )
    return DeliveryResult(
        message_id=delivery.message_id,
        status_code=delivery.status_code,
        duration_ms=delivery.duration_ms,
        error=delivery.error,
    )
