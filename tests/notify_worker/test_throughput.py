"""Delivery throughput: agreement-api's answers kept for a while (one request per endpoint, not per
attempt) and deliveries leased together and attempted side by side, each still once."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.clients import CachedEndpoints, EndpointPort, SigningKey, WebhookEndpoint, cached
from notify_worker.deliveries.dispatcher import Dispatcher
from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.deliveries.sender import Outcome, WebhookSender
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from shared.db import unit_of_work
from tests.notify_worker.webhook_setup import (
    LOCAL,
    Setup,
    committed_dispatcher,
)
from tests.webhook_receiver import Answer, Receiver


class Counting:
    """The real agreement-api client, counting the questions that reach it."""

    def __init__(self, port: EndpointPort) -> None:
        self.port = port
        self.calls: dict[str, int] = {"endpoints_for": 0, "signing_keys": 0, "disable_endpoint": 0}

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        self.calls["endpoints_for"] += 1
        return await self.port.endpoints_for(organization_id)

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        self.calls["signing_keys"] += 1
        return await self.port.signing_keys(endpoint_id, at)

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        self.calls["disable_endpoint"] += 1
        return await self.port.disable_endpoint(endpoint_id, reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _deliver_one(setup: Setup, dispatcher: Dispatcher) -> None:
    await setup.notice()
    await dispatcher.run_once()


async def test_a_second_attempt_within_the_ttl_does_not_ask_agreement_api_again(setup: Setup) -> None:
    counting, clock = Counting(setup.agreements), Clock()
    dispatcher = setup.dispatcher(agreements=CachedEndpoints(counting, ttl=10, clock=clock))

    await _deliver_one(setup, dispatcher)
    clock.now += 9
    await _deliver_one(setup, dispatcher)

    assert len(setup.receiver.bodies) == 2
    assert setup.receiver.verified == [True, True]
    assert counting.calls["signing_keys"] == 1
    assert counting.calls["endpoints_for"] == 1


async def test_after_the_ttl_agreement_api_is_asked_again(setup: Setup) -> None:
    counting, clock = Counting(setup.agreements), Clock()
    dispatcher = setup.dispatcher(agreements=CachedEndpoints(counting, ttl=10, clock=clock))

    await _deliver_one(setup, dispatcher)
    clock.now += 10.5
    await _deliver_one(setup, dispatcher)

    assert setup.receiver.verified == [True, True]
    assert counting.calls["signing_keys"] == 2
    assert counting.calls["endpoints_for"] == 2


async def test_a_ttl_of_zero_asks_for_every_attempt(setup: Setup) -> None:
    counting = Counting(setup.agreements)
    port = cached(counting, 0)
    assert port.ttl == 0  # a pass-through: nothing is kept
    dispatcher = setup.dispatcher(agreements=port)

    await _deliver_one(setup, dispatcher)
    await _deliver_one(setup, dispatcher)

    assert setup.receiver.verified == [True, True]
    assert counting.calls["signing_keys"] == 2


async def test_disabling_an_endpoint_forgets_what_was_kept(setup: Setup) -> None:
    counting = Counting(setup.agreements)
    port = CachedEndpoints(counting, ttl=60)
    await port.signing_keys(setup.endpoint_id, datetime.now(UTC))
    await port.endpoints_for(setup.organization_id)

    assert await port.disable_endpoint(setup.endpoint_id, "gone")
    [listed] = await port.endpoints_for(setup.organization_id)

    assert listed.state == "disabled"
    assert counting.calls["endpoints_for"] == 2
    await port.signing_keys(setup.endpoint_id, datetime.now(UTC))
    assert counting.calls["signing_keys"] == 2


class Slow:
    """An endpoint port that answers after a pause and can be told to fail."""

    def __init__(self, pause: float, *, fail: bool = False) -> None:
        self.pause = pause
        self.fail = fail
        self.asked = 0

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        raise NotImplementedError

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        self.asked += 1
        await asyncio.sleep(self.pause)
        if self.fail:
            raise ValueError("agreement-api is down")
        return [
            SigningKey(id=uuid.uuid4(), kind="hmac", secret="whsec_" + base64.b64encode(b"k" * 24).decode())
        ]

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        raise NotImplementedError


async def test_concurrent_misses_share_one_request_and_errors_are_not_kept() -> None:
    slow = Slow(0.05)
    port = CachedEndpoints(slow, ttl=10)
    endpoint_id = uuid.uuid4()

    answers = await asyncio.gather(*(port.signing_keys(endpoint_id, datetime.now(UTC)) for _ in range(10)))

    assert slow.asked == 1
    assert all(answer == answers[0] for answer in answers)

    failing = Slow(0.05, fail=True)
    port = CachedEndpoints(failing, ttl=10)
    results = await asyncio.gather(
        *(port.signing_keys(endpoint_id, datetime.now(UTC)) for _ in range(5)), return_exceptions=True
    )
    assert failing.asked == 1
    assert all(isinstance(result, ValueError) for result in results)
    failing.fail = False
    assert await port.signing_keys(endpoint_id, datetime.now(UTC))
    assert failing.asked == 2, "a failed answer is asked again"


# --- attempts side by side, on committed connections -------------------------------------------


class OneEndpoint:
    """agreement-api as the worker sees it: one active endpoint (the receiver) with one key."""

    def __init__(self, url: str, secret: str) -> None:
        self.organization_id = uuid.uuid4()
        self.endpoint = WebhookEndpoint(
            id=uuid.uuid4(), organization_id=self.organization_id, url=url, state="active"
        )
        self.key = SigningKey(id=uuid.uuid4(), kind="hmac", secret=secret)

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        return [self.endpoint] if organization_id == self.organization_id else []

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        return [self.key]

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        return True


async def _notices(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: uuid.UUID, n: int
) -> None:
    async with unit_of_work(sessionmaker) as session:
        for _ in range(n):
            session.add(
                NotifyNotice(
                    case_id=uuid.uuid4(),
                    recipient_organization_id=organization_id,
                    recipient_kind=RecipientKind.MUNICIPALITY,
                    agreement_source=AgreementSource.DEFAULT,
                    kind=NoticeKind.MILESTONE,
                    milestone_days=30,
                    release_date=date(2027, 3, 1),
                    due_at=datetime.now(UTC) - timedelta(minutes=1),
                    receipt_deadline_days=5,
                )
            )


async def _attempts_per_delivery(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(col(NotifyDelivery.webhook_id), func.count(col(NotifyAttempt.id)))
                .join(NotifyAttempt, col(NotifyAttempt.delivery_id) == col(NotifyDelivery.id))
                .group_by(col(NotifyDelivery.webhook_id))
            )
        ).all()
    return dict(rows)


SLOW_RECEIVER_S = 0.5


async def test_due_deliveries_to_a_slow_receiver_are_sent_side_by_side(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> None:
    n = 8
    receiver.secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    receiver.default = Answer(delay=SLOW_RECEIVER_S)
    port = OneEndpoint(receiver.url, receiver.secret)
    await _notices(committed_sessionmaker, port.organization_id, n)
    sender = WebhookSender(connect_timeout=2.0, read_timeout=5.0, policy=LOCAL)
    dispatcher = committed_dispatcher(committed_sessionmaker, port, sender, concurrency=n, batch_size=n)
    try:
        await dispatcher.run_once()
    finally:
        await sender.aclose()

    # One at a time, the receiver would never answer two at once; side by side it answers several
    # (counted at the receiver, so a slow machine cannot make this pass or fail by timing).
    assert receiver.most_in_flight >= 2, "attempts were not side by side"
    assert receiver.verified == [True] * n
    sent = [headers["webhook-id"] for headers in receiver.headers]
    assert len(set(sent)) == n
    assert await _attempts_per_delivery(committed_sessionmaker) == dict.fromkeys(sent, 1)
    async with committed_sessionmaker() as session:
        states = (await session.execute(select(col(NotifyNotice.state)))).scalars().all()
        deliveries = (await session.execute(select(col(NotifyDelivery.state)))).scalars().all()
    assert states == [NoticeState.DELIVERED] * n
    assert deliveries == [DeliveryState.SUCCEEDED] * n


async def test_two_workers_leasing_batches_never_attempt_a_delivery_twice(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> None:
    n = 24
    receiver.secret = "whsec_" + base64.b64encode(b"t" * 24).decode()
    receiver.default = Answer(delay=0.05)
    port = OneEndpoint(receiver.url, receiver.secret)
    await _notices(committed_sessionmaker, port.organization_id, n)
    senders = [WebhookSender(connect_timeout=2.0, read_timeout=5.0, policy=LOCAL) for _ in range(2)]
    workers = [
        committed_dispatcher(
            committed_sessionmaker, port, sender, concurrency=4, batch_size=6, worker_id=f"worker-{index}"
        )
        for index, sender in enumerate(senders)
    ]
    try:
        for _ in range(10):
            await asyncio.gather(*(worker.run_once() for worker in workers))
    finally:
        for sender in senders:
            await sender.aclose()

    sent = [headers["webhook-id"] for headers in receiver.headers]
    assert len(sent) == n, "a delivery was POSTed twice, or not at all"
    assert len(set(sent)) == n
    assert receiver.verified == [True] * n
    assert await _attempts_per_delivery(committed_sessionmaker) == dict.fromkeys(sent, 1)


async def _planned(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, n: int, seed: bytes
) -> OneEndpoint:
    """``n`` notices for the receiver, its endpoint answering at once."""
    receiver.secret = "whsec_" + base64.b64encode(seed * 24).decode()
    port = OneEndpoint(receiver.url, receiver.secret)
    await _notices(committed_sessionmaker, port.organization_id, n)
    return port


async def _delivery_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessionmaker() as session:
        return list((await session.execute(select(col(NotifyDelivery.id)))).scalars().all())


async def test_a_chunk_s_attempts_are_recorded_in_one_transaction(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, engine: AsyncEngine
) -> None:
    n = 6
    port = await _planned(committed_sessionmaker, receiver, n, b"u")
    sender = WebhookSender(connect_timeout=2.0, read_timeout=5.0, policy=LOCAL)
    dispatcher = committed_dispatcher(committed_sessionmaker, port, sender, concurrency=n, batch_size=n)
    now = datetime.now(UTC)
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    try:
        assert await dispatcher.plan(now) == n
        event.listen(engine.sync_engine, "commit", committed)
        try:
            assert await dispatcher.attempt_due(now, n) == n
        finally:
            event.remove(engine.sync_engine, "commit", committed)
    finally:
        await sender.aclose()

    assert len(commits) == 2, "one commit for the lease, one for the chunk's records"
    sent = [headers["webhook-id"] for headers in receiver.headers]
    assert await _attempts_per_delivery(committed_sessionmaker) == dict.fromkeys(sent, 1)
    async with committed_sessionmaker() as session:
        states = (await session.execute(select(col(NotifyDelivery.state)))).scalars().all()
    assert states == [DeliveryState.SUCCEEDED] * n


class OneBadRow(Dispatcher):
    """A dispatcher for which one delivery's record always fails, as a bad row would."""

    bad: uuid.UUID | None = None

    async def _record_in(
        self, session: AsyncSession, delivery: Any, url: str, outcome: Outcome, now: datetime, **kw: Any
    ) -> Any:
        if delivery.id == self.bad:
            raise RuntimeError("this row cannot be recorded")
        return await super()._record_in(session, delivery, url, outcome, now, **kw)


