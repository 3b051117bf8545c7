from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementIdempotency, AgreementOutbox
from tests.agreement_api.webhooks.conftest import PUBLIC_URL, new_endpoint, new_organization
from tests.conftest import auth


async def test_admin_registers_an_endpoint_and_gets_the_secret_once(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    created = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks",
        json={"url": PUBLIC_URL, "description": "Bymisjonen", "event_types": ["case.opened.v1"]},
        headers=auth("admin"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "active"
    assert body["rate_limit_per_minute"] == 60
    assert body["event_types"] == ["case.opened.v1"]
    assert body["key"]["kind"] == "hmac"
    assert body["key"]["secret"].startswith("whsec_")
    assert created.headers["location"] == f"/api/v1/webhooks/{body['id']}"
    assert created.headers["cache-control"] == "no-store"

    read = await agreement_client.get(f"/api/v1/webhooks/{body['id']}", headers=auth("admin"))
    assert read.status_code == 200
    assert read.headers["etag"] == created.headers["etag"]
    keys = await agreement_client.get(f"/api/v1/webhooks/{body['id']}/keys", headers=auth("admin"))
    listed = await agreement_client.get(
        f"/api/v1/organizations/{organization_id}/webhooks", headers=auth("admin")
    )
    for response in (read, keys, listed):
        assert "whsec_" not in response.text
        assert body["key"]["secret"].removeprefix("whsec_") not in response.text
    assert [key["id"] for key in keys.json()] == [body["key"]["id"]]
    assert "secret" not in keys.json()[0]
    assert keys.json()[0]["fingerprint"].startswith("sha256:")


async def test_an_ed25519_endpoint_shows_its_public_key(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    body = await new_endpoint(agreement_client, organization_id, key_kind="ed25519")
    key = body["key"]
    assert isinstance(key, dict)
    assert key["secret"].startswith("whsk_")
    assert key["public_key"].startswith("whpk_")
    keys = await agreement_client.get(
        f"/api/v1/webhooks/{body['id']}/keys", headers=auth("integration_admin", org=organization_id)
    )
    assert keys.json()[0]["public_key"] == key["public_key"]
    assert key["secret"].removeprefix("whsk_") not in keys.text


async def test_the_own_integration_admin_manages_its_endpoints(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    own = auth("integration_admin", org=organization_id)
    created = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=own
    )
    assert created.status_code == 201
    listed = await agreement_client.get(f"/api/v1/organizations/{organization_id}/webhooks", headers=own)
    assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]


@pytest.mark.parametrize("role", ["nav", "coordinator", "service", "municipality", "auditor"])
async def test_roles_other_than_admin_and_integration_admin_may_not_create(
    agreement_client: httpx.AsyncClient, organization_id: str, role: str
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks",
        json={"url": PUBLIC_URL},
        headers=auth(role, org=organization_id),
    )
    assert response.status_code == 403


async def test_another_organizations_integration_admin_may_neither_manage_nor_read(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    other = await new_organization(agreement_client, "Wayback")
    endpoint = await new_endpoint(agreement_client, organization_id)
    stranger = auth("integration_admin", org=other)
    create = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=stranger
    )
    read = await agreement_client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=stranger)
    listed = await agreement_client.get(f"/api/v1/organizations/{organization_id}/webhooks", headers=stranger)
    keys = await agreement_client.get(f"/api/v1/webhooks/{endpoint['id']}/keys", headers=stranger)
    disable = await agreement_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/disable", json={"reason": "not mine"}, headers=stranger
    )
    rotate = await agreement_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/keys/rotate", json={}, headers=stranger
    )
    test = await agreement_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=stranger)
    assert [r.status_code for r in (create, read, listed, keys, disable, rotate, test)] == [403] * 7


@pytest.mark.parametrize("role", ["nav", "municipality", "prison_staff"])
async def test_roles_without_endpoint_access_may_not_read(
    agreement_client: httpx.AsyncClient, organization_id: str, role: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    read = await agreement_client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth(role))
    assert read.status_code == 403


async def test_coordinator_reads_but_may_not_change(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    read = await agreement_client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth("coordinator"))
    assert read.status_code == 200
    patch = await agreement_client.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        json={"description": "x"},
        headers={**auth("coordinator"), "If-Match": read.headers["etag"]},
    )
    assert patch.status_code == 403


async def test_an_unknown_organization_is_404(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{uuid.uuid4()}/webhooks", json={"url": PUBLIC_URL}, headers=auth("admin")
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "rate_limit_per_minute": 0},
        {"url": PUBLIC_URL, "rate_limit_per_minute": 6001},
        {"url": PUBLIC_URL, "event_types": ["Not An Event"]},
        {"url": PUBLIC_URL, "key_kind": "rsa"},
        {"url": PUBLIC_URL, "unknown": 1},
    ],
)
async def test_invalid_bodies_are_422(
    agreement_client: httpx.AsyncClient, organization_id: str, body: dict[str, object]
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json=body, headers=auth("admin")
    )
    assert response.status_code == 422


