from __future__ import annotations

import ipaddress

import httpx
import pytest

from agreement_api.webhooks.errors import InvalidWebhookUrl
from agreement_api.webhooks.ssrf import UrlPolicy, check_url, forbidden_reason
from tests.agreement_api.webhooks.conftest import PUBLIC_URL
from tests.conftest import auth


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://localhost/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://100.64.0.1/hook",
        "https://192.0.0.8/hook",  # special-purpose, though Python's ipaddress counts it as global
        "https://2130706433/hook",  # 127.0.0.1 written as one number
    ],
)
async def test_private_and_special_addresses_are_refused(
    agreement_client: httpx.AsyncClient, organization_id: str, url: str
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": url}, headers=auth("admin")
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "url"
    assert "public address" in response.json()["detail"]


async def test_plain_http_is_refused_unless_allowed(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks",
        json={"url": "http://8.8.8.8/hook"},
        headers=auth("admin"),
    )
    assert response.status_code == 422
    # Outside production the refusal names the development setting that would allow it.
    assert response.json()["detail"] == (
        "Webhook URLs must use https (development only: set AGREEMENT_API_ALLOW_HTTP_WEBHOOKS=true)"
    )


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("https://user:pass@8.8.8.8/hook", "credentials"),
        ("ftp://8.8.8.8/hook", "https"),
        ("https:///hook", "no host"),
        ("https://no-such-host.invalid/hook", "could not be resolved"),
    ],
)
async def test_malformed_urls_credentials_and_unresolvable_hosts_are_refused(
    agreement_client: httpx.AsyncClient, organization_id: str, url: str, detail: str
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": url}, headers=auth("admin")
    )
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


async def test_a_public_https_address_is_accepted(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    response = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=auth("admin")
    )
    assert response.status_code == 201, response.text


async def test_a_patched_url_is_checked_again(
    agreement_client: httpx.AsyncClient, organization_id: str
) -> None:
    created = await agreement_client.post(
        f"/api/v1/organizations/{organization_id}/webhooks", json={"url": PUBLIC_URL}, headers=auth("admin")
    )
    response = await agreement_client.patch(
        f"/api/v1/webhooks/{created.json()['id']}",
        json={"url": "https://169.254.169.254/latest"},
        headers={**auth("admin"), "If-Match": created.headers["etag"]},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "url"


async def test_the_allowances_open_local_http_receivers() -> None:
    policy = UrlPolicy(allow_private=True, allow_http=True)
    assert await check_url("http://127.0.0.1:8080/hook", policy) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(InvalidWebhookUrl):
        await check_url("http://127.0.0.1:8080/hook", UrlPolicy(allow_private=True))
    with pytest.raises(InvalidWebhookUrl):
        await check_url("http://127.0.0.1:8080/hook", UrlPolicy(allow_http=True))


def test_production_never_allows_private_or_http_urls() -> None:
    from agreement_api.config import Settings

    settings = Settings(env="dev", allow_private_webhook_urls=True, allow_http_webhooks=True)
    assert UrlPolicy.from_settings(settings) == UrlPolicy(allow_private=True, allow_http=True)
    with pytest.raises(ValueError, match="dev/test only"):
        Settings(
            env="production",
            database_url="postgresql://db/tilbake",
            amqp_url="amqp://broker/",
            jwt_jwks_url="https://auth.example.org/jwks.json",
            webhook_key_encryption_keys=["cHJvZHVjdGlvbi1rZXktMzItYnl0ZXMtbG9uZy0hISE="],
            allow_http_webhooks=True,
        )
    with pytest.raises(ValueError, match="development webhook key"):
        Settings(
            env="production",
            database_url="postgresql://db/tilbake",
            amqp_url="amqp://broker/",
            jwt_jwks_url="https://auth.example.org/jwks.json",
        )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::",
        "ff02::1",
        "240.0.0.1",
        "::",
    ],
)
def test_forbidden_addresses_have_a_reason(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_fine(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None
