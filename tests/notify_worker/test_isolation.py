"""One slow receiver delays no other: attempts in flight per endpoint are limited, each attempt's
slot is free again the moment it ends, and the loop does not wait for slow attempts to lease and
send the others'. Checked by what the receiver saw and what the worker recorded, never by timing
the test: the slow endpoint holds every request until the test lets it go."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.clients import SigningKey, WebhookEndpoint
from notify_worker.deliveries.dispatcher import Dispatcher
from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.deliveries.sender import WebhookSender
from notify_worker.notices.models import NoticeState, NotifyNotice
from tests.notify_worker.harness import wait_until
from tests.notify_worker.test_reliability import insert_notices
from tests.notify_worker.webhook_setup import LOCAL, committed_dispatcher
from tests.webhook_receiver import Answer, Receiver

SLOW, FAST = "slow", "fast"
WAIT_S = 30.0  # a bound for the test to fail by, never a figure it checks


class Endpoints:
    """agreement-api as the worker sees it: one organization per receiver endpoint, each with one
    active endpoint and one key of its own."""

    def __init__(self, receiver: Receiver, *names: str) -> None:
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.keys: dict[uuid.UUID, SigningKey] = {}
        for name in names:
            secret = "whsec_" + base64.b64encode(name.encode().ljust(24, b"-")).decode()
            receiver.secrets[name] = secret
            endpoint = WebhookEndpoint(
                id=uuid.uuid4(), organization_id=uuid.uuid4(), url=receiver.url_of(name), state="active"
            )
            self.endpoints[name] = endpoint
            self.keys[endpoint.id] = SigningKey(id=uuid.uuid4(), kind="hmac", secret=secret)

    def organization(self, name: str) -> str:
        return str(self.endpoints[name].organization_id)

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        return [e for e in self.endpoints.values() if e.organization_id == organization_id]

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        return [self.keys[endpoint_id]]

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        return True


@dataclass
class Held:
    """The delivery loop running, the slow endpoint holding two requests."""

    sessionmaker: async_sessionmaker[AsyncSession]
    port: Endpoints
    slow_ids: list[uuid.UUID]
    worker: Dispatcher
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def slow_endpoint_held(
    sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver, *names: str
) -> AsyncIterator[Held]:
    """Four notices for the endpoint ``slow``, which holds every request until the receiver is
    reset, and the loop running with three slots, at most two attempts in flight per endpoint;
    yields once the slow endpoint holds two. Stopped (the holds let go) at the end."""
    receiver.script(SLOW, *[Answer(hold=True)] * 4)
    port = Endpoints(receiver, SLOW, *names)
    slow_ids = await insert_notices(sessionmaker, port.organization(SLOW), 4)
    # A read timeout that outlasts the test: a held request stays in flight.
    sender = WebhookSender(connect_timeout=2.0, read_timeout=120.0, policy=LOCAL)
    worker = committed_dispatcher(sessionmaker, port, sender, concurrency=3, endpoint_concurrency=2)
    task = asyncio.create_task(worker.run(interval=0.05))
    try:

        async def held() -> bool:
            return len(receiver.requests(SLOW)) >= 2

        await wait_until(held, WAIT_S, lambda: f"the slow endpoint got {receiver.requests(SLOW)}")
        yield Held(sessionmaker, port, slow_ids, worker, task)
    finally:
        worker.stop()
        receiver.reset()
        try:
            await asyncio.wait_for(task, timeout=WAIT_S)
        finally:
            await sender.aclose()


async def deliveries_of(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: str
) -> list[tuple[NotifyDelivery, int]]:
    """The organization's deliveries, each with the attempts recorded for it."""
    async with sessionmaker() as session:
        deliveries = (
            (
                await session.execute(
                    select(NotifyDelivery).where(
                        col(NotifyDelivery.organization_id) == uuid.UUID(organization_id)
                    )
                )
            )
            .scalars()
            .all()
        )
        attempts = (
            (
                await session.execute(
                    select(col(NotifyAttempt.delivery_id)).where(
                        col(NotifyAttempt.delivery_id).in_([d.id for d in deliveries])
                    )
                )
            )
            .scalars()
            .all()
        )
    return [(delivery, attempts.count(delivery.id)) for delivery in deliveries]


