"""Service market requests: an inmate asks for a talk (samtalelapp, list, referral) and staff triage
the queue. Flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.market import access, inmates, providers
from case_api.market.errors import RequestNotFound
from case_api.market.models import MarketRequest, TriageState
from case_api.market.schemas import RequestCreate
from shared.db import utcnow
from shared.pagination import keyset_page


async def create_request(session: AsyncSession, *, viewer: Viewer, data: RequestCreate) -> MarketRequest:
    access.require_request_writer(viewer)
    case = await inmates.load_case(session, viewer=viewer, case_id=data.case_id)
    if data.wanted_provider_id is not None:
        await providers.require_provider_for_change(
            session, provider_id=data.wanted_provider_id, field="wanted_provider_id"
        )
    request = MarketRequest(
        case_id=case.id,
        unit_id=case.current_unit_id,
        channel=data.channel,
        wanted_provider_id=data.wanted_provider_id,
        wanted_domain=data.wanted_domain,
        note=data.note,
        created_by=viewer.subject,
    )
    session.add(request)
    await session.flush()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="market.request_received",
        entity="market_request",
        entity_id=request.id,
        after=audit.snapshot(request, ("channel", "wanted_provider_id", "wanted_domain")),
    )
    await session.flush()
    return request


async def load_request(session: AsyncSession, *, viewer: Viewer, request_id: uuid.UUID) -> MarketRequest:
    access.require_request_reader(viewer)
    request = await session.get(MarketRequest, request_id)
    if request is None or not await access.in_scope(session, viewer, request.unit_id):
        raise RequestNotFound(f"No request {request_id} that you may see")
    return request


async def triage_request(
    session: AsyncSession, *, viewer: Viewer, request: MarketRequest, state: TriageState
) -> MarketRequest:
    access.require_request_writer(viewer)
    if request.triage_state is state:
        return request
    before = request.triage_state
    request.triage_state = state
    request.updated_at = utcnow()
    audit.record_change(
        session,
        viewer,
        case_id=request.case_id,
        action="market.request_triaged",
        entity="market_request",
        entity_id=request.id,
        before={"triage_state": before.value},
        after={"triage_state": state.value},
    )
    await session.flush()
    return request


async def list_requests_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID,
    triage_state: TriageState | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MarketRequest], str | None]:
    """A unit's requests, oldest first (the queue to triage)."""
    access.require_request_reader(viewer)
    await access.require_unit(session, viewer, unit_id)
    conditions: list[ColumnElement[bool]] = [col(MarketRequest.unit_id) == unit_id]
    if triage_state is not None:
        conditions.append(col(MarketRequest.triage_state) == triage_state)
    return await keyset_page(
        session,
        select(MarketRequest).where(*conditions),
        time_column=col(MarketRequest.created_at),
        id_column=col(MarketRequest.id),
        limit=limit,
        cursor=cursor,
    )
