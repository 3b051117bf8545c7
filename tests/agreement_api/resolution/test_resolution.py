from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.webhooks.models import EndpointState, WebhookEndpoint
from tests.agreement_api.agreements.helpers import RULE, activate, create_agreement, directory
from tests.conftest import auth


async def _resolve(client: httpx.AsyncClient, query: str, role: str = "service") -> httpx.Response:
    response = await client.get(f"/api/v1/resolution?{query}", headers=auth(role))
    assert response.status_code == 200, response.text
    return response


async def test_an_active_agreement_with_the_units_region_supplies_the_rules(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.region, orgs.municipality)
    await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/rules", json=RULE, headers=auth("admin")
    )
    await activate(agreement_client, agreement["id"])
    body = (
        await _resolve(
            agreement_client, f"unit_id={orgs.prison}&kommunenummer=3101&domains=housing&domains=work"
        )
    ).json()
    assert body["source"] == "agreement"
    assert [a["id"] for a in body["agreements"]] == [agreement["id"]]
    assert body["agreements"][0]["version"] == 1
    [rule] = body["rules"]
    assert rule["recipient_organization_id"] == orgs.municipality
    assert rule["recipient_organization_type"] == "municipality"
    # The profile shares housing and mental_health; only housing was asked for.
    assert rule["data_sharing_profile"]["domains"] == ["housing"]
    assert rule["milestones"] == [{"days_before_release": 60, "business_days": True}]


async def test_a_draft_or_an_uncovered_domain_falls_back_to_the_default_rules(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    active = await create_agreement(agreement_client, orgs.prison, orgs.municipality, domains=["housing"])
    await activate(agreement_client, active["id"])
    await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, orgs.nav_office, domains=["work"]
    )
    body = (
        await _resolve(
            agreement_client,
            f"unit_id={orgs.prison}&kommunenummer=3101&nav_office_id={orgs.nav_office}&domains=work",
        )
    ).json()
    assert body["source"] == "default"
    assert body["agreements"] == []
    recipients = {rule["recipient_organization_id"]: rule for rule in body["rules"]}
    assert set(recipients) == {orgs.municipality, orgs.nav_office}
    rule = recipients[orgs.municipality]
    assert [m["days_before_release"] for m in rule["milestones"]] == [90, 30, 7, 0]
    assert rule["receipt_deadline_days"] == 5
    assert rule["data_sharing_profile"] == {
        "domains": ["work"],
        "fields": ["release_date", "release_date_certainty", "unit", "coordinator_contact", "domain_status"],
    }


async def test_an_agreement_that_is_not_valid_today_does_not_apply(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    old = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, valid_from="2020-01-01", valid_to="2020-12-31"
    )
    await activate(agreement_client, old["id"])
    body = (await _resolve(agreement_client, f"unit_id={orgs.prison}&kommunenummer=3101")).json()
    assert body["source"] == "default"


async def test_no_municipality_organization_and_no_nav_office_resolves_to_none(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    body = (await _resolve(agreement_client, f"unit_id={orgs.prison}&kommunenummer=0301", role="nav")).json()
    assert body["source"] == "none"
    assert "0301" in body["explanation"]
    assert body["rules"] == body["endpoints"] == body["agreements"] == []


async def test_only_the_nav_office_is_resolved_when_the_municipality_is_missing(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    body = (
        await _resolve(
            agreement_client, f"unit_id={orgs.prison}&kommunenummer=0301&nav_office_id={orgs.nav_office}"
        )
    ).json()
    assert body["source"] == "default"
    assert [rule["recipient_organization_id"] for rule in body["rules"]] == [orgs.nav_office]


async def test_an_unknown_unit_or_a_nav_office_of_the_wrong_type_is_a_422(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    unknown = await agreement_client.get(
        f"/api/v1/resolution?unit_id={uuid.uuid4()}&kommunenummer=3101", headers=auth("service")
    )
    wrong = await agreement_client.get(
        f"/api/v1/resolution?unit_id={orgs.prison}&nav_office_id={orgs.municipality}", headers=auth("service")
    )
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "unit_id"
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "nav_office_id"
    assert (await agreement_client.get(f"/api/v1/resolution?unit_id={orgs.prison}")).status_code == 401


async def test_active_webhook_endpoints_of_the_recipients_are_listed(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    orgs = await directory(agreement_client)
    async with sessionmaker() as session:
        active = WebhookEndpoint(
            organization_id=uuid.UUID(orgs.municipality),
            url="https://halden.kommune.no/hooks",
            event_types=["case.release_date_changed.v1"],
        )
        disabled = WebhookEndpoint(
            organization_id=uuid.UUID(orgs.municipality),
            url="https://halden.kommune.no/old",
            state=EndpointState.DISABLED,
        )
        elsewhere = WebhookEndpoint(
            organization_id=uuid.UUID(orgs.prison), url="https://kriminalomsorgen.no/hooks"
        )
        session.add_all([active, disabled, elsewhere])
        await session.commit()
    body = (await _resolve(agreement_client, f"unit_id={orgs.prison}&kommunenummer=3101")).json()
    assert body["endpoints"] == [
        {
            "id": str(active.id),
            "organization_id": orgs.municipality,
            "url": "https://halden.kommune.no/hooks",
            "event_types": ["case.release_date_changed.v1"],
        }
    ]
