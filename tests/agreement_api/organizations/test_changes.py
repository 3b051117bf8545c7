from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.models import AgreementOutbox
from tests.conftest import auth


async def _create(client: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    response = await client.post("/api/v1/organizations", json=body, headers=auth("admin"))
    assert response.status_code == 201, response.text
    return response


async def test_an_unknown_kommunenummer_is_refused_naming_the_field(
    agreement_client: httpx.AsyncClient,
) -> None:
    for number in ("1507", "0000", "5401"):
        response = await agreement_client.post(
            "/api/v1/organizations",
            json={"type": "municipality", "name": "Gammel kommune", "kommunenummer": number},
            headers=auth("admin"),
        )
        assert response.status_code == 422, number
        assert response.json()["errors"][0]["field"] == "body.kommunenummer"


async def test_a_change_needs_if_match_emits_an_event_and_a_stale_etag_is_412(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await _create(
        agreement_client, {"type": "prison", "name": "Oslo fengsel", "security_level": "high"}
    )
    url = created.headers["location"]
    missing = await agreement_client.patch(url, json={"name": "Oslo fengsel avd. A"}, headers=auth("admin"))
    assert missing.status_code == 428
    changed = await agreement_client.patch(
        url,
        json={"name": "Oslo fengsel avd. A"},
        headers={**auth("admin"), "If-Match": created.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    stale = await agreement_client.patch(
        url, json={"name": "Something else"}, headers={**auth("admin"), "If-Match": created.headers["etag"]}
    )
    assert stale.status_code == 412
    coordinator = await agreement_client.patch(
        url, json={"name": "X"}, headers={**auth("coordinator"), "If-Match": changed.headers["etag"]}
    )
    assert coordinator.status_code == 403
    async with sessionmaker() as session:
        types = [
            row.type
            for row in (
                await session.execute(select(AgreementOutbox).order_by(AgreementOutbox.occurred_at))
            ).scalars()
        ]
    assert types == ["organization.created.v1", "organization.changed.v1"]


async def test_a_nav_office_serves_current_municipalities_only(agreement_client: httpx.AsyncClient) -> None:
    office = await _create(
        agreement_client, {"type": "nav_office", "name": "NAV Halden", "enhetsnummer": "0101"}
    )
    url = office.headers["location"] + "/service-area"
    bad = await agreement_client.put(
        url,
        json={"kommunenummer": ["3101", "0104"]},
        headers={**auth("admin"), "If-Match": office.headers["etag"]},
    )
    assert bad.status_code == 422
    good = await agreement_client.put(
        url,
        json={"kommunenummer": ["3122", "3101"]},
        headers={**auth("admin"), "If-Match": office.headers["etag"]},
    )
    assert good.status_code == 200, good.text
    assert good.json()["serves_kommunenummer"] == ["3101", "3122"]
    prison = await _create(agreement_client, {"type": "prison", "name": "Halden fengsel"})
    refused = await agreement_client.put(
        prison.headers["location"] + "/service-area",
        json={"kommunenummer": ["3101"]},
        headers={**auth("admin"), "If-Match": prison.headers["etag"]},
    )
    assert refused.status_code == 422
