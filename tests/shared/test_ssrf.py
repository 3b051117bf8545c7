"""The shared webhook URL policy (shared/ssrf.py): what it refuses, and that every resolved address
is checked."""

from __future__ import annotations

import ipaddress

import pytest

from shared import ssrf
from shared.ssrf import IPAddress, UrlPolicy, UrlRefused, check_url, forbidden_reason


@pytest.mark.parametrize(
    "address", ["192.0.0.8", "192.0.0.9", "192.0.0.10", "192.0.0.255", "::ffff:192.0.0.8"]
)
def test_the_special_purpose_block_192_0_0_0_24_is_refused(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


async def test_a_url_on_192_0_0_8_is_refused() -> None:
    with pytest.raises(UrlRefused, match=r"192\.0\.0\.8 is a special-purpose address"):
        await check_url("https://192.0.0.8/hook", UrlPolicy())


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int, *, timeout: float) -> list[IPAddress]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.7")]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    with pytest.raises(UrlRefused, match=r"hooks\.example\.org -> 10\.0\.0\.7 is a private address"):
        await check_url("https://hooks.example.org/hook", UrlPolicy())
    assert await check_url("https://hooks.example.org/hook", UrlPolicy(allow_private=True)) == [
        ipaddress.ip_address("8.8.8.8"),
        ipaddress.ip_address("10.0.0.7"),
    ]


async def test_a_host_that_does_not_resolve_is_told_apart() -> None:
    with pytest.raises(ssrf.HostNotResolved, match="could not be resolved"):
        await check_url("https://no-such-host.invalid/hook", UrlPolicy())
