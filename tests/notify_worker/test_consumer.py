"""notify-worker's consumer loop against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import notify_worker.main
from notify_worker.main import create_app
from notify_worker.models import NotifyInbox
from shared.bus import RabbitMQBus
from shared.consumer import InboxConsumer, Route, routes
from shared.contracts.events import CaseClosed
from shared.events import EventEnvelope
from tests.conftest import running, test_settings
from tests.events import case_event, organization_event
from tests.infra import RabbitMQ, unique_name


async def _inbox_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessionmaker() as session:
        return list((await session.execute(select(NotifyInbox.event_id))).scalars().all())


async def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def _worker(database_url: str, rabbitmq: RabbitMQ, exchange: str, queue: str, **overrides: object) -> object:
    settings = test_settings(
        "notify_worker.config",
        database_url,
        amqp_url=rabbitmq.url,
        event_exchange=exchange,
        queue=queue,
        binding_keys=["case.#", "organization.#"],
        **overrides,
    )
    return create_app(settings)


async def test_worker_records_each_event_once_even_when_delivered_twice(
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    queue = unique_name("test.worker")
    amqp_queues.append(queue)
    app = _worker(database_url, rabbitmq, exchange_name, queue)
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    # Directory events are bound but have no route in the worker: recorded in the inbox, no more.
    event = organization_event(uuid.uuid4(), "municipality", "Oslo kommune", kommunenummer="0301")
    other = organization_event(uuid.uuid4(), "nav_office", "NAV Grünerløkka")
    try:
        async with running(app) as client:  # type: ignore[arg-type]
            assert await _wait_for(lambda: _ready(client), 15), "worker never became ready"
            await publisher.publish(event)
            await publisher.publish(event)  # the at-least-once redelivery a consumer must absorb
            await publisher.publish(other)
            assert await _wait_for(lambda: _has(committed_sessionmaker, 2), 15)
            await asyncio.sleep(0.5)
            metrics = (await client.get("/metrics")).text
    finally:
        await publisher.close()
    assert sorted(await _inbox_ids(committed_sessionmaker)) == sorted([event.id, other.id])
    assert (
        'tilbake_events_consumed_total{outcome="duplicate",service="notify-worker",type="organization.created.v1"}'
        in metrics
    )


async def _ready(client: object) -> bool:
    response = await client.get("/readyz")  # type: ignore[attr-defined]
    return bool(response.status_code == 200)


async def _has(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> bool:
    return len(await _inbox_ids(sessionmaker)) >= count


async def test_shutdown_lets_the_in_flight_message_commit_and_ack(
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = unique_name("test.shutdown")
    amqp_queues.append(queue)
    started = asyncio.Event()
    finished = asyncio.Event()

    async def slow(_session: AsyncSession, _event: EventEnvelope, _payload: CaseClosed) -> None:
        started.set()
        await asyncio.sleep(1.5)
        finished.set()

    def slow_consumer(sessionmaker: async_sessionmaker[AsyncSession], *_deps: object) -> InboxConsumer:
        return InboxConsumer(
            service="notify-worker",
            inbox=NotifyInbox,
            sessionmaker=sessionmaker,
            routes=routes(Route(CaseClosed, slow)),
        )

    monkeypatch.setattr(notify_worker.main, "make_handler", slow_consumer)
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    event = case_event(uuid.uuid4(), CaseClosed, status="closed", old_status="planning")
    try:
        app = _worker(database_url, rabbitmq, exchange_name, queue)
        async with running(app) as client:  # type: ignore[arg-type]
            assert await _wait_for(lambda: _ready(client), 15)
            await publisher.publish(event)
            await asyncio.wait_for(started.wait(), 10)
            # leaving the block runs the lifespan shutdown, as SIGTERM does under uvicorn
        assert finished.is_set(), "shutdown did not wait for the in-flight handler"
    finally:
        await publisher.close()

    assert await _inbox_ids(committed_sessionmaker) == [event.id]
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        assert declared.declaration_result.message_count == 0, "the message was not acknowledged"
    finally:
        await connection.close()


async def test_readiness_reports_an_unreachable_broker(database_url: str) -> None:
    settings = test_settings("notify_worker.config", database_url, amqp_url="amqp://guest:guest@127.0.0.1:1/")
    async with running(create_app(settings)) as client:
        live = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["broker"].startswith("unavailable")