async def notice_states(sessionmaker: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> set[str]:
    async with sessionmaker() as session:
        states = (
            (await session.execute(select(col(NotifyNotice.state)).where(col(NotifyNotice.id).in_(ids))))
            .scalars()
            .all()
        )
    return {state.value for state in states}


async def test_a_receiver_holding_every_request_delays_no_other_endpoint(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> None:
    sm = committed_sessionmaker
    async with slow_endpoint_held(sm, receiver, FAST) as running:
        # The slow endpoint holds two of the three slots; its other deliveries are due but wait.
        port = running.port
        fast_ids = await insert_notices(sm, port.organization(FAST), 8)

        async def fast_delivered() -> bool:
            return await notice_states(sm, fast_ids) == {NoticeState.DELIVERED.value}

        await wait_until(
            fast_delivered,
            WAIT_S,
            lambda: f"fast endpoint: {len(receiver.requests(FAST))} of 8 arrived while the slow one held 2",
        )

        # Every fast delivery went through the one free slot, each as the one before it ended,
        # while the slow endpoint's first two requests were still held.
        fast = receiver.requests(FAST)
        assert len(fast) == 8
        assert len({item.webhook_id for item in fast}) == 8
        assert all(item.verified for item in fast)
        assert len(receiver.requests(SLOW)) == 2, "no more than two attempts in flight to one endpoint"
        slow = await deliveries_of(sm, port.organization(SLOW))
        now = datetime.now(UTC)
        assert len([d for d, _ in slow if d.next_attempt_at > now]) == 2, "the two held attempts are leased"
        assert len([d for d, _ in slow if d.next_attempt_at <= now]) == 2, (
            "the others were left due, not leased into a shared slot"
        )
        assert all(n == 0 and d.state is DeliveryState.PENDING for d, n in slow), "nothing recorded yet"
        assert await notice_states(sm, running.slow_ids) == {NoticeState.CLAIMED.value}

        receiver.reset()  # the slow receiver answers at last; its other two deliveries follow

        async def slow_delivered() -> bool:
            return await notice_states(sm, running.slow_ids) == {NoticeState.DELIVERED.value}

        await wait_until(slow_delivered, WAIT_S, lambda: f"slow endpoint: {receiver.requests(SLOW)}")

    for organization in (port.organization(SLOW), port.organization(FAST)):
        for delivery, attempts in await deliveries_of(sm, organization):
            assert (delivery.state, attempts) == (DeliveryState.SUCCEEDED, 1), "each attempted once"


async def test_stop_finishes_and_records_the_slow_attempts_still_in_flight(
    committed_sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> None:
    sm = committed_sessionmaker
    async with slow_endpoint_held(sm, receiver) as running:
        running.worker.stop()  # SIGTERM while the attempts have outlived the rounds that started them
        await asyncio.sleep(0.3)
        assert not running.task.done(), "the loop waits for the attempts in flight"
        receiver.reset()
        await asyncio.wait_for(running.task, timeout=WAIT_S)

    deliveries = await deliveries_of(sm, running.port.organization(SLOW))
    ended = sorted((d.state.value, n) for d, n in deliveries if n)
    assert ended == [(DeliveryState.SUCCEEDED.value, 1)] * 2, "both held attempts were recorded"
    left = [d for d, n in deliveries if not n]
    assert len(left) == 2
    assert all(d.state is DeliveryState.PENDING for d in left)
    assert all(d.next_attempt_at <= datetime.now(UTC) for d in left), "not leased after the stop"
    states = await notice_states(sm, running.slow_ids)
    assert states == {NoticeState.DELIVERED.value, NoticeState.CLAIMED.value}, "ended notices were marked"
