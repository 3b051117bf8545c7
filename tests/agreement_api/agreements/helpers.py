"""Directory and agreement set-up through the API, shared by the agreement and resolution tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import auth


async def organization(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/v1/organizations", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass
class Directory:
    region: str
    prison: str  # in the region
    municipality: str
    nav_office: str

    @property
    def coordinator(self) -> dict[str, str]:
        """A coordinator for the region: in scope of the agreements these tests make."""
        return auth("coordinator", org=self.region)


async def directory(client: httpx.AsyncClient, *, kommunenummer: str = "3101") -> Directory:
    region = await organization(client, type="region", name="Region øst")
    prison = await organization(client, type="prison", name="Halden fengsel", parent_id=region)
    municipality = await organization(
        client, type="municipality", name="Halden kommune", kommunenummer=kommunenummer
    )
    nav_office = await organization(client, type="nav_office", name="NAV Halden", enhetsnummer="0101")
    return Directory(region=region, prison=prison, municipality=municipality, nav_office=nav_office)


def agreement_body(*party_ids: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Samarbeidsavtale Halden",
        "level": "local",
        "valid_from": "2020-01-01",
        "valid_to": None,
        "meeting_cadence": "quarterly",
        "domains": ["housing", "work"],
        "parties": [{"organization_id": party} for party in party_ids],
    }
    body.update(overrides)
    return body


RULE = {
    "recipient_organization_type": "municipality",
    "milestones": [{"days_before_release": 60, "business_days": True}],
    "event_types": ["case.release_date_changed.v1"],
    "receipt_deadline_days": 3,
    "escalation": {"name": "Kari Nordmann", "email": "kari@halden.kommune.no"},
    "data_sharing_profile": {"domains": ["housing", "mental_health"], "fields": ["release_date", "unit"]},
}


async def create_agreement(client: httpx.AsyncClient, *party_ids: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/agreements", json=agreement_body(*party_ids, **overrides), headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def move(client: httpx.AsyncClient, agreement_id: str, status: str, **extra: Any) -> httpx.Response:
    current = await client.get(f"/api/v1/agreements/{agreement_id}", headers=auth("coordinator"))
    return await client.post(
        f"/api/v1/agreements/{agreement_id}/status",
        json={"status": status, **extra},
        headers={**auth("admin"), "If-Match": current.headers["etag"]},
    )


async def activate(client: httpx.AsyncClient, agreement_id: str) -> dict[str, Any]:
    for status in ("negotiating", "signed", "active"):
        response = await move(client, agreement_id, status)
        assert response.status_code == 200, response.text
    return dict(response.json())
