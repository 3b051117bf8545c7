"""case-api keeps its copy of the organization directory from agreement-api's events (real RabbitMQ)."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.main import create_app
from case_api.organizations.models import OrganizationRef
from shared.bus import RabbitMQBus
from tests.conftest import running, test_settings
from tests.events import organization_event
from tests.infra import RabbitMQ, unique_name


async def test_organization_events_from_the_broker_fill_the_local_directory(
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    queue = unique_name("test.case-api")
    amqp_queues.append(queue)
    settings = test_settings(
        "case_api.config", database_url, amqp_url=rabbitmq.url, event_exchange=exchange_name, queue=queue
    )
    region, unit = uuid.uuid4(), uuid.uuid4()
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    try:
        async with running(create_app(settings)) as client:
            deadline = time.monotonic() + 15
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "case-api never became ready"
                await asyncio.sleep(0.1)
            for org_id, kind, name, parent in [
                (region, "region", "Region nord", None),
                (unit, "prison", "Tromsø fengsel", region),
            ]:
                await publisher.publish(organization_event(org_id, kind, name, parent_id=parent))
            deadline = time.monotonic() + 15
            stored = None
            while time.monotonic() < deadline:
                async with committed_sessionmaker() as session:
                    stored = await session.get(OrganizationRef, unit)
                if stored is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await publisher.close()
    assert stored is not None, "the unit never reached case-api's directory"
    assert (stored.type, stored.name, stored.parent_id) == ("prison", "Tromsø fengsel", region)
