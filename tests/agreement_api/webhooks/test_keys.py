from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from agreement_api.config import DEV_WEBHOOK_KEY_ENCRYPTION_KEY
from agreement_api.webhooks import service
from agreement_api.webhooks.models import WebhookKey
from agreement_api.webhooks.signing import KeyVault
from shared import webhooks
from tests.agreement_api.webhooks.conftest import new_endpoint
from tests.conftest import auth

VAULT = KeyVault([DEV_WEBHOOK_KEY_ENCRYPTION_KEY])


async def rotate(client: httpx.AsyncClient, endpoint_id: object, **body: object) -> dict[str, object]:
    response = await client.post(
        f"/api/v1/webhooks/{endpoint_id}/keys/rotate", json=body, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    rotated: dict[str, object] = response.json()
    return rotated


def verify_all(header: str, secrets: list[str], body: str, msg_id: str, timestamp: int) -> None:
    for secret in secrets:
        Webhook(secret).verify(body, webhooks.headers(msg_id, timestamp, header))


async def test_during_the_overlap_old_and_new_keys_both_sign_and_afterwards_only_the_new(
    agreement_client: httpx.AsyncClient, organization_id: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    old_secret = endpoint["key"]["secret"]
    rotated = await rotate(agreement_client, endpoint["id"], kind="hmac", overlap_hours=24)
    new_secret = rotated["key"]["secret"]
    assert new_secret != old_secret
    assert new_secret.startswith("whsec_")
    (retiring,) = rotated["retiring"]
    assert retiring["id"] == endpoint["key"]["id"]
    assert retiring["state"] == "retired"
    expires = datetime.fromisoformat(retiring["expires_at"])

    endpoint_id = uuid.UUID(str(endpoint["id"]))
    body, msg_id, timestamp = '{"hello":"world"}', "msg_overlap", int(time.time())
    async with sessionmaker() as session:
        during = await service.signing_keys(
            session, endpoint_id=endpoint_id, at=expires - timedelta(hours=1), vault=VAULT
        )
        after = await service.signing_keys(
            session, endpoint_id=endpoint_id, at=expires + timedelta(seconds=1), vault=VAULT
        )
    assert [item.secret for item in during] == [old_secret, new_secret]
    header = webhooks.sign(msg_id, timestamp, body, service.as_signing_keys(during))
    assert len(header.split(" ")) == 2
    verify_all(header, [old_secret, new_secret], body, msg_id, timestamp)

    assert [item.secret for item in after] == [new_secret]
    header = webhooks.sign(msg_id, timestamp, body, service.as_signing_keys(after))
    verify_all(header, [new_secret], body, msg_id, timestamp)
    with pytest.raises(WebhookVerificationError):
        verify_all(header, [old_secret], body, msg_id, timestamp)


async def test_a_rotation_without_overlap_retires_the_old_key_at_once(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    rotated = await rotate(agreement_client, endpoint["id"], overlap_hours=0)
    keys = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", headers=auth("service")
    )
    assert [key["id"] for key in keys.json()["keys"]] == [rotated["key"]["id"]]


async def test_rotating_one_kind_leaves_the_other_kind_signing(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    rotated = await rotate(agreement_client, endpoint["id"], kind="ed25519", overlap_hours=0)
    assert rotated["retiring"] == []
    keys = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", headers=auth("service")
    )
    assert sorted(key["kind"] for key in keys.json()["keys"]) == ["ed25519", "hmac"]


async def test_an_ed25519_rotation_signs_v1a_with_both_keys_during_the_overlap(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id, key_kind="ed25519")
    rotated = await rotate(agreement_client, endpoint["id"], kind="ed25519", overlap_hours=1)
    response = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", headers=auth("service")
    )
    keys = response.json()["keys"]
    header = webhooks.sign(
        "msg", 1700000000, "{}", [webhooks.SigningKey("ed25519", key["secret"]) for key in keys]
    )
    for public in (endpoint["key"]["public_key"], rotated["key"]["public_key"]):
        assert webhooks.verify_ed25519("msg", 1700000000, "{}", header, public)


async def test_signing_keys_at_a_later_time_leave_out_the_expired(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    rotated = await rotate(agreement_client, endpoint["id"], overlap_hours=2)
    later = (datetime.fromisoformat(rotated["retiring"][0]["expires_at"]) + timedelta(minutes=1)).isoformat()
    response = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", params={"at": later}, headers=auth("service")
    )
    assert response.status_code == 200
    assert [key["secret"] for key in response.json()["keys"]] == [rotated["key"]["secret"]]
    naive = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys",
        params={"at": "2030-01-01T00:00:00"},
        headers=auth("service"),
    )
    assert naive.status_code == 400


@pytest.mark.parametrize("role", ["admin", "integration_admin", "coordinator", "nav"])
async def test_only_the_service_role_reads_signing_secrets(
    agreement_client: httpx.AsyncClient, organization_id: str, role: str
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    response = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", headers=auth(role, org=organization_id)
    )
    assert response.status_code == 403
    assert "whsec_" not in response.text


async def test_the_service_reads_the_current_secret_and_the_fetch_is_logged_without_it(
    agreement_client: httpx.AsyncClient, organization_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    response = await agreement_client.get(
        f"/api/v1/webhooks/{endpoint['id']}/signing-keys", headers=auth("service", subject="notify-worker")
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    (key,) = response.json()["keys"]
    assert key["secret"] == endpoint["key"]["secret"]
    logged = capsys.readouterr()
    output = logged.out + logged.err
    assert "webhook.signing_keys_fetched" in output
    assert "notify-worker" in output
    assert "whsec_" not in output


async def test_secrets_are_stored_encrypted(
    agreement_client: httpx.AsyncClient, organization_id: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await new_endpoint(agreement_client, organization_id)
    async with sessionmaker() as session:
        (key,) = (
            (
                await session.execute(
                    select(WebhookKey).where(col(WebhookKey.endpoint_id) == uuid.UUID(str(endpoint["id"])))
                )
            )
            .scalars()
            .all()
        )
    secret = endpoint["key"]["secret"]
    assert secret not in key.encrypted_secret
    assert secret.removeprefix("whsec_") not in key.encrypted_secret
    assert VAULT.decrypt(key.encrypted_secret) == secret


async def test_an_unknown_endpoint_is_404(agreement_client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "keys"),
        ("GET", "signing-keys"),
    ]:
        response = await agreement_client.request(
            method, f"/api/v1/webhooks/{uuid.uuid4()}/{path}", headers=auth("service")
        )
        assert response.status_code == 404
