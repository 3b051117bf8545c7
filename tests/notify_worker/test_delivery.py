"""Delivering claimed notices: signed POSTs to a real local receiver, retries, Retry-After, 410,
timeouts, and the notice marked only when its deliveries have ended."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notify_worker.clients import AgreementClient
from notify_worker.delivery import WebhookSender
from notify_worker.dispatcher import Dispatcher
from notify_worker.models import (
    AgreementSource,
    DeliveryState,
    NoticeKind,
    NoticeState,
    NotifyAttempt,
    NotifyDelivery,
    NotifyNotice,
    RecipientKind,
)
from shared.auth import mint_token
from shared.db import unit_of_work
from tests.conftest import auth, running, test_settings

PUBLIC_CASE_API = "https://tilbake.example.no"
LEASE = timedelta(minutes=2)


@dataclass
class Answer:
    status: int = 200
    retry_after: str | None = None
    sleep: float = 0.0


@dataclass
class Receiver:
    url: str
    secret: str = ""
    answers: list[Answer] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """uvicorn on 127.0.0.1 (a free port) answering from a per-test script (then 200)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    state = Receiver(url=f"http://127.0.0.1:{sock.getsockname()[1]}/hook")

    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        state.bodies.append(body)
        state.headers.append(headers)
        try:
            Webhook(state.secret).verify(body, headers)  # the public package, unchanged
            state.verified.append(True)
        except Exception:
            state.verified.append(False)
        answer = state.answers.pop(0) if state.answers else Answer()
        if answer.sleep:
            await asyncio.sleep(answer.sleep)
        extra = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        return Response(status_code=answer.status, headers=extra)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "the receiver did not start"
    try:
        yield state
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Setup:
    sessionmaker: async_sessionmaker[AsyncSession]
    agreements: AgreementClient
    receiver: Receiver
    organization_id: uuid.UUID
    endpoint_id: uuid.UUID
    senders: list[WebhookSender] = field(default_factory=list)

    def dispatcher(self, *, read_timeout: float = 5.0, schedule: list[float] | None = None) -> Dispatcher:
        sender = WebhookSender(connect_timeout=2.0, read_timeout=read_timeout)
        self.senders.append(sender)
        return Dispatcher(
            self.sessionmaker,
            self.agreements,
            sender,
            case_api_public_url=PUBLIC_CASE_API,
            retry_schedule=schedule or [30, 120, 600],
            claim_timeout=timedelta(minutes=5),
            lease=LEASE,
        )

    async def notice(self, *, kind: NoticeKind = NoticeKind.MILESTONE) -> uuid.UUID:
        notice = NotifyNotice(
            case_id=uuid.uuid4(),
            recipient_organization_id=self.organization_id,
            recipient_kind=RecipientKind.MUNICIPALITY,
            agreement_source=AgreementSource.DEFAULT,
            kind=kind,
            milestone_days=30 if kind is NoticeKind.MILESTONE else None,
            release_date=date(2027, 3, 1),
            due_at=datetime.now(UTC) - timedelta(minutes=1),
            receipt_deadline_days=5,
        )
        async with unit_of_work(self.sessionmaker) as session:
            session.add(notice)
        return notice.id

    async def state(self, notice_id: uuid.UUID) -> tuple[NotifyNotice, NotifyDelivery, list[NotifyAttempt]]:
        async with self.sessionmaker() as session:
            notice = await session.get(NotifyNotice, notice_id, populate_existing=True)
            delivery = (
                await session.execute(
                    select(NotifyDelivery)
                    .where(col(NotifyDelivery.notice_id) == notice_id)
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            attempts = (
                await session.execute(
                    select(NotifyAttempt)
                    .where(col(NotifyAttempt.delivery_id) == delivery.id)
                    .order_by(col(NotifyAttempt.at))
                )
            ).scalars()
            assert notice is not None
            return notice, delivery, list(attempts)


@pytest.fixture
async def setup(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> AsyncIterator[Setup]:
    from agreement_api.main import create_app

    settings = test_settings(
        "agreement_api.config", database_url, allow_private_webhook_urls=True, allow_http_webhooks=True
    )
    async with running(create_app(settings), sessionmaker=sessionmaker) as agreement:
        response = await agreement.post(
            "/api/v1/organizations",
            json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
            headers=auth("admin"),
        )
        assert response.status_code == 201, response.text
        organization_id = response.json()["id"]
        response = await agreement.post(
            f"/api/v1/organizations/{organization_id}/webhooks",
            json={"url": receiver.url, "key_kind": "hmac"},
            headers=auth("admin"),
        )
        assert response.status_code == 201, response.text
        created = response.json()
        receiver.secret = created["key"]["secret"]
        token = mint_token(role="service", subject="notify-worker")
        ready = Setup(
            sessionmaker=sessionmaker,
            agreements=AgreementClient("http://agreement-api", token, http=agreement),
            receiver=receiver,
            organization_id=uuid.UUID(organization_id),
            endpoint_id=uuid.UUID(created["id"]),
        )
        try:
            yield ready
        finally:
            for sender in ready.senders:
                await sender.aclose()


async def test_a_due_notice_is_delivered_signed_and_thin(setup: Setup) -> None:
    notice_id = await setup.notice()
    await setup.dispatcher().run_once()

    received = setup.receiver
    assert received.verified == [True], "standardwebhooks verifies the v1 signature"
    assert received.headers[0]["webhook-id"].startswith("msg_")
    assert received.headers[0]["webhook-signature"].startswith("v1,")
    body: dict[str, Any] = json.loads(received.bodies[0])
    notice, delivery, attempts = await setup.state(notice_id)
    assert body == {
        "type": "notice.release_upcoming.v1",
        "notice_id": str(notice_id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(setup.organization_id),
        "milestone_days": 30,
        "release_date": "2027-03-01",
        "detail_url": f"{PUBLIC_CASE_API}/api/v1/cases/{notice.case_id}",
    }
    # Thin: ids and dates only, no name and no identity number (11 digits) anywhere.
    assert not re.search(rb"\d{11}", received.bodies[0])
    assert not {"name", "person", "fodselsnummer", "national_id"} & set(body)
    assert notice.state is NoticeState.DELIVERED
    assert delivery.state is DeliveryState.SUCCEEDED
    assert delivery.endpoint_id == setup.endpoint_id
    assert delivery.webhook_id == received.headers[0]["webhook-id"]
    assert [(a.status_code, a.error_class) for a in attempts] == [(200, None)]


async def test_a_change_notice_has_its_own_type(setup: Setup) -> None:
    await setup.notice(kind=NoticeKind.CHANGE)
    await setup.dispatcher().run_once()
    body = json.loads(setup.receiver.bodies[0])
    assert body["type"] == "notice.release_date_changed.v1"
    assert body["milestone_days"] is None


async def test_a_server_error_is_retried_with_the_same_webhook_id(setup: Setup) -> None:
    setup.receiver.answers = [Answer(500)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    notice, delivery, attempts = await setup.state(notice_id)
    assert notice.state is NoticeState.CLAIMED, "not delivered while a delivery is pending"
    assert delivery.state is DeliveryState.PENDING
    assert delivery.last_status == 500
    assert delivery.last_error_class == "server_error"
    assert now + timedelta(seconds=24) <= delivery.next_attempt_at <= now + timedelta(seconds=37)

    await dispatcher.run_once(now + timedelta(seconds=10))  # not due yet
    assert len(setup.receiver.bodies) == 1
    await dispatcher.run_once(now + timedelta(seconds=40))

    notice, delivery, attempts = await setup.state(notice_id)
    assert [a.status_code for a in attempts] == [500, 200]
    assert delivery.attempts == 2
    ids = {headers["webhook-id"] for headers in setup.receiver.headers}
    assert ids == {delivery.webhook_id}, "every retry carries the same webhook-id"
    assert setup.receiver.verified == [True, True]
    assert notice.state is NoticeState.DELIVERED


async def test_retry_after_is_honoured(setup: Setup) -> None:
    setup.receiver.answers = [Answer(429, retry_after="120")]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    _, delivery, attempts = await setup.state(notice_id)
    assert attempts[0].error_class == "rate_limited"
    assert now + timedelta(seconds=120) <= delivery.next_attempt_at <= now + timedelta(seconds=125)

    await dispatcher.run_once(now + timedelta(seconds=60))  # the backoff (30 s) would have sent it
    assert len(setup.receiver.bodies) == 1
    await dispatcher.run_once(now + timedelta(seconds=126))
    notice, delivery, _ = await setup.state(notice_id)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert notice.state is NoticeState.DELIVERED


async def test_gone_fails_the_delivery_for_good(setup: Setup) -> None:
    setup.receiver.answers = [Answer(410)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    await dispatcher.run_once(now + timedelta(days=4))

    notice, delivery, attempts = await setup.state(notice_id)
    assert len(setup.receiver.bodies) == 1, "no further attempts"
    assert delivery.state is DeliveryState.FAILED_PERMANENTLY
    assert [(a.status_code, a.error_class) for a in attempts] == [(410, "gone")]
    assert notice.state is NoticeState.DEAD, "its only endpoint is gone"


async def test_a_timeout_is_recorded_and_retried(setup: Setup) -> None:
    setup.receiver.answers = [Answer(200, sleep=1.0)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(read_timeout=0.3)
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    notice, delivery, attempts = await setup.state(notice_id)
    assert [(a.status_code, a.error_class) for a in attempts] == [(None, "read_timeout")]
    assert 250 <= attempts[0].duration_ms < 1000
    assert delivery.state is DeliveryState.PENDING
    assert delivery.next_attempt_at > now
    assert notice.state is NoticeState.CLAIMED


async def test_the_delivery_dies_when_the_schedule_runs_out(setup: Setup) -> None:
    setup.receiver.answers = [Answer(503), Answer(503), Answer(503)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[1, 1])
    now = datetime.now(UTC)
    for step in range(4):
        await dispatcher.run_once(now + timedelta(seconds=10 * step))

    notice, delivery, attempts = await setup.state(notice_id)
    assert len(attempts) == 3
    assert delivery.state is DeliveryState.DEAD
    assert notice.state is NoticeState.DEAD


async def test_a_crash_mid_delivery_is_retried_with_the_same_webhook_id(setup: Setup) -> None:
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.plan(now)
    leased = await dispatcher._lease(now)  # the worker dies after taking the delivery
    assert leased is not None

    await dispatcher.run_once(now + LEASE / 2)
    assert setup.receiver.bodies == [], "the lease still holds"
    await dispatcher.run_once(now + LEASE + timedelta(seconds=1))

    notice, delivery, _ = await setup.state(notice_id)
    assert setup.receiver.headers[0]["webhook-id"] == leased.webhook_id == delivery.webhook_id
    assert notice.state is NoticeState.DELIVERED


async def test_a_recipient_without_endpoints_is_dead(
    setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=uuid.uuid4(),  # unknown to agreement-api
        recipient_kind=RecipientKind.OTHER,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=7,
        release_date=date(2027, 3, 1),
        due_at=datetime.now(UTC) - timedelta(minutes=1),
        receipt_deadline_days=5,
    )
    async with unit_of_work(sessionmaker) as session:
        session.add(notice)
    await setup.dispatcher().run_once()
    async with sessionmaker() as session:
        row = await session.get(NotifyNotice, notice.id, populate_existing=True)
    assert row is not None
    assert row.state is NoticeState.DEAD
    assert setup.receiver.bodies == []


async def test_stop_finishes_the_attempt_in_flight(setup: Setup) -> None:
    setup.receiver.answers = [Answer(200, sleep=0.5)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    task = asyncio.create_task(dispatcher.run(interval=0.05))
    for _ in range(100):
        if setup.receiver.bodies:
            break
        await asyncio.sleep(0.02)
    dispatcher.stop()
    await asyncio.wait_for(task, timeout=5)

    notice, delivery, attempts = await setup.state(notice_id)
    assert [a.status_code for a in attempts] == [200]
    assert delivery.state is DeliveryState.SUCCEEDED
    assert notice.state is NoticeState.DELIVERED


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("", None), ("soon", None)])
def test_retry_after_values(value: str, seconds: float | None) -> None:
    from notify_worker.delivery import retry_after_seconds

    assert retry_after_seconds(value) == seconds


def test_retry_after_as_a_date() -> None:
    from notify_worker.delivery import retry_after_seconds

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 23 Nov 2026 12:02:00 GMT", now=now) == 120.0
