"""Every event case-api stages matches its AsyncAPI message: no undocumented field, none missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseOutbox
from shared.settings import REPO_ROOT
from tests.case_api.conftest import Directory, open_case


def _documented() -> dict[str, tuple[set[str], set[str]]]:
    spec = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
    schemas = spec["components"]["schemas"]
    out: dict[str, tuple[set[str], set[str]]] = {}
    for message in spec["components"]["messages"].values():
        if not message["name"].startswith("case."):
            continue
        data = message["payload"]["allOf"][1]["properties"]["data"]
        properties: set[str] = set()
        required: set[str] = set()
        for part in data.get("allOf", [data]):
            if "$ref" in part:
                part = schemas[part["$ref"].rsplit("/", 1)[1]]
            properties |= set(part.get("properties", {}))
            required |= set(part.get("required", []))
        out[message["name"]] = (properties, required)
    return out


async def _etag(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    return str((await client.get(url, headers=headers)).headers["etag"])


async def test_case_events_match_the_asyncapi_document(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    h = directory.coordinator_east
    case = await open_case(case_client, h, unit=directory.unit_oslo)
    url = f"/api/v1/cases/{case['id']}"

    async def send(method: str, path: str, body: dict[str, Any], etag_url: str | None = url) -> None:
        extra = {"If-Match": await _etag(case_client, etag_url, h)} if etag_url else {}
        response = await case_client.request(method, path, json=body, headers={**h, **extra})
        assert response.status_code < 300, response.text

    await send("PATCH", url, {"priority_groups": ["young_person"]})
    expected = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    await send(
        "POST",
        f"{url}/release-dates",
        {"kind": "expected", "date": expected, "certainty": "probable", "source": "judgment"},
    )
    await send("PUT", f"{url}/municipality", {"responsible_kommunenummer": "0301", "status": "confirmed"})
    consent = await case_client.post(
        f"{url}/consents",
        json={"basis": "consent", "organization_ids": [str(directory.oslo)], "domains": ["housing"]},
        headers=h,
    )
    assert consent.status_code == 201, consent.text
    await send("POST", f"{url}/consents/{consent.json()['id']}/withdraw", {}, etag_url=None)
    await send(
        "POST",
        f"{url}/group/members",
        {
            "person_name": "Ola Hansen",
            "role": "municipality_social_services",
            "organization_id": str(directory.oslo),
            "post_release_contact": True,
        },
        etag_url=None,
    )
    await send("POST", f"{url}/transfer", {"to_unit_id": str(directory.unit_halden)})
    await send("POST", f"{url}/status", {"status": "planning"})
    await send("POST", f"{url}/status", {"status": "closed", "reason": "released abroad"})

    async with sessionmaker() as session:
        events = (
            (await session.execute(select(CaseOutbox).where(CaseOutbox.subject == f"case/{case['id']}")))
            .scalars()
            .all()
        )
    documented = _documented()
    seen = set()
    for event in events:
        assert event.type in documented, f"{event.type} is not in docs/asyncapi.yaml"
        properties, required = documented[event.type]
        fields = set(event.data)
        assert fields <= properties, f"{event.type} carries undocumented {sorted(fields - properties)}"
        assert required <= fields, f"{event.type} lacks documented {sorted(required - fields)}"
        assert "Nordmann" not in str(event.data)
        seen.add(event.type)
    # The service-market referral event needs a booked and checked-in appointment; its own
    # test (tests/case_api/market) checks it against this document.
    case_events = {name for name in documented if not name.startswith("case.market_")}
    assert seen == case_events, f"not produced here: {sorted(case_events - seen)}"
