"""Operators' view of notices and deliveries (admin and auditor), and redelivery of dead letters
(admin only). The queries are in :mod:`notify_worker.ops.service`, redelivery in
:mod:`notify_worker.deliveries.redelivery`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from notify_worker.clients import EndpointPort
from notify_worker.deliveries import redelivery
from notify_worker.deliveries.models import DeliveryState
from notify_worker.notices.models import NoticeState
from notify_worker.ops import service
from notify_worker.ops.schemas import (
    AttemptRead,
    DeliveryRead,
    NoticeDetail,
    NoticeList,
    NoticeRead,
    Redelivered,
    RedeliverSince,
)
from shared.auth import Principal, Role, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import Page

router = APIRouter(tags=["notices"])

OPERATORS = (Role.ADMIN, Role.AUDITOR)
OperatorDep = Annotated[Principal, Depends(require_roles(*OPERATORS))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Limit = Annotated[int, Query(ge=1, le=500)]


def endpoint_port(request: Request) -> EndpointPort:
    port: EndpointPort = request.app.state.ports.agreements
    return port


EndpointsDep = Annotated[EndpointPort, Depends(endpoint_port)]


@router.get(
    "/cases/{case_id}/notices",
    response_model=NoticeList,
    responses=problem_responses(401, 403),
    summary="The notice schedule of a case",
)
async def case_notices(case_id: uuid.UUID, session: SessionDep, _principal: OperatorDep) -> NoticeList:
    """Every notice of the case, by due time: recipient, milestone, due time, state and hold
    reason (admin, auditor). An unknown case has an empty schedule."""
    notices = await service.case_notices(session, case_id=case_id)
    return NoticeList(items=[NoticeRead.model_validate(notice) for notice in notices])


@router.get(
    "/notices",
    response_model=Page[NoticeRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Notices by case, recipient and state",
)
async def list_notices(
    session: SessionDep,
    _principal: OperatorDep,
    case_id: uuid.UUID | None = None,
    recipient_organization_id: uuid.UUID | None = None,
    state: NoticeState | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[NoticeRead]:
    """Notices, oldest first, filtered by any of case, recipient and state (admin, auditor)."""
    rows, next_cursor = await service.list_notices(
        session,
        case_id=case_id,
        recipient_organization_id=recipient_organization_id,
        state=state,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[NoticeRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/notices/{notice_id}",
    response_model=NoticeDetail,
    responses=problem_responses(401, 403, 404),
    summary="One notice with its deliveries",
)
async def get_notice(notice_id: uuid.UUID, session: SessionDep, _principal: OperatorDep) -> NoticeDetail:
    """The notice and one delivery per webhook endpoint of its recipient (admin, auditor)."""
    notice = await service.get_notice(session, notice_id=notice_id)
    deliveries = await service.deliveries_of(session, notice_id=notice_id)
    return NoticeDetail(
        **NoticeRead.model_validate(notice).model_dump(),
        deliveries=[DeliveryRead.model_validate(delivery) for delivery in deliveries],
    )


@router.get(
    "/deliveries",
    response_model=Page[DeliveryRead],
    responses=problem_responses(400, 401, 403, 422),
    summary="Deliveries by case, endpoint, recipient and state",
)
async def list_deliveries(
    session: SessionDep,
    _principal: OperatorDep,
    case_id: uuid.UUID | None = None,
    endpoint_id: uuid.UUID | None = None,
    recipient_organization_id: uuid.UUID | None = None,
    state: DeliveryState | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[DeliveryRead]:
    """Deliveries, oldest first, filtered by any of case, endpoint, recipient and state (admin,
    auditor). `state=dead` lists the dead letters."""
    rows, next_cursor = await service.list_deliveries(
        session,
        case_id=case_id,
        endpoint_id=endpoint_id,
        recipient_organization_id=recipient_organization_id,
        state=state,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[DeliveryRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/deliveries/{delivery_id}/attempts",
    response_model=Page[AttemptRead],
    responses=problem_responses(400, 401, 403, 404),
    summary="The attempt history of a delivery",
)
async def delivery_attempts(
    delivery_id: uuid.UUID,
    session: SessionDep,
    _principal: OperatorDep,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[AttemptRead]:
    """Every attempt, oldest first: when, the receiver's status, how long it took and the error
    class (admin, auditor)."""
    rows, next_cursor = await service.delivery_attempts(
        session, delivery_id=delivery_id, limit=limit, cursor=cursor
    )
    return Page(items=[AttemptRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryRead,
    responses=problem_responses(401, 403, 404, 409, 503),
    summary="Send a dead letter again",
)
async def redeliver_delivery(
    delivery_id: uuid.UUID, session: SessionDep, endpoints: EndpointsDep, _principal: AdminDep
) -> DeliveryRead:
    """Send a `dead` or `failed_permanently` delivery again, with the same `webhook-id`, to the
    endpoint's current URL (admin). 409 when it is pending or succeeded, or when its endpoint is
    not active in agreement-api; safe to repeat (a second call answers 409)."""
    delivery = await redelivery.redeliver_one(session, endpoints, delivery_id)
    return DeliveryRead.model_validate(delivery)


@router.post(
    "/endpoints/{endpoint_id}/redeliver",
    response_model=Redelivered,
    responses=problem_responses(401, 403, 409, 415, 422, 503),
    summary="Send an endpoint's dead letters again",
)
async def redeliver_endpoint(
    endpoint_id: uuid.UUID,
    body: RedeliverSince,
    session: SessionDep,
    endpoints: EndpointsDep,
    _principal: AdminDep,
) -> Redelivered:
    """Send again every `dead` or `failed_permanently` delivery of the endpoint that ended at or
    after `since` (admin). 409 when the endpoint is not active in agreement-api; safe to repeat
    (a second call finds nothing and answers a count of 0)."""
    deliveries = await redelivery.redeliver_since(session, endpoints, endpoint_id, body.since)
    return Redelivered(count=len(deliveries), delivery_ids=[delivery.id for delivery in deliveries])
