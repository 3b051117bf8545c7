"""Fixtures for webhook tests: an organization, a client that allows local http receivers, and a
real HTTP receiver (tests.webhook_receiver) that records what it was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import auth, running, test_settings
from tests.webhook_receiver import Answer, Receiver

PUBLIC_URL = "https://8.8.8.8/tilbake/webhooks"  # a literal public address: no DNS needed


async def new_organization(client: httpx.AsyncClient, name: str = "Kirkens Bymisjon") -> str:
    response = await client.post(
        "/api/v1/organizations", json={"type": "ngo", "name": name}, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def new_endpoint(
    client: httpx.AsyncClient, organization_id: str, *, url: str = PUBLIC_URL, **body: object
) -> dict[str, object]:
    response = await client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": url, **body}, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


@pytest.fixture
async def organization_id(agreement_client: httpx.AsyncClient) -> str:
    return await new_organization(agreement_client)


@pytest.fixture
async def local_client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """agreement-api that allows plain http and private addresses (dev/test receivers)."""
    from agreement_api.main import create_app

    settings = test_settings(
        "agreement_api.config", database_url, allow_private_webhook_urls=True, allow_http_webhooks=True
    )
    async with running(create_app(settings), sessionmaker=sessionmaker) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real local receiver (tests.webhook_receiver) answering 204."""
    async with Receiver(default=Answer(204)).serving() as started:
        yield started
