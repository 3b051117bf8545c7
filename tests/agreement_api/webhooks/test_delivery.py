from __future__ import annotations

import ipaddress
import json
import socket

import httpx
import pytest
from standardwebhooks import Webhook

from shared import ssrf, webhooks
from tests.agreement_api.webhooks.conftest import new_endpoint, new_organization
from tests.conftest import auth
from tests.webhook_receiver import MAIN, Answer, Receiver


async def test_a_test_event_is_delivered_signed_and_verifies_with_standard_webhooks(
    local_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url)
    secret = endpoint["key"]["secret"]
    response = await local_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("integration_admin", org=organization_id)
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status_code"] == 204
    assert result["error"] is None
    assert result["duration_ms"] >= 0
    (received,) = receiver.received
    assert received.headers["webhook-id"] == result["message_id"]
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "webhook.test.v1"
    assert payload["data"]["endpoint_id"] == endpoint["id"]
    assert "whsec_" not in received.body.decode()


async def test_an_ed25519_endpoint_receives_a_v1a_signature(
    local_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url, key_kind="ed25519")
    public = endpoint["key"]["public_key"]
    receiver.public_keys[MAIN] = public
    response = await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    assert response.json()["status_code"] == 204
    (received,) = receiver.received
    assert received.verified, "the v1a signature verifies with cryptography's ed25519"
    header = received.headers["webhook-signature"]
    assert header.startswith("v1a,")
    assert webhooks.verify_ed25519(
        received.headers["webhook-id"], received.headers["webhook-timestamp"], received.body, header, public
    )
    assert not webhooks.verify_ed25519(
        received.headers["webhook-id"],
        received.headers["webhook-timestamp"],
        received.body + b" ",
        header,
        public,
    )


async def test_both_keys_sign_the_test_event_during_a_rotation(
    local_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url)
    rotated = await local_client.post(
        f"/api/v1/webhooks/{endpoint['id']}/keys/rotate", json={"overlap_hours": 1}, headers=auth("admin")
    )
    await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    (received,) = receiver.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["key"]["secret"], rotated.json()["key"]["secret"]):
        Webhook(secret).verify(received.body, received.headers)


async def test_a_failing_receiver_is_reported(local_client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.default = Answer(500)
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url)
    result = (
        await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    ).json()
    assert result["status_code"] == 500
    assert result["error"] == "the receiver answered 500"


async def test_a_closed_port_is_reported_as_not_delivered(local_client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=f"http://127.0.0.1:{port}/hook")
    result = (
        await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    ).json()
    assert result["status_code"] is None
    assert result["error"].startswith("could not deliver")


async def test_the_guard_runs_again_at_send_time(
    agreement_client: httpx.AsyncClient, local_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """An endpoint stored while private addresses were allowed is not sent to once they are not."""
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url)
    result = (
        await agreement_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    ).json()
    assert result["status_code"] is None
    assert result["error"].startswith("refused:")
    assert receiver.received == []


async def test_the_test_event_goes_to_the_checked_address_with_the_host_name(
    local_client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once, by the check: .test names never resolve, so only the checked
    address can have been dialed, and the Host header keeps the name."""

    async def resolve(host: str, port: int, *, timeout: float = 2.0) -> list[ssrf.IPAddress]:
        assert host == "receiver.tilbake.test"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    organization_id = await new_organization(local_client)
    url = f"http://receiver.tilbake.test:{receiver.port}/hooks/{MAIN}"
    endpoint = await new_endpoint(local_client, organization_id, url=url)
    result = (
        await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("admin"))
    ).json()
    assert result["status_code"] == 204, result
    (received,) = receiver.received
    assert received.headers["host"] == f"receiver.tilbake.test:{receiver.port}"


async def test_nav_may_not_send_a_test_event(local_client: httpx.AsyncClient, receiver: Receiver) -> None:
    organization_id = await new_organization(local_client)
    endpoint = await new_endpoint(local_client, organization_id, url=receiver.url)
    response = await local_client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=auth("nav"))
    assert response.status_code == 403
    assert receiver.received == []
    assert json.loads(response.text)["status"] == 403
