"""Server-side request forgery guard for webhook URLs.

A webhook URL must be https (plain http only where the settings allow it, never in production),
carry no credentials, and resolve only to public addresses: private, loopback, link-local,
multicast, reserved, unspecified and otherwise non-global addresses (also when wrapped as
IPv4-mapped, 6to4 or Teredo IPv6) are refused unless ``allow_private_webhook_urls`` is set. The
check runs when a URL is stored and again right before anything is sent to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from agreement_api.config import Settings
from agreement_api.webhooks.errors import InvalidWebhookUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    allow_http: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        dev = settings.env in ("dev", "test")
        return cls(
            allow_private=settings.allow_private_webhook_urls and dev,
            allow_http=settings.allow_http_webhooks and dev,
        )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = [address.sixtofour]
    if address.teredo is not None:
        embedded.extend(address.teredo)
    return [ip for ip in embedded if ip is not None]


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            reason = forbidden_reason(address.ipv4_mapped)
            return None if reason is None else f"{reason} (as {address})"
        for inner in _embedded_ipv4(address):
            if (reason := forbidden_reason(inner)) is not None:
                return f"{reason} (embedded in {address})"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return (
                f"{address} is a {name} address"
                if name != "not globally routable"
                else f"{address} is {name}"
            )
    return None


def _parse(url: str, policy: UrlPolicy) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"The URL is not valid: {exc}", field="url") from exc
    if parts.scheme == "http":
        if not policy.allow_http:
            raise InvalidWebhookUrl("Webhook URLs must use https", field="url")
    elif parts.scheme != "https":
        raise InvalidWebhookUrl("Webhook URLs must be https URLs", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidWebhookUrl("Webhook URLs must not carry credentials", field="url")
    if not parts.hostname:
        raise InvalidWebhookUrl("The URL has no host", field="url")
    if port == 0:
        raise InvalidWebhookUrl("The URL's port is not valid", field="url")
    if parts.fragment:
        raise InvalidWebhookUrl("Webhook URLs must not have a fragment", field="url")
    return parts


async def resolve(host: str, port: int, *, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> list[IPAddress]:
    """The addresses ``host`` resolves to; 422 when it does not resolve in time."""
    try:
        infos = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise InvalidWebhookUrl(f"The host {host!r} could not be resolved", field="url") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidWebhookUrl(f"The host {host!r} could not be resolved", field="url")
    return addresses


async def check_url(url: str, policy: UrlPolicy) -> list[IPAddress]:
    """Refuse a URL that breaks the rules above (422, ``field="url"``); returns its addresses."""
    parts = _parse(url, policy)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        addresses = await resolve(host, port)
    if not policy.allow_private:
        for address in addresses:
            if (reason := forbidden_reason(address)) is not None:
                raise InvalidWebhookUrl(
                    f"Webhook URLs must reach a public address: {host} -> {reason}", field="url"
                )
    return addresses
