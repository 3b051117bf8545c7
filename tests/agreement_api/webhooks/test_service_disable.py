"""notify-worker (role `service`) may disable any organization's endpoint, and do nothing else to it."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from tests.agreement_api.webhooks.conftest import new_endpoint
from tests.conftest import auth

SERVICE = auth("service", subject="notify-worker")


async def test_the_service_role_disables_any_endpoint(
    agreement_client: httpx.AsyncClient, organization_id: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    disabled = await agreement_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/disable", json={"reason": "gone"}, headers=SERVICE
    )
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["state"], disabled.json()["disabled_reason"]) == ("disabled", "gone")
    read = await agreement_client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=auth("admin"))
    assert read.json()["state"] == "disabled"
    async with sessionmaker() as session:
        types = (
            await session.execute(
                select(AgreementOutbox.type).where(
                    col(AgreementOutbox.subject) == f"webhook/{endpoint['id']}"
                )
            )
        ).scalars()
        assert "endpoint.disabled.v1" in list(types)


async def test_the_service_role_may_not_enable_change_or_rotate(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    url = f"/api/v1/webhooks/{endpoint['id']}"
    await agreement_client.post(f"{url}/disable", json={"reason": "gone"}, headers=SERVICE)
    etag = (await agreement_client.get(url, headers=auth("admin"))).headers["etag"]
    enable = await agreement_client.post(f"{url}/enable", headers=SERVICE)
    patch = await agreement_client.patch(
        url, json={"description": "mine now"}, headers={**SERVICE, "If-Match": etag}
    )
    rotate = await agreement_client.post(f"{url}/keys/rotate", json={}, headers=SERVICE)
    assert [r.status_code for r in (enable, patch, rotate)] == [403, 403, 403]
    assert (await agreement_client.get(url, headers=auth("admin"))).json()["state"] == "disabled"


async def test_the_service_role_keeps_a_persons_reason(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    url = f"/api/v1/webhooks/{endpoint['id']}"
    await agreement_client.post(f"{url}/disable", json={"reason": "Receiver replaced"}, headers=auth("admin"))
    again = await agreement_client.post(
        f"{url}/disable", json={"reason": "sustained_failure"}, headers=SERVICE
    )
    assert again.status_code == 200
    assert (again.json()["state"], again.json()["disabled_reason"]) == ("disabled", "Receiver replaced")


async def test_other_roles_still_may_not_disable(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    answers = [
        await agreement_client.post(
            f"/api/v1/webhooks/{endpoint['id']}/disable",
            json={"reason": "not mine"},
            headers=auth(role, org=organization_id),
        )
        for role in ("coordinator", "nav", "municipality", "auditor")
    ]
    assert [answer.status_code for answer in answers] == [403] * 4
