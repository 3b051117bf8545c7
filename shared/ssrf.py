"""The webhook URL policy against server-side request forgery, shared by agreement-api (when a URL is
stored, and before a test event) and notify-worker (before every delivery attempt). What is checked
when: docs/architecture.md, "SSRF guard", and docs/notices.md, "The URL at send time".

A webhook URL must be https (plain http only where the policy allows it), carry no credentials and
resolve only to public addresses: private, loopback, link-local, multicast, reserved, unspecified,
special-purpose (192.0.0.0/24) and otherwise non-global addresses (also when wrapped as IPv4-mapped,
6to4 or Teredo IPv6) are refused unless the policy allows private addresses. Every address the host
resolves to must pass.

:func:`check_url` answers the checked addresses; :class:`PinnedTransport` (httpx) and
:class:`PinnedResolver` (aiohttp, notify-worker's deliveries) connect only to those (:func:`pinned`),
so the host is not resolved a second time between the check and the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 2.0

# Special-purpose ranges Python's ipaddress counts as global in some versions (192.0.0.8, say).
SPECIAL_PURPOSE = (ipaddress.ip_network("192.0.0.0/24"),)


class UrlRefused(ValueError):
    """The URL breaks the policy; the message says why (the host, never the path or query)."""


class HostNotResolved(UrlRefused):
    """The host did not resolve (in time), so its addresses could not be checked."""


class PolicySettings(Protocol):
    """The settings a policy is made from (agreement-api's and notify-worker's have them)."""

    @property
    def env(self) -> str: ...

    @property
    def allow_private_webhook_urls(self) -> bool: ...

    @property
    def allow_http_webhooks(self) -> bool: ...


@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    allow_http: bool = False
    # Environment prefix of the settings, named in refusals outside production ("" names none).
    env_prefix: str = field(default="", compare=False)

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> UrlPolicy:
        """The settings' allowances, in dev and test only (production settings refuse them too)."""
        dev = settings.env in ("dev", "test")
        config = getattr(settings, "model_config", {})
        return cls(
            allow_private=settings.allow_private_webhook_urls and dev,
            allow_http=settings.allow_http_webhooks and dev,
            env_prefix=str(config.get("env_prefix", "")) if dev else "",
        )

    def hint(self, setting: str) -> str:
        """`` (development: set PREFIX_SETTING)`` naming the flag that allows it, or "" in production."""
        if not self.env_prefix:
            return ""
        return f" (development only: set {self.env_prefix}{setting.upper()}=true)"


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
        ("special-purpose", any(address in network for network in SPECIAL_PURPOSE)),
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


