from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from tests.agreement_api.agreements.helpers import (
    activate,
    agreement_body,
    create_agreement,
    directory,
    move,
    organization,
)
from tests.conftest import auth


async def test_coordinator_creates_a_draft_and_reads_it_with_an_etag(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    created = await agreement_client.post(
        "/api/v1/agreements",
        json=agreement_body(orgs.prison, orgs.municipality, routines="Varsle 90 dager før."),
        headers=orgs.coordinator,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft"
    assert body["allowed_next"] == ["negotiating", "terminated"]
    assert {p["organization_id"] for p in body["parties"]} == {orgs.prison, orgs.municipality}
    assert created.headers["location"] == f"/api/v1/agreements/{body['id']}"
    read = await agreement_client.get(f"/api/v1/agreements/{body['id']}", headers=auth("nav"))
    assert read.status_code == 200
    assert read.headers["etag"] == created.headers["etag"]
    assert read.json()["routines"] == "Varsle 90 dager før."


async def test_the_same_idempotency_key_replays_the_first_answer(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    body = agreement_body(orgs.prison, orgs.municipality)
    headers = {**auth("admin", subject="ola"), "Idempotency-Key": "agreement-1"}
    first = await agreement_client.post("/api/v1/agreements", json=body, headers=headers)
    again = await agreement_client.post("/api/v1/agreements", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = await agreement_client.get("/api/v1/agreements", headers=auth("admin"))
    assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize("role", ["nav", "municipality", "integration_admin", "prison_staff", "service"])
async def test_roles_other_than_admin_and_coordinator_may_not_create(
    agreement_client: httpx.AsyncClient, role: str
) -> None:
    orgs = await directory(agreement_client)
    response = await agreement_client.post(
        "/api/v1/agreements", json=agreement_body(orgs.prison, orgs.municipality), headers=auth(role)
    )
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["nav", "municipality", "integration_admin"])
async def test_roles_other_than_admin_and_coordinator_may_not_change_status_or_rules(
    agreement_client: httpx.AsyncClient, role: str
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    status = await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/status",
        json={"status": "negotiating"},
        headers={**auth(role), "If-Match": "*"},
    )
    rule = await agreement_client.post(
        f"/api/v1/agreements/{agreement['id']}/rules",
        json={
            "recipient_organization_id": orgs.municipality,
            "milestones": [{"days_before_release": 30}],
            "receipt_deadline_days": 5,
            "data_sharing_profile": {"domains": ["housing"], "fields": ["release_date"]},
        },
        headers=auth(role),
    )
    assert status.status_code == 403
    assert rule.status_code == 403


async def test_unauthenticated_requests_get_401(agreement_client: httpx.AsyncClient) -> None:
    assert (await agreement_client.get("/api/v1/agreements")).status_code == 401


async def test_an_unknown_party_is_a_422_naming_the_field(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    response = await agreement_client.post(
        "/api/v1/agreements",
        json=agreement_body(orgs.prison, "00000000-0000-4000-8000-000000000000"),
        headers=orgs.coordinator,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "parties[1].organization_id"


@pytest.mark.parametrize("count", [0, 1])
async def test_fewer_than_two_parties_is_a_422(agreement_client: httpx.AsyncClient, count: int) -> None:
    orgs = await directory(agreement_client)
    response = await agreement_client.post(
        "/api/v1/agreements",
        json=agreement_body(*[orgs.prison][:count]),
        headers=auth("admin"),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "parties"


async def test_the_same_party_twice_does_not_count_as_two(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    response = await agreement_client.post(
        "/api/v1/agreements", json=agreement_body(orgs.prison, orgs.prison), headers=orgs.coordinator
    )
    assert response.status_code == 422
    assert response.json()["field"] == "parties[1].organization_id"


async def test_valid_to_before_valid_from_is_a_422(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    response = await agreement_client.post(
        "/api/v1/agreements",
        json=agreement_body(orgs.prison, orgs.municipality, valid_from="2027-01-01", valid_to="2026-12-31"),
        headers=orgs.coordinator,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "valid_to"
    agreement = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, valid_from="2027-01-01"
    )
    read = await agreement_client.get(f"/api/v1/agreements/{agreement['id']}", headers=auth("coordinator"))
    patched = await agreement_client.patch(
        f"/api/v1/agreements/{agreement['id']}",
        json={"valid_to": "2026-01-01"},
        headers={**orgs.coordinator, "If-Match": read.headers["etag"]},
    )
    assert patched.status_code == 422
    assert patched.json()["field"] == "valid_to"


async def test_the_full_lifecycle_emits_activated_and_expired(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    active = await activate(agreement_client, agreement["id"])
    assert active["status"] == "active"
    assert active["allowed_next"] == ["under_review", "expired", "terminated"]
    assert (await move(agreement_client, agreement["id"], "under_review")).json()["status"] == "under_review"
    assert (await move(agreement_client, agreement["id"], "active")).status_code == 200
    expired = await move(agreement_client, agreement["id"], "expired", reason="Utløpt")
    assert expired.json()["status"] == "expired"
    assert expired.json()["status_reason"] == "Utløpt"
    async with sessionmaker() as session:
        events = (
            (await session.execute(select(AgreementOutbox).order_by(col(AgreementOutbox.occurred_at))))
            .scalars()
            .all()
        )
    mine = [event for event in events if event.type.startswith("agreement.")]
    assert [event.type for event in mine] == [
        "agreement.activated.v1",
        "agreement.activated.v1",
        "agreement.expired.v1",
    ]
    data = mine[-1].data
    assert data["agreement_id"] == agreement["id"]
    assert data["status"] == "expired"
    assert sorted(data["party_organization_ids"]) == sorted([orgs.prison, orgs.municipality])
    assert data["domains"] == ["housing", "work"]
    assert data["valid_from"] == "2020-01-01"
    assert data["valid_to"] is None
    assert data["version"] == 1


@pytest.mark.parametrize(
    ("path", "target", "allowed"),
    [
        ([], "active", ["negotiating", "terminated"]),
        ([], "signed", ["negotiating", "terminated"]),
        (["negotiating"], "active", ["signed", "terminated"]),
        (["negotiating", "signed"], "expired", ["active", "terminated"]),
        (["terminated"], "negotiating", []),
        (["negotiating", "signed", "active", "expired"], "active", []),
    ],
)
async def test_illegal_transitions_are_409_listing_allowed_next(
    agreement_client: httpx.AsyncClient, path: list[str], target: str, allowed: list[str]
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    for status in path:
        assert (await move(agreement_client, agreement["id"], status)).status_code == 200
    response = await move(agreement_client, agreement["id"], target)
    assert response.status_code == 409
    assert response.json()["allowed_next"] == allowed


@pytest.mark.parametrize("path", [[], ["negotiating"], ["negotiating", "signed"]])
async def test_draft_negotiating_and_signed_agreements_can_be_terminated(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], path: list[str]
) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    for status in path:
        assert (await move(agreement_client, agreement["id"], status)).status_code == 200
    response = await move(agreement_client, agreement["id"], "terminated", reason="Ikke aktuell")
    assert response.status_code == 200
    assert response.json()["allowed_next"] == []
    async with sessionmaker() as session:
        types = (
            (
                await session.execute(
                    select(col(AgreementOutbox.type)).where(
                        col(AgreementOutbox.subject) == f"agreement/{agreement['id']}"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert list(types) == ["agreement.terminated.v1"]


async def test_a_status_change_needs_a_current_if_match(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    url = f"/api/v1/agreements/{agreement['id']}/status"
    missing = await agreement_client.post(url, json={"status": "negotiating"}, headers=orgs.coordinator)
    stale = await agreement_client.post(
        url, json={"status": "negotiating"}, headers={**orgs.coordinator, "If-Match": '"agreement-x-0"'}
    )
    assert missing.status_code == 428
    assert stale.status_code == 412


async def test_overlapping_validity_for_the_same_parties_is_a_409_naming_the_other(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    first = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, valid_from="2026-01-01", valid_to="2026-12-31"
    )
    await activate(agreement_client, first["id"])
    second = await create_agreement(
        agreement_client, orgs.municipality, orgs.prison, valid_from="2026-06-01", valid_to="2027-06-30"
    )
    assert (await move(agreement_client, second["id"], "negotiating")).status_code == 200
    clash = await move(agreement_client, second["id"], "signed")
    assert clash.status_code == 409
    assert clash.json()["other_agreement_id"] == first["id"]


async def test_adjacent_periods_or_other_parties_do_not_overlap(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    first = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, valid_from="2026-01-01", valid_to="2026-12-31"
    )
    await activate(agreement_client, first["id"])
    later = await create_agreement(agreement_client, orgs.prison, orgs.municipality, valid_from="2027-01-01")
    wider = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, orgs.nav_office, valid_from="2026-01-01"
    )
    assert (await activate(agreement_client, later["id"]))["status"] == "active"
    assert (await activate(agreement_client, wider["id"]))["status"] == "active"


async def test_moving_validity_into_another_agreements_period_is_a_409(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await directory(agreement_client)
    first = await create_agreement(
        agreement_client, orgs.prison, orgs.municipality, valid_from="2026-01-01", valid_to="2026-12-31"
    )
    await activate(agreement_client, first["id"])
    second = await create_agreement(agreement_client, orgs.prison, orgs.municipality, valid_from="2027-01-01")
    active = await activate(agreement_client, second["id"])
    read = await agreement_client.get(f"/api/v1/agreements/{active['id']}", headers=auth("coordinator"))
    response = await agreement_client.patch(
        f"/api/v1/agreements/{second['id']}",
        json={"valid_from": "2026-10-01"},
        headers={**orgs.coordinator, "If-Match": read.headers["etag"]},
    )
    assert response.status_code == 409
    assert response.json()["other_agreement_id"] == first["id"]


async def test_list_filters_by_status_level_party_and_domain(agreement_client: httpx.AsyncClient) -> None:
    orgs = await directory(agreement_client)
    other = await organization(agreement_client, type="ngo", name="Kirkens Bymisjon")
    housing = await create_agreement(agreement_client, orgs.prison, orgs.municipality, domains=["housing"])
    health = await create_agreement(
        agreement_client, orgs.prison, other, domains=["mental_health"], level="regional"
    )
    await move(agreement_client, health["id"], "negotiating")

    async def ids(query: str) -> list[str]:
        response = await agreement_client.get(f"/api/v1/agreements?{query}", headers=auth("nav"))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids("domain=housing") == [housing["id"]]
    assert await ids("domain=mental_health") == [health["id"]]
    assert await ids("status=negotiating") == [health["id"]]
    assert await ids("level=regional") == [health["id"]]
    assert await ids(f"organization_id={orgs.municipality}") == [housing["id"]]
    assert await ids(f"organization_id={orgs.prison}") == [housing["id"], health["id"]]
    first = await agreement_client.get("/api/v1/agreements?limit=1", headers=auth("nav"))
    assert [item["id"] for item in first.json()["items"]] == [housing["id"]]
    second = await agreement_client.get(
        f"/api/v1/agreements?limit=1&cursor={first.json()['next_cursor']}", headers=auth("nav")
    )
    assert [item["id"] for item in second.json()["items"]] == [health["id"]]
    assert second.json()["next_cursor"] is None
