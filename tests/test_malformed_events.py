"""An event whose payload breaks its contract is dead-lettered at once by every service's consumer,
with a log line naming the event and a metric, on real RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
import httpx
import pytest

from shared.bus import RabbitMQBus
from shared.events import EventEnvelope
from tests.conftest import auth, running, test_settings
from tests.events import case_event, organization_event
from tests.infra import RabbitMQ, unique_name

# Each service, an event type it handles, and that event with a required field taken out.
CASES = {
    "case-api": ("case_api", lambda: organization_event(uuid.uuid4(), "municipality", "Oslo"), "name"),
    "agreement-api": ("agreement_api", lambda: case_event(uuid.uuid4()), "status"),
    "notify-worker": ("notify_worker", lambda: case_event(uuid.uuid4()), "current_unit_id"),
}


async def _dead_letters(rabbitmq: RabbitMQ, queue: str) -> list[bytes]:
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(f"{queue}.dead", passive=True)
        bodies = []
        while (message := await dead.get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies
    finally:
        await connection.close()


@pytest.mark.parametrize("service", list(CASES))
async def test_a_payload_that_breaks_its_contract_goes_to_the_dead_letter_queue_at_once(
    service: str,
    database_url: str,
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    package, make_event, missing = CASES[service]
    queue = unique_name(f"test.{service}")
    amqp_queues.append(queue)
    settings = test_settings(
        f"{package}.config", database_url, amqp_url=rabbitmq.url, event_exchange=exchange_name, queue=queue
    )
    main: Any = __import__(f"{package}.main", fromlist=["create_app"])
    good: EventEnvelope = make_event()
    broken = good.model_copy(update={"data": {k: v for k, v in good.data.items() if k != missing}})
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    try:
        async with running(main.create_app(settings)) as client:
            await _until_ready(client)
            started = time.monotonic()
            await publisher.publish(broken)
            bodies: list[bytes] = []
            while not bodies and time.monotonic() - started < 15:
                await asyncio.sleep(0.1)
                bodies = await _dead_letters(rabbitmq, queue)
            elapsed = time.monotonic() - started
            metrics = (await client.get("/metrics")).text
            # Put back so the operator's view below sees it.
            await _redrive_and_wait(rabbitmq, queue, broken)
            listed = await client.get("/api/v1/ops/dead-letters", headers=auth("admin"))
            refused = await client.post("/api/v1/ops/dead-letters/redrive", headers=auth("auditor"))
    finally:
        await publisher.close()

    assert [EventEnvelope.model_validate_json(body).id for body in bodies] == [broken.id]
    assert listed.status_code == 200, listed.text
    assert listed.json()["count"] == 1
    [item] = listed.json()["items"]
    assert (item["event_id"], item["type"], item["subject"]) == (str(broken.id), broken.type, broken.subject)
    assert refused.status_code == 403
    assert elapsed < 5, "dead-lettered at once, not after the broker's redeliveries"
    sample = f'tilbake_events_dead_lettered_total{{queue="{queue}",reason="invalid_payload",type="{good.type}"}} 1.0'
    assert sample in metrics
    logged = [line for line in capfd.readouterr().err.splitlines() if "bus.malformed_event" in line]
    assert len(logged) == 1
    assert str(broken.id) in logged[0]
    assert missing in logged[0]


async def _redrive_and_wait(rabbitmq: RabbitMQ, queue: str, event: EventEnvelope) -> None:
    """Publish the taken dead letter back to the dead-letter queue as it was."""
    connection = await aio_pika.connect(rabbitmq.url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body=event.model_dump_json().encode(), type=event.type),
            routing_key=f"{queue}.dead",
        )
    finally:
        await connection.close()


async def _until_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 15
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        await asyncio.sleep(0.1)