def parse(url: str, policy: UrlPolicy) -> SplitResult:
    """The URL's parts; :class:`UrlRefused` when its form breaks the policy (nothing is resolved)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"The URL is not valid: {exc}") from exc
    if parts.scheme == "http":
        if not policy.allow_http:
            raise UrlRefused("Webhook URLs must use https" + policy.hint("allow_http_webhooks"))
    elif parts.scheme != "https":
        raise UrlRefused("Webhook URLs must be https URLs")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("Webhook URLs must not carry credentials")
    if not parts.hostname:
        raise UrlRefused("The URL has no host")
    if port == 0:
        raise UrlRefused("The URL's port is not valid")
    if parts.fragment:
        raise UrlRefused("Webhook URLs must not have a fragment")
    return parts


async def resolve(host: str, port: int, *, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> list[IPAddress]:
    """The addresses ``host`` resolves to, each once; :class:`HostNotResolved` when it does not
    resolve in time. The one place a webhook host is resolved (tests replace it)."""
    try:
        infos = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise HostNotResolved(f"The host {host!r} could not be resolved") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotResolved(f"The host {host!r} could not be resolved")
    return addresses


async def check_url(
    url: str, policy: UrlPolicy, *, resolve_timeout: float = RESOLVE_TIMEOUT_SECONDS
) -> list[IPAddress]:
    """Refuse a URL that breaks the rules above (:class:`UrlRefused`); its checked addresses."""
    parts = parse(url, policy)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.split("%", 1)[0])]
    except ValueError:
        addresses = await resolve(host, port, timeout=resolve_timeout)
    if not policy.allow_private:
        for address in addresses:
            if (reason := forbidden_reason(address)) is not None:
                raise UrlRefused(
                    f"Webhook URLs must reach a public address: {host} -> {reason}"
                    + policy.hint("allow_private_webhook_urls")
                )
    return addresses


# --- connecting to the checked addresses only ------------------------------------------------------

# Host (as httpx sends it to the connection pool) -> the addresses checked for the request under way.
_PINS: ContextVar[Mapping[str, tuple[IPAddress, ...]] | None] = ContextVar("ssrf_pins", default=None)


@functools.lru_cache(maxsize=1024)
def pin_key(url: str) -> str:
    """The host of ``url`` as httpcore hands it to the network backend (IDNA, lower case). Cached:
    a worker sends to the same few URLs again and again, and parsing one costs more than the rest."""
    return httpx.URL(url).raw_host.decode("ascii").lower()


@contextlib.contextmanager
def pinned(url: str, addresses: Sequence[IPAddress]) -> Iterator[None]:
    """Within the block (and the tasks it starts), a :class:`PinnedTransport` opens connections to
    ``url``'s host only to ``addresses``, in order."""
    token = _PINS.set({**(_PINS.get() or {}), pin_key(url): tuple(addresses)})
    try:
        yield
    finally:
        _PINS.reset(token)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that dials the pinned addresses of a host instead of its name,
    and refuses a host nothing was pinned for. TLS (the server name and the certificate check) still
    uses the host name: httpcore starts it on the stream this returns."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = (_PINS.get() or {}).get(host.lower())
        if not addresses:
            raise httpcore.ConnectError(f"no checked address for {host}: not connecting")
        # One connect timeout for all the addresses, each tried in turn.
        deadline = None if timeout is None else time.monotonic() + timeout
        failure: Exception | None = None
        for address in addresses:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                return await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectTimeout(f"connecting to {host} timed out")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a :class:`PinnedBackend`: every new connection goes to an address
    pinned for its host by :func:`pinned`. No proxies from the environment."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx 0.28 takes no network backend: its pool is replaced by the same pool with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(),
        )


def pinned_client(
    *, timeout: httpx.Timeout | float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """An HTTP client for webhooks: pinned connections, no redirects, no proxies from the environment."""
    return httpx.AsyncClient(
        transport=PinnedTransport(verify=verify), timeout=timeout, follow_redirects=False, trust_env=False
    )


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for webhook sessions: a host's addresses are those pinned for it by
    :func:`pinned`, in order, and a host nothing was pinned for is refused. Nothing is resolved
    here; TLS still checks the certificate against the host name."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = (_PINS.get() or {}).get(host.lower())
        if not addresses:
            raise OSError(f"no checked address for {host}: not connecting")
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)  # AF_UNSPEC: both
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
            if wanted in (None, address.version)
        ]

    async def close(self) -> None:
        return None


def pinned_session(
    *, connect_timeout: float, read_timeout: float, verify: ssl.SSLContext | bool = True
) -> aiohttp.ClientSession:
    """An aiohttp session for webhooks: connections only to pinned addresses (each tried in turn, no
    DNS cache), no proxies from the environment, the same certificate bundle as :func:`pinned_client`.
    Must be made inside a running event loop."""
    context = httpx.create_ssl_context(verify=verify, trust_env=False)
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(),
        use_dns_cache=False,
        ssl=context,  # verify=False gives a context that checks nothing, as for httpx
        limit=100,
        keepalive_timeout=5.0,  # as httpx's pool: a kept-alive connection lives a few seconds
        happy_eyeballs_delay=None,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False, auto_decompress=False)
