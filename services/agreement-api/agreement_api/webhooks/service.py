"""Webhook endpoints and their signing keys. Flushes, never commits.

Events carry ids, kinds, states and times only: never a secret, private key or its ciphertext.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from agreement_api.organizations.errors import OrganizationNotFound
from agreement_api.organizations.models import Organization
from agreement_api.webhooks import signing, ssrf
from agreement_api.webhooks.errors import InvalidWebhookUrl, WebhookNotFound
from agreement_api.webhooks.models import EndpointState, KeyKind, KeyState, WebhookEndpoint, WebhookKey
from agreement_api.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from shared import webhooks
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.outbox import add_event
from shared.pagination import keyset_page

SEND_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


@dataclass(frozen=True)
class IssuedKey:
    """A key just made, with the secret that is shown this once."""

    key: WebhookKey
    secret: str


@dataclass(frozen=True)
class ValidKey:
    key: WebhookKey
    secret: str


@dataclass(frozen=True)
class Delivery:
    message_id: str
    status_code: int | None
    duration_ms: int
    error: str | None


async def organization(session: AsyncSession, *, organization_id: uuid.UUID) -> Organization:
    found = await session.get(Organization, organization_id)
    if found is None:
        raise OrganizationNotFound(f"No organization with id {organization_id}", field="organization_id")
    return found


async def get(session: AsyncSession, *, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookNotFound(f"No webhook endpoint with id {endpoint_id}")
    return endpoint


def _emit(
    session: AsyncSession, contract: type[contracts.EndpointEvent], endpoint: WebhookEndpoint, **extra: Any
) -> None:
    payload = contract(
        endpoint_id=endpoint.id,
        organization_id=endpoint.organization_id,
        state=endpoint.state.value,
        event_types=list(endpoint.event_types),
        **extra,
    )
    add_event(session, AgreementOutbox, payload, subject=f"webhook/{endpoint.id}")


async def _issue_key(
    session: AsyncSession, *, endpoint: WebhookEndpoint, kind: KeyKind, vault: signing.KeyVault
) -> IssuedKey:
    new = signing.generate(kind)
    now = utcnow()
    key = WebhookKey(
        endpoint_id=endpoint.id,
        kind=kind,
        encrypted_secret=vault.encrypt(new.secret),
        public_key=new.public_key,
        fingerprint=new.fingerprint,
        created_at=now,
        not_before=now,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key=key, secret=new.secret)


async def create(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    data: WebhookEndpointCreate,
    policy: ssrf.UrlPolicy,
    vault: signing.KeyVault,
) -> tuple[WebhookEndpoint, IssuedKey]:
    """Register an endpoint with its first key; stages ``endpoint.created.v1``."""
    await organization(session, organization_id=organization_id)
    await ssrf.check_url(data.url, policy)
    endpoint = WebhookEndpoint(
        organization_id=organization_id,
        url=data.url,
        description=data.description,
        event_types=data.event_types,
        rate_limit_per_minute=data.rate_limit_per_minute,
    )
    session.add(endpoint)
    await session.flush()
    issued = await _issue_key(session, endpoint=endpoint, kind=data.key_kind, vault=vault)
    _emit(
        session,
        contracts.EndpointCreated,
        endpoint,
        key_id=str(issued.key.id),
        key_kind=issued.key.kind.value,
    )
    return endpoint, issued


async def list_page(
    session: AsyncSession, *, organization_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    """One page of an organization's endpoints, oldest first."""
    await organization(session, organization_id=organization_id)
    return await keyset_page(
        session,
        select(WebhookEndpoint).where(col(WebhookEndpoint.organization_id) == organization_id),
        time_column=col(WebhookEndpoint.created_at),
        id_column=col(WebhookEndpoint.id),
        limit=limit,
        cursor=cursor,
    )


async def update(
    session: AsyncSession, *, endpoint: WebhookEndpoint, data: WebhookEndpointUpdate, policy: ssrf.UrlPolicy
) -> WebhookEndpoint:
    """Change URL, description, event types or rate limit (the caller checked If-Match)."""
    changes = data.model_dump(exclude_unset=True)
    changed = [name for name, value in changes.items() if getattr(endpoint, name) != value]
    if not changed:
        return endpoint
    if "url" in changed:
        await ssrf.check_url(changes["url"], policy)
    for name in changed:
        setattr(endpoint, name, changes[name])
    endpoint.updated_at = utcnow()
    await session.flush()
    _emit(session, contracts.EndpointChanged, endpoint, changed=sorted(changed))
    return endpoint