async def test_patch_needs_if_match_and_changes_the_etag(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    url = f"/api/v1/webhooks/{endpoint['id']}"
    missing = await agreement_client.patch(url, json={"rate_limit_per_minute": 120}, headers=auth("admin"))
    assert missing.status_code == 428
    etag = (await agreement_client.get(url, headers=auth("admin"))).headers["etag"]
    changed = await agreement_client.patch(
        url,
        json={"rate_limit_per_minute": 120, "event_types": ["case.opened.v1", "case.opened.v1"]},
        headers={**auth("admin"), "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["rate_limit_per_minute"] == 120
    assert changed.json()["event_types"] == ["case.opened.v1"]
    assert changed.headers["etag"] != etag
    stale = await agreement_client.patch(
        url, json={"description": "again"}, headers={**auth("admin"), "If-Match": etag}
    )
    assert stale.status_code == 412


async def test_disable_and_enable(agreement_client: httpx.AsyncClient, organization_id: str) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    disabled = await agreement_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/disable",
        json={"reason": "Receiver replaced"},
        headers=auth("admin"),
    )
    assert disabled.status_code == 200
    assert (disabled.json()["state"], disabled.json()["disabled_reason"]) == ("disabled", "Receiver replaced")
    enabled = await agreement_client.post(f"/api/v1/webhooks/{endpoint['id']}/enable", headers=auth("admin"))
    assert (enabled.json()["state"], enabled.json()["disabled_reason"]) == ("active", None)


async def test_events_describe_the_endpoint_and_never_carry_a_secret(
    agreement_client: httpx.AsyncClient, organization_id: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    url = f"/api/v1/webhooks/{endpoint['id']}"
    etag = (await agreement_client.get(url, headers=auth("admin"))).headers["etag"]
    await agreement_client.patch(
        url, json={"description": "new"}, headers={**auth("admin"), "If-Match": etag}
    )
    await agreement_client.post(f"{url}/disable", json={"reason": "pause"}, headers=auth("admin"))
    rotated = await agreement_client.post(
        f"{url}/keys/rotate", json={"kind": "ed25519"}, headers=auth("admin")
    )
    assert rotated.status_code == 201
    async with sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    select(AgreementOutbox)
                    .where(col(AgreementOutbox.subject) == f"webhook/{endpoint['id']}")
                    .order_by(col(AgreementOutbox.occurred_at))
                )
            )
            .scalars()
            .all()
        )
    assert [row.type for row in rows] == [
        "endpoint.created.v1",
        "endpoint.changed.v1",
        "endpoint.disabled.v1",
        "endpoint.key_rotated.v1",
    ]
    assert rows[0].data["organization_id"] == organization_id
    assert rows[0].data["state"] == "active"
    assert rows[1].data["changed"] == ["description"]
    assert rows[2].data["state"] == "disabled"
    everything = json.dumps([row.data for row in rows])
    assert "whsec_" not in everything
    assert "whsk_" not in everything
    assert rotated.json()["key"]["secret"].removeprefix("whsk_") not in everything


async def test_an_idempotent_retry_replays_the_answer_without_the_secret(
    agreement_client: httpx.AsyncClient, organization_id: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = {**auth("admin", subject="admin-1"), "Idempotency-Key": "create-hook-1"}
    first = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=headers
    )
    again = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["key"]["secret"].startswith("whsec_")
    assert again.json()["key"]["secret"] is None
    async with sessionmaker() as session:
        stored = (await session.execute(select(AgreementIdempotency))).scalars().all()
    assert "whsec_" not in json.dumps([record.body for record in stored])
    listed = await agreement_client.get(
        f"/api/v1/organizations/{organization_id}/webhooks", headers=auth("admin")
    )
    assert len(listed.json()["items"]) == 1


async def test_the_list_pages_with_a_cursor(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    ids = [str((await new_endpoint(agreement_client, organization_id))["id"]) for _ in range(3)]
    first = await agreement_client.get(
        f"/api/v1/organizations/{organization_id}/webhooks?limit=2", headers=auth("service")
    )
    second = await agreement_client.get(
        f"/api/v1/organizations/{organization_id}/webhooks?limit=2&cursor={first.json()['next_cursor']}",
        headers=auth("service"),
    )
    assert [item["id"] for item in first.json()["items"] + second.json()["items"]] == ids
    assert second.json()["next_cursor"] is None
