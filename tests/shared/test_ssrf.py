"""The shared webhook URL policy (shared/ssrf.py): what it refuses, that every resolved address is
checked, and that a pinned client connects only to the checked addresses, keeping the host name for
the Host header, the TLS server name and the certificate check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared import ssrf
from shared.ssrf import IPAddress, UrlPolicy, UrlRefused, check_url, forbidden_reason
from tests.servers import serve

NAME = "receiver.tilbake.test"  # .test never resolves: only a pin can reach it
LOOPBACK = ipaddress.ip_address("127.0.0.1")
LOCAL = UrlPolicy(allow_private=True, allow_http=True)


@pytest.mark.parametrize(
    "address", ["192.0.0.8", "192.0.0.9", "192.0.0.10", "192.0.0.255", "::ffff:192.0.0.8"]
)
def test_the_special_purpose_block_192_0_0_0_24_is_refused(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


async def test_a_url_on_192_0_0_8_is_refused() -> None:
    with pytest.raises(UrlRefused, match=r"192\.0\.0\.8 is a special-purpose address"):
        await check_url("https://192.0.0.8/hook", UrlPolicy())


class _Settings:
    model_config = {"env_prefix": "NOTIFY_WORKER_"}
    allow_private_webhook_urls = False
    allow_http_webhooks = False

    def __init__(self, env: str) -> None:
        self.env = env


async def test_a_refusal_names_the_development_setting_outside_production_only() -> None:
    dev = UrlPolicy.from_settings(_Settings("dev"))
    with pytest.raises(UrlRefused, match=r"development only: set NOTIFY_WORKER_ALLOW_HTTP_WEBHOOKS=true"):
        await check_url("http://8.8.8.8/hook", dev)
    with pytest.raises(UrlRefused, match=r"development only: set NOTIFY_WORKER_ALLOW_PRIVATE_WEBHOOK_URLS"):
        await check_url("https://127.0.0.1/hook", dev)
    production = UrlPolicy.from_settings(_Settings("production"))
    with pytest.raises(UrlRefused) as refused:
        await check_url("http://8.8.8.8/hook", production)
    assert str(refused.value) == "Webhook URLs must use https"


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


# --- pinned connections ---------------------------------------------------------------------------


def _hosts() -> tuple[Starlette, list[str]]:
    """An app that answers every request with 200 and records its Host header."""
    seen: list[str] = []

    async def hook(request: Request) -> PlainTextResponse:
        seen.append(request.headers["host"])
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), seen


async def test_a_pinned_request_dials_the_checked_address_and_keeps_the_host_name() -> None:
    app, seen = _hosts()
    async with serve(app) as base, ssrf.pinned_client(timeout=5.0) as client:
        port = httpx.URL(base).port
        url = f"http://{NAME}:{port}/hook"
        with ssrf.pinned(url, [ipaddress.ip_address("127.0.0.2"), LOOPBACK]):  # the first refuses
            response = await client.post(url, content=b"{}")
    assert response.status_code == 200
    assert seen == [f"{NAME}:{port}"]


@contextlib.asynccontextmanager
async def _counting_server() -> AsyncIterator[tuple[int, list[None]]]:
    """A TCP server on loopback that only counts the connections it is offered: (port, counts)."""
    connections: list[None] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(None)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


async def test_without_a_pin_nothing_is_connected() -> None:
    async with _counting_server() as (port, connections), ssrf.pinned_client(timeout=5.0) as client:
        with pytest.raises(httpx.ConnectError, match="no checked address"):
            await client.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
        with ssrf.pinned(f"http://{NAME}/", [LOOPBACK]), pytest.raises(httpx.ConnectError):
            await client.post(f"http://localhost:{port}/hook", content=b"{}")  # another host
    assert not connections


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for :data:`NAME` only: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tilbake test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext, list[str]]]:
    """An https server on 127.0.0.1 whose certificate names only :data:`NAME`: its port, a context
    trusting its CA, and the Host headers it saw."""
    ca, cert, key = _certificates(tmp_path)
    app, seen = _hosts()
    async with serve(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as base:
        yield httpx.URL(base).port or 0, ssl.create_default_context(cafile=str(ca)), seen


async def test_tls_to_a_pinned_address_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[int, ssl.SSLContext, list[str]],
) -> None:
    port, trusted, seen = tls_receiver
    async with ssrf.pinned_client(timeout=5.0, verify=trusted) as client:
        url = f"https://{NAME}:{port}/hook"
        with ssrf.pinned(url, [LOOPBACK]):
            response = await client.post(url, content=b"{}")
        assert response.status_code == 200
        assert seen == [f"{NAME}:{port}"]

        # Another name pinned to the same address: the certificate does not name it.
        other = f"https://other.tilbake.test:{port}/hook"
        with (
            ssrf.pinned(other, [LOOPBACK]),
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            await client.post(other, content=b"{}")
    assert len(seen) == 1


# --- the same for aiohttp (notify-worker's deliveries) ----------------------------------------------


def _session(verify: ssl.SSLContext | bool = True) -> aiohttp.ClientSession:
    return ssrf.pinned_session(connect_timeout=5.0, read_timeout=5.0, verify=verify)


async def test_an_aiohttp_pinned_request_dials_the_checked_address_and_keeps_the_host_name() -> None:
    app, seen = _hosts()
    async with serve(app) as base, _session() as session:
        port = httpx.URL(base).port
        url = f"http://{NAME}:{port}/hook"
        with ssrf.pinned(url, [ipaddress.ip_address("127.0.0.2"), LOOPBACK]):  # the first refuses
            async with session.post(url, data=b"{}") as response:
                status = response.status
    assert status == 200
    assert seen == [f"{NAME}:{port}"]


async def test_an_aiohttp_session_without_a_pin_connects_nothing() -> None:
    async with _counting_server() as (port, connections), _session() as session:
        # A name is asked of the resolver, which has no pin for it. (A literal address is not
        # resolved: check_url checked that very address, so there is nothing to rebind.)
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.post(f"http://localhost:{port}/hook", data=b"{}")
        with ssrf.pinned(f"http://{NAME}/", [LOOPBACK]), pytest.raises(aiohttp.ClientConnectorError):
            await session.post(f"http://localhost:{port}/hook", data=b"{}")  # another host
    assert not connections


async def test_aiohttp_tls_to_a_pinned_address_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[int, ssl.SSLContext, list[str]],
) -> None:
    port, trusted, seen = tls_receiver
    async with _session(verify=trusted) as session:
        url = f"https://{NAME}:{port}/hook"
        with ssrf.pinned(url, [LOOPBACK]):
            async with session.post(url, data=b"{}") as response:
                assert response.status == 200
        assert seen == [f"{NAME}:{port}"]

        # Another name pinned to the same address: the certificate does not name it.
        other = f"https://other.tilbake.test:{port}/hook"
        with ssrf.pinned(other, [LOOPBACK]), pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.post(other, data=b"{}")
    assert len(seen) == 1