async def disable(session: AsyncSession, *, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    """Stop deliveries; stages ``endpoint.disabled.v1`` (a repeat only updates the reason)."""
    was_active = endpoint.state is EndpointState.ACTIVE
    if not was_active and endpoint.disabled_reason == reason:
        return endpoint
    endpoint.state = EndpointState.DISABLED
    endpoint.disabled_reason = reason
    endpoint.updated_at = utcnow()
    await session.flush()
    if was_active:
        _emit(session, contracts.EndpointDisabled, endpoint, reason=reason)
    else:
        _emit(session, contracts.EndpointChanged, endpoint, changed=["disabled_reason"])
    return endpoint


async def enable(
    session: AsyncSession, *, endpoint: WebhookEndpoint, policy: ssrf.UrlPolicy
) -> WebhookEndpoint:
    """Resume deliveries (the URL is checked again); stages ``endpoint.changed.v1``."""
    if endpoint.state is EndpointState.ACTIVE:
        return endpoint
    await ssrf.check_url(endpoint.url, policy)
    endpoint.state = EndpointState.ACTIVE
    endpoint.disabled_reason = None
    endpoint.updated_at = utcnow()
    await session.flush()
    _emit(session, contracts.EndpointChanged, endpoint, changed=["state"])
    return endpoint


def _valid_at(at: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (
        col(WebhookKey.not_before) <= at,
        or_(col(WebhookKey.expires_at).is_(None), col(WebhookKey.expires_at) > at),
    )


async def rotate(
    session: AsyncSession,
    *,
    endpoint: WebhookEndpoint,
    kind: KeyKind,
    overlap: timedelta,
    vault: signing.KeyVault,
) -> tuple[IssuedKey, list[WebhookKey]]:
    """A new key of ``kind``; the current keys of that kind expire after ``overlap``.

    Until then both the old and the new key sign; afterwards only the new one."""
    now = utcnow()
    expire_at = now + overlap
    old = list(
        (
            await session.execute(
                select(WebhookKey)
                .where(
                    col(WebhookKey.endpoint_id) == endpoint.id,
                    col(WebhookKey.kind) == kind,
                    *_valid_at(now),
                )
                .order_by(col(WebhookKey.created_at))
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    for key in old:
        key.state = KeyState.RETIRED
        if key.expires_at is None or key.expires_at > expire_at:
            key.expires_at = expire_at
    issued = await _issue_key(session, endpoint=endpoint, kind=kind, vault=vault)
    _emit(
        session,
        contracts.EndpointKeyRotated,
        endpoint,
        key_id=str(issued.key.id),
        kind=kind.value,
        old_key_ids=[str(key.id) for key in old],
        old_keys_expire_at=expire_at.isoformat() if old else None,
    )
    return issued, old


async def keys(session: AsyncSession, *, endpoint_id: uuid.UUID) -> list[WebhookKey]:
    """Every key of an endpoint, newest first (expired ones too, for the record)."""
    rows = await session.execute(
        select(WebhookKey)
        .where(col(WebhookKey.endpoint_id) == endpoint_id)
        .order_by(col(WebhookKey.created_at).desc(), col(WebhookKey.id))
    )
    return list(rows.scalars().all())


async def signing_keys(
    session: AsyncSession, *, endpoint_id: uuid.UUID, at: datetime, vault: signing.KeyVault
) -> list[ValidKey]:
    """The keys valid at ``at``, decrypted: what a delivery at ``at`` is signed with."""
    rows = await session.execute(
        select(WebhookKey)
        .where(col(WebhookKey.endpoint_id) == endpoint_id, *_valid_at(at))
        .order_by(col(WebhookKey.created_at), col(WebhookKey.id))
    )
    return [ValidKey(key=key, secret=vault.decrypt(key.encrypted_secret)) for key in rows.scalars().all()]


def as_signing_keys(valid: list[ValidKey]) -> list[webhooks.SigningKey]:
    return [
        webhooks.SigningKey(
            kind="ed25519" if item.key.kind is KeyKind.ED25519 else "hmac", secret=item.secret
        )
        for item in valid
    ]


def _test_body(endpoint: WebhookEndpoint, message_id: str) -> str:
    now = utcnow()
    payload = contracts.WebhookTest(
        endpoint_id=endpoint.id,
        organization_id=endpoint.organization_id,
        message="A test event: the endpoint is reachable and can verify signatures.",
    )
    return json.dumps(
        {
            "id": message_id,
            "type": payload.TYPE,
            "occurred_at": now.isoformat(),
            "source": payload.PRODUCER,
            "subject": f"webhook/{endpoint.id}",
            "data": payload.data(),
        },
        separators=(",", ":"),
    )


async def send_test_event(
    session: AsyncSession,
    *,
    endpoint: WebhookEndpoint,
    policy: ssrf.UrlPolicy,
    vault: signing.KeyVault,
    client: httpx.AsyncClient | None = None,
) -> Delivery:
    """Send a signed ``webhook.test.v1`` to the endpoint now: the SSRF guard runs again first, and
    the connection goes to an address it allowed (the default client is pinned, shared/ssrf.py)."""
    message_id = f"msg_{uuid.uuid4().hex}"
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        addresses = await ssrf.check_url(endpoint.url, policy)
    except InvalidWebhookUrl as exc:
        return Delivery(message_id, None, elapsed(), f"refused: {exc.detail}")
    valid = await signing_keys(session, endpoint_id=endpoint.id, at=utcnow(), vault=vault)
    if not valid:
        return Delivery(message_id, None, elapsed(), "the endpoint has no valid signing key")
    body = _test_body(endpoint, message_id)
    timestamp = int(time.time())
    headers = {
        **webhooks.headers(
            message_id, timestamp, webhooks.sign(message_id, timestamp, body, as_signing_keys(valid))
        ),
        "content-type": "application/json",
        "user-agent": "tilbake-agreement-api/webhook-test",
    }
    started = time.monotonic()
    own_client = client is None
    http = client or ssrf.pinned_client(timeout=SEND_TIMEOUT)
    try:
        with ssrf.pinned(endpoint.url, addresses):
            response = await http.post(endpoint.url, content=body.encode(), headers=headers)
    except httpx.TimeoutException:
        return Delivery(message_id, None, elapsed(), "timed out")
    except httpx.HTTPError as exc:
        return Delivery(message_id, None, elapsed(), f"could not deliver: {type(exc).__name__}")
    finally:
        if own_client:
            await http.aclose()
    error = None if 200 <= response.status_code < 300 else f"the receiver answered {response.status_code}"
    return Delivery(message_id, response.status_code, elapsed(), error)