async def test_one_attempt_that_cannot_be_recorded_loses_no_other_s_record(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> None:
    n = 4
    port = await _planned(committed_sessionmaker, receiver, n, b"v")
    sender = WebhookSender(connect_timeout=2.0, read_timeout=5.0, policy=LOCAL)
    dispatcher = committed_dispatcher(
        committed_sessionmaker, port, sender, kind=OneBadRow, concurrency=n, batch_size=n
    )
    assert isinstance(dispatcher, OneBadRow)
    now = datetime.now(UTC)
    try:
        await dispatcher.plan(now)
        dispatcher.bad = (await _delivery_ids(committed_sessionmaker))[0]
        assert await dispatcher.attempt_due(now, n) == n
    finally:
        await sender.aclose()

    assert len(receiver.headers) == n, "every delivery was sent"
    async with committed_sessionmaker() as session:
        deliveries = {
            delivery.id: delivery for delivery in (await session.execute(select(NotifyDelivery))).scalars()
        }
        recorded = set((await session.execute(select(col(NotifyAttempt.delivery_id)))).scalars().all())
    assert recorded == set(deliveries) - {dispatcher.bad}, "the others' records were kept"
    bad = deliveries[dispatcher.bad]
    assert (bad.state, bad.attempts) == (DeliveryState.PENDING, 0)
    assert bad.next_attempt_at > now, "left to its lease, to be sent again with the same webhook-id"
    others = [delivery for delivery in deliveries.values() if delivery.id != dispatcher.bad]
    assert [(d.state, d.attempts) for d in others] == [(DeliveryState.SUCCEEDED, 1)] * (n - 1)
