"""The journey of tests/journey.py through the three services as real HTTP servers in this process,
on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.organizations.models import OrganizationRef
from tests.infra import RabbitMQ, unique_name
from tests.journey import eventually, notice_journey
from tests.servers import serve
from tests.webhook_receiver import Answer, Receiver


def _settings(module: str, database_url: str, rabbitmq: RabbitMQ, exchange: str, **values: Any) -> Any:
    import importlib

    settings_class = importlib.import_module(module).Settings
    return settings_class(
        env="test",
        database_url=database_url,
        amqp_url=rabbitmq.url,
        event_exchange=exchange,
        outbox_poll_seconds=0.1,
        **values,
    )


@pytest.fixture
async def system(
    database_url: str,
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[dict[str, Any]]:
    from agreement_api.main import create_app as agreement_app
    from case_api.main import create_app as case_app
    from notify_worker.main import create_app as notify_app

    queues = {name: unique_name(f"e2e.{name}") for name in ("case-api", "agreement-api", "notify-worker")}
    amqp_queues.extend(queues.values())
    # The municipality's system: refuses (401) a webhook that does not verify, keeps the rest.
    receiver = Receiver(default=Answer(204), reject_unverified=True)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(receiver.serving())
        agreement_url = await stack.enter_async_context(
            serve(
                agreement_app(
                    _settings(
                        "agreement_api.config",
                        database_url,
                        rabbitmq,
                        exchange_name,
                        queue=queues["agreement-api"],
                        allow_private_webhook_urls=True,
                        allow_http_webhooks=True,
                    )
                )
            )
        )
        case_url = await stack.enter_async_context(
            serve(
                case_app(
                    _settings(
                        "case_api.config",
                        database_url,
                        rabbitmq,
                        exchange_name,
                        queue=queues["case-api"],
                        agreement_api_url=agreement_url,
                    )
                )
            )
        )
        notify_url = await stack.enter_async_context(
            serve(
                notify_app(
                    _settings(
                        "notify_worker.config",
                        database_url,
                        rabbitmq,
                        exchange_name,
                        queue=queues["notify-worker"],
                        case_api_url=case_url,
                        case_api_public_url=case_url,
                        agreement_api_url=agreement_url,
                        dispatch_interval_seconds=0.2,
                        allow_private_webhook_urls=True,
                        allow_http_webhooks=True,
                    )
                )
            )
        )
        async with httpx.AsyncClient(timeout=30) as http:
            # Ready = connected to RabbitMQ with the queue bound: events published from now on arrive.
            for url in (agreement_url, case_url, notify_url):

                async def ready(url: str = url) -> bool:
                    return (await http.get(f"{url}/readyz")).status_code == 200

                await eventually(ready, what=f"{url} to be ready")
            yield {
                "http": http,
                "case": case_url,
                "agreement": agreement_url,
                "notify": notify_url,
                "receiver": receiver,
                "sessionmaker": committed_sessionmaker,
            }


async def test_a_notice_travels_from_case_to_receipt_and_is_held_without_consent(
    system: dict[str, Any],
) -> None:
    sessionmaker: async_sessionmaker[AsyncSession] = system["sessionmaker"]

    async def known_organizations() -> int:
        async with sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(OrganizationRef)) or 0

    await notice_journey(
        system["http"],
        case_api=system["case"],
        agreement_api=system["agreement"],
        notify=system["notify"],
        receiver=system["receiver"],
        known_organizations=known_organizations,
    )
