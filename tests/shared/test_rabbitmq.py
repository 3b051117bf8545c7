"""The RabbitMQ adapter and the outbox relay against a real broker."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid

import aio_pika
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseOutbox
from shared.bus import RabbitMQBus
from shared.contracts.events import NotifyRecomputeRequested
from shared.db import unit_of_work
from shared.events import EventEnvelope
from shared.outbox import OutboxRelay, add_event
from shared.retry import POISON_ATTEMPTS
from tests.conftest import TEST_RETRY_DELAYS
from tests.events import placeholder
from tests.infra import RabbitMQ, unique_name


async def _stage(
    sessionmaker: async_sessionmaker[AsyncSession], count: int, *, start: int = 0
) -> list[uuid.UUID]:
    async with unit_of_work(sessionmaker) as session:
        return [
            add_event(
                session,
                CaseOutbox,
                placeholder(n),
                subject=f"case/{n}",
            ).id
            for n in range(start, start + count)
        ]


async def _eventually(predicate: object, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(message)


async def test_relay_publishes_to_rabbitmq_and_each_event_is_handled_once_per_ack(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    queue = unique_name("test.relay")
    amqp_queues.append(queue)
    deliveries: list[uuid.UUID] = []
    acked: list[uuid.UUID] = []
    failed_once: set[uuid.UUID] = set()

    async def handler(event: EventEnvelope) -> None:
        deliveries.append(event.id)
        if event.data["reason"] == "2" and event.id not in failed_once:
            failed_once.add(event.id)
            raise RuntimeError("transient failure: the message must come back")
        acked.append(event.id)

    try:
        await consumer.subscribe(queue, [NotifyRecomputeRequested.TYPE], handler)
        ids = await _stage(committed_sessionmaker, 10)
        relay = OutboxRelay(sessionmaker=committed_sessionmaker, model=CaseOutbox, bus=publisher)
        assert await relay.run_once() == 10
        assert await relay.pending() == 0
        await _eventually(lambda: len(acked) >= 10, 20, f"only {len(acked)} of 10 events acknowledged")
        await asyncio.sleep(1.0)  # room for any wrongful redelivery to show up
    finally:
        await consumer.close()
        await publisher.close()

    assert sorted(acked) == sorted(ids)
    assert collections.Counter(acked).most_common(1)[0][1] == 1
    # The failed delivery came back exactly once; every other event was delivered once.
    assert len(deliveries) == 11
    assert collections.Counter(deliveries)[next(iter(failed_once))] == 2


async def test_invalid_and_poison_messages_go_to_the_dead_letter_queue(
    rabbitmq: RabbitMQ, exchange_name: str, amqp_queues: list[str]
) -> None:
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name, retry_delays=TEST_RETRY_DELAYS)
    queue = unique_name("test.poison")
    amqp_queues.append(queue)
    attempts = collections.Counter[str]()

    async def always_fails(event: EventEnvelope) -> None:
        attempts[event.subject] += 1
        raise RuntimeError("permanent failure")

    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        await consumer.subscribe(queue, ["poison.#"], always_fails)
        await publisher.publish(EventEnvelope(type="poison.event.v1", source="test", subject="case/poison"))
        channel = await connection.channel()
        exchange = await channel.get_exchange(exchange_name)
        await exchange.publish(aio_pika.Message(body=b"not json"), routing_key="poison.garbage.v1")
        dead = await channel.declare_queue(f"{queue}.dead", passive=True)

        async def dead_count() -> int:
            declared = await channel.declare_queue(f"{queue}.dead", passive=True)
            return int(declared.declaration_result.message_count or 0)

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and await dead_count() < 2:  # noqa: ASYNC110 - polls the broker
            await asyncio.sleep(0.2)
        bodies = []
        while (message := await dead.get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
    finally:
        await consumer.close()
        await publisher.close()
        await connection.close()

    assert b"not json" in bodies
    assert any(b"case/poison" in body for body in bodies)
    assert len(bodies) == 2
    # Not a failure waiting can cure: three attempts in all, then dead-lettered.
    assert attempts["case/poison"] == POISON_ATTEMPTS


@pytest.mark.broker_restart
async def test_no_event_is_lost_when_the_broker_restarts_mid_run(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name, publish_timeout=3.0)
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    queue = unique_name("test.restart")
    amqp_queues.append(queue)
    received: collections.Counter[uuid.UUID] = collections.Counter()

    async def handler(event: EventEnvelope) -> None:
        received[event.id] += 1

    relay = OutboxRelay(
        sessionmaker=committed_sessionmaker,
        model=CaseOutbox,
        bus=publisher,
        poll_seconds=0.1,
        max_backoff_seconds=1.0,
    )
    await consumer.subscribe(queue, [NotifyRecomputeRequested.TYPE], handler)
    relay_task = asyncio.create_task(relay.run())
    staged: list[uuid.UUID] = []
    try:
        for batch in range(4):
            staged += await _stage(committed_sessionmaker, 10, start=batch * 10)
            await asyncio.sleep(0.3)
        restart = asyncio.create_task(asyncio.to_thread(rabbitmq.restart))
        # Business writes go on while the broker is away: they wait in the outbox.
        for batch in range(4, 8):
            staged += await _stage(committed_sessionmaker, 10, start=batch * 10)
            await asyncio.sleep(0.3)
        await restart
        for batch in range(8, 10):
            staged += await _stage(committed_sessionmaker, 10, start=batch * 10)
        await _eventually(
            lambda: set(received) == set(staged),
            90,
            f"{len(set(staged) - set(received))} of {len(staged)} events never arrived",
        )
        assert await relay.pending() == 0
    finally:
        relay.stop()
        await asyncio.wait_for(relay_task, 20)
        await consumer.close()
        await publisher.close()

    assert len(staged) == 100
    assert relay.publish_failures > 0, "the restart did not interrupt publishing: the test proved nothing"
    assert set(received) == set(staged)
    # At-least-once: a publish whose confirm was lost in the restart may arrive twice, never zero.
    assert min(received.values()) >= 1


async def _publish_one(rabbitmq: RabbitMQ, exchange_name: str, n: int) -> EventEnvelope:
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    event = EventEnvelope(
        type=NotifyRecomputeRequested.TYPE, source="test", subject=f"case/{n}", data=placeholder(n).data()
    )
    try:
        await publisher.publish(event)
    finally:
        await publisher.close()
    return event


async def test_a_transient_failure_is_retried_after_growing_waits_until_it_passes(
    rabbitmq: RabbitMQ, exchange_name: str, amqp_queues: list[str]
) -> None:
    """A peer that is down for a while: the handler fails with a connection error three times
    (more than the broker's delivery limit would allow), then succeeds on the schedule's last
    retry. Nothing is dead-lettered."""
    delays = (0.2, 0.4, 0.8)
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name, retry_delays=delays, delivery_limit=2)
    queue = unique_name("test.transient")
    amqp_queues.append(queue)
    tried: list[float] = []
    done = asyncio.Event()

    async def flaky(event: EventEnvelope) -> None:
        tried.append(time.monotonic())
        if len(tried) <= len(delays):
            raise httpx.ConnectError("agreement-api is down")
        done.set()

    try:
        await consumer.subscribe(queue, [NotifyRecomputeRequested.TYPE], flaky)
        await _publish_one(rabbitmq, exchange_name, 1)
        await asyncio.wait_for(done.wait(), 20)
        dead = await consumer.dead_letters(queue)
    finally:
        await consumer.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried)]
    assert len(tried) == len(delays) + 1
    assert all(gap >= wanted - 0.05 for gap, wanted in zip(gaps, delays, strict=True)), gaps
    assert dead.count == 0


async def test_a_poison_message_is_dead_lettered_listed_and_redriven(
    rabbitmq: RabbitMQ, exchange_name: str, amqp_queues: list[str]
) -> None:
    """A handler bug: three attempts, then the dead-letter queue, where an operator can read which
    event it is and, once the bug is fixed, send it back."""
    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name, retry_delays=TEST_RETRY_DELAYS)
    queue = unique_name("test.redrive")
    amqp_queues.append(queue)
    fixed = False
    attempts: collections.Counter[uuid.UUID] = collections.Counter()
    handled: list[uuid.UUID] = []

    async def handler(event: EventEnvelope) -> None:
        attempts[event.id] += 1
        if not fixed:
            raise KeyError("a bug")
        handled.append(event.id)

    try:
        await consumer.subscribe(queue, [NotifyRecomputeRequested.TYPE], handler)
        event = await _publish_one(rabbitmq, exchange_name, 2)
        deadline = time.monotonic() + 15
        while (dead := await consumer.dead_letters(queue)).count < 1:
            assert time.monotonic() < deadline, "never dead-lettered"
            await asyncio.sleep(0.1)
        assert attempts[event.id] == POISON_ATTEMPTS
        again = await consumer.dead_letters(queue)  # listing takes nothing away
        assert (again.count, [item.event_id for item in again.items]) == (1, [str(event.id)])
        assert (dead.items[0].type, dead.items[0].subject, dead.items[0].reason) == (
            event.type,
            event.subject,
            "KeyError",
        )

        fixed = True
        assert await consumer.redrive(queue) == 1
        deadline = time.monotonic() + 15
        while not handled:
            assert time.monotonic() < deadline, "the redriven message never came back"
            await asyncio.sleep(0.1)
        assert (await consumer.dead_letters(queue)).count == 0
    finally:
        await consumer.close()
    assert handled == [event.id]
