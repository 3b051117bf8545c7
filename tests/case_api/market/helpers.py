"""Helpers for service market tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

BASE = "/api/v1/market"


async def provider(
    client: httpx.AsyncClient, headers: dict[str, str], organization_id: uuid.UUID, **overrides: Any
) -> dict[str, Any]:
    body = {"organization_id": str(organization_id), "name": "NAV servicetorg", "kind": "nav", **overrides}
    response = await client.post(f"{BASE}/providers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def market_session(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    unit: uuid.UUID,
    provider_id: str,
    starts_at: datetime | None = None,
    hours: float = 2,
    **overrides: Any,
) -> dict[str, Any]:
    start = starts_at or (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    body = {
        "unit_id": str(unit),
        "provider_id": provider_id,
        "format": "one_to_one",
        "location_type": "service_market_room",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "capacity": 3,
        "domains": ["work"],
        **overrides,
    }
    response = await client.post(f"{BASE}/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json()["items"][0])


async def book(
    client: httpx.AsyncClient, headers: dict[str, str], session_id: str, case_id: str, **overrides: Any
) -> httpx.Response:
    body = {"session_id": session_id, "case_id": case_id, **overrides}
    return await client.post(f"{BASE}/appointments", json=body, headers=headers)


async def move(
    client: httpx.AsyncClient, headers: dict[str, str], appointment_id: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    url = f"{BASE}/appointments/{appointment_id}"
    etag = (await client.get(url, headers=headers)).headers["etag"]
    return await client.post(f"{url}/{path}", json=body, headers={**headers, "If-Match": etag})
