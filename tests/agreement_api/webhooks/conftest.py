"""Fixtures for webhook tests: an organization, a client that allows local http receivers, and a
real HTTP receiver (uvicorn on 127.0.0.1, a free port) that records what it was sent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import auth, running, test_settings

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


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    url: str
    status_code: int = 204
    received: list[Received] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state = Receiver(url=f"http://127.0.0.1:{port}/hook")

    async def hook(request: Request) -> Response:
        state.received.append(Received(body=await request.body(), headers=dict(request.headers)))
        return Response(status_code=state.status_code)

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
