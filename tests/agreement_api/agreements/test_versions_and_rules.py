from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from tests.agreement_api.agreements.helpers import RULE, activate, create_agreement, directory, move
from tests.conftest import auth


async def _patch(client: httpx.AsyncClient, agreement_id: str, body: dict[str, Any]) -> httpx.Response:
    read = await client.get(f"/api/v1/agreements/{agreement_id}", headers=auth("coordinator"))
    return await client.patch(
        f"/api/v1/agreements/{agreement_id}",
        json=body,
        headers={**auth("admin"), "If-Match": read.headers["etag"]},
    )


async def _agreement_events(sessionmaker: async_sessionmaker[AsyncSession], agreement_id: str) -> list[Any]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AgreementOutbox)
            .where(col(AgreementOutbox.subject) == f"agreement/{agreement_id}")
            .order_by(col(AgreementOutbox.occurred_at))
        )
        return list(rows.scalars().all())


async def test_a_draft_changes_in_place_without_versions(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    response = await _patch(agreement_client, agreement["id"], {"title": "Ny tittel", "domains": ["debt"]})
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "Ny tittel"
    assert response.json()["current_version"] == 1
    versions = await agreement_client.get(
        f"/api/v1/agreements/{agreement['id']}/versions", headers=auth("nav")
    )
    assert versions.json() == []


async def test_changing_an_active_agreement_makes_version_2_and_keeps_version_1(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality, title="Avtale 2026")
    await activate(agreement_client, agreement["id"])
    response = await _patch(
        agreement_client, agreement["id"], {"title": "Avtale 2026, revidert", "routines": "Ny rutine"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["current_version"] == 2

    base = f"/api/v1/agreements/{agreement['id']}/versions"
    one = await agreement_client.get(f"{base}/1", headers=auth("municipality"))
    two = await agreement_client.get(f"{base}/2", headers=auth("municipality"))
    assert one.status_code == two.status_code == 200
    assert one.json()["snapshot"]["title"] == "Avtale 2026"
    assert one.json()["snapshot"]["routines"] == ""
    assert one.json()["snapshot"]["current_version"] == 1
    assert two.json()["snapshot"]["title"] == "Avtale 2026, revidert"
    assert {p["organization_id"] for p in one.json()["snapshot"]["parties"]} == {
        orgs.prison,
        orgs.municipality,
    }
    listed = await agreement_client.get(base, headers=auth("nav"))
    assert [v["version_number"] for v in listed.json()] == [1, 2]
    assert (await agreement_client.get(f"{base}/3", headers=auth("nav"))).status_code == 404

    events = await _agreement_events(sessionmaker, agreement["id"])
    assert [event.type for event in events] == ["agreement.activated.v1", "agreement.changed.v1"]
    assert events[-1].data["version"] == 2
    assert events[-1].data["changed"] == ["routines", "title"]


async def test_a_signed_agreement_does_not_change(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    await move(agreement_client, agreement["id"], "negotiating")
    await move(agreement_client, agreement["id"], "signed")
    response = await _patch(agreement_client, agreement["id"], {"title": "Endret etter signering"})
    assert response.status_code == 409
    rule = await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/rules", json=RULE, headers=orgs.coordinator
    )
    assert rule.status_code == 409


async def test_rules_are_added_changed_and_removed_on_a_draft(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    base = f"/api/v1/agreements/{agreement['id']}/rules"
    created = await agreement_client.post(base, json=RULE, headers=auth("admin"))
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["data_sharing_profile"]["fields"] == ["release_date", "unit"]
    changed = await agreement_client.patch(
        f"{base}/{rule['id']}",
        json={"recipient_organization_id": orgs.nav_office, "receipt_deadline_days": 10},
        headers={**orgs.coordinator, "If-Match": created.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["recipient_organization_id"] == orgs.nav_office
    assert changed.json()["recipient_organization_type"] is None
    stale = await agreement_client.patch(
        f"{base}/{rule['id']}",
        json={"receipt_deadline_days": 1},
        headers={**orgs.coordinator, "If-Match": created.headers["etag"]},
    )
    assert stale.status_code == 412
    listed = await agreement_client.get(base, headers=auth("service"))
    assert [r["receipt_deadline_days"] for r in listed.json()] == [10]
    deleted = await agreement_client.delete(f"{base}/{rule['id']}", headers=orgs.coordinator)
    assert deleted.status_code == 204
    assert (await agreement_client.get(base, headers=auth("service"))).json() == []


async def test_a_rule_needs_exactly_one_recipient_and_known_fields(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    base = f"/api/v1/agreements/{agreement['id']}/rules"
    both = {**RULE, "recipient_organization_id": orgs.municipality}
    neither = {key: value for key, value in RULE.items() if key != "recipient_organization_type"}
    bad_field = {**RULE, "data_sharing_profile": {"domains": ["housing"], "fields": ["national_id"]}}
    too_far = {**RULE, "milestones": [{"days_before_release": 400}]}
    unknown = {**neither, "recipient_organization_id": "00000000-0000-4000-8000-000000000000"}
    for body in (both, neither, bad_field, too_far):
        assert (await agreement_client.post(base, json=body, headers=auth("admin"))).status_code == 422
    response = await agreement_client.post(base, json=unknown, headers=auth("admin"))
    assert response.status_code == 422
    assert response.json()["field"] == "recipient_organization_id"


async def test_a_rule_change_on_an_active_agreement_is_a_new_version_and_an_event(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/rules", json=RULE, headers=auth("admin")
    )
    await activate(agreement_client, agreement["id"])
    added = await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/rules",
        json={**RULE, "recipient_organization_type": "nav_office"},
        headers=orgs.coordinator,
    )
    assert added.status_code == 201
    read = await agreement_client.get(f"/api/v1/agreements/{agreement['id']}", headers=auth("nav"))
    assert read.json()["current_version"] == 2
    assert len(read.json()["rules"]) == 2
    one = await agreement_client.get(f"/api/v1/agreements/{agreement['id']}/versions/1", headers=auth("nav"))
    assert len(one.json()["snapshot"]["rules"]) == 1
    events = await _agreement_events(sessionmaker, agreement["id"])
    assert [event.type for event in events] == ["agreement.activated.v1", "agreement.changed.v1"]
    assert events[-1].data["changed"] == ["rules"]


@pytest.mark.parametrize("number", ["0", "-1", "2147483648", "9223372036854775808"])
async def test_a_version_number_out_of_range_is_422_not_500(
    agreement_client: httpx.AsyncClient, number: str
) -> None:
    """PostgreSQL's integer ends at 2^31 - 1: a larger number was sent to the database (500)."""
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    response = await agreement_client.get(
        f"/api/v1/agreements/{agreement['id']}/versions/{number}", headers=auth("nav")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
