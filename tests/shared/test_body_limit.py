"""The request body limit: an oversized body gets 413 problem+json before authentication, and the
server stops reading it instead of taking it in whole."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import running, test_settings
from tests.servers import serve
from tilbake.cli import openapi_documents

AGREEMENTS = "/api/v1/agreements"
ORGANIZATIONS = "/api/v1/organizations"
MIB = 1024 * 1024
TOTAL = 100 * MIB  # what the client offers to send
CHUNK = 64 * 1024
# One receive may hand the app what the server had buffered: its 64 KiB high-water mark and a read.
READ_SLACK = 512 * 1024


@dataclass
class Consumed:
    """Body bytes the app took from the server's ``receive``."""

    bytes: int = 0


def counting(app: Any, consumed: Consumed) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                consumed.bytes += len(message.get("body", b""))
            return message

        await app(scope, counted if scope["type"] == "http" else receive, send)

    return wrapped


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send before the server answered or closed

    def json(self) -> Any:
        return json.loads(self.body)


def offer(url: str, method: str, path: str, *, chunked: bool) -> Answer:
    """Sends a 100 MB body (with Content-Length, or chunked) until the server stops taking it, then
    reads its answer. A plain blocking socket: it can still read an answer the server sent before it
    reset the connection, where an asyncio client drops it along with the transport."""
    host, port = url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    chunk = b"x" * CHUNK
    frame = f"{CHUNK:x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < TOTAL:
                sock.sendall(frame)
                sent += CHUNK
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                raw += data
                if b"\r\n\r\n" in raw:
                    head_part, _, rest = raw.partition(b"\r\n\r\n")
                    length = re.search(rb"(?im)^content-length: *(\d+)", head_part)
                    if length and len(rest) >= int(length.group(1)):
                        break
    head_part, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_part.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body, sent)


@contextlib.asynccontextmanager
async def agreement_server(database_url: str, consumed: Consumed) -> AsyncIterator[str]:
    from agreement_api.main import create_app

    app = create_app(test_settings("agreement_api.config", database_url))  # the default limit, 1 MiB
    async with serve(counting(app, consumed)) as url:
        yield url


def assert_413(answer: Answer, path: str) -> None:
    assert answer.status == 413, answer.body
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["connection"] == "close"
    body = answer.json()
    assert body["type"] == "https://tilbake.no/problems/content-too-large"
    assert body["title"] == "Content Too Large"
    assert body["status"] == 413
    assert body["instance"] == path
    assert body["max_body_bytes"] == MIB
    assert body["correlation_id"] == answer.headers["x-request-id"]


async def test_an_oversized_body_with_content_length_is_refused_unread_and_unauthenticated(
    database_url: str,
) -> None:
    consumed = Consumed()
    async with agreement_server(database_url, consumed) as url:
        answer = await asyncio.to_thread(offer, url, "POST", AGREEMENTS, chunked=False)
    assert_413(answer, AGREEMENTS)  # not 401: the limit comes before authentication
    assert consumed.bytes == 0, "the declared length alone is refused: the app reads nothing"
    assert answer.sent < TOTAL // 2, f"the server took {answer.sent} bytes of the body"


async def test_an_oversized_chunked_body_is_refused_once_the_limit_is_passed(database_url: str) -> None:
    consumed = Consumed()
    async with agreement_server(database_url, consumed) as url:
        answer = await asyncio.to_thread(offer, url, "POST", AGREEMENTS, chunked=True)
    assert_413(answer, AGREEMENTS)
    assert MIB < consumed.bytes <= MIB + READ_SLACK, f"the app read {consumed.bytes} bytes"
    assert answer.sent < TOTAL // 2, f"the server took {answer.sent} bytes of the body"


async def test_a_chunked_body_nobody_reads_closes_the_connection_instead_of_being_drained(
    database_url: str,
) -> None:
    consumed = Consumed()
    async with agreement_server(database_url, consumed) as url:
        # A route without a body answers 401 without reading it.
        answer = await asyncio.to_thread(offer, url, "GET", ORGANIZATIONS, chunked=True)
    assert answer.status == 401, answer.body
    assert answer.headers["connection"] == "close"
    assert consumed.bytes == 0
    assert answer.sent < TOTAL // 2, f"the server drained {answer.sent} bytes of the body"


@pytest.fixture
async def small_limit_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    from agreement_api.main import create_app

    app = create_app(test_settings("agreement_api.config", database_url, max_body_bytes=2048))
    async with running(app) as client:
        yield client


async def test_the_limit_is_the_setting_and_a_body_at_the_limit_passes(
    small_limit_client: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/json"}
    padded = b'{"name": "' + b"x" * (2048 - 12) + b'"}'
    assert len(padded) == 2048
    at_limit = await small_limit_client.post(ORGANIZATIONS, content=padded, headers=headers)
    assert at_limit.status_code == 401, at_limit.text
    over = await small_limit_client.post(ORGANIZATIONS, content=padded + b" ", headers=headers)
    assert over.status_code == 413
    assert over.json()["max_body_bytes"] == 2048

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * 1000

    chunked = await small_limit_client.post(ORGANIZATIONS, content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert chunked.headers["content-type"] == "application/problem+json"


def test_every_operation_that_takes_a_body_documents_the_413() -> None:
    for name, text in openapi_documents().items():
        document = json.loads(text)
        operations = [op for path in document["paths"].values() for op in path.values()]
        with_body = [op for op in operations if "requestBody" in op]
        assert with_body, name
        for operation in with_body:
            documented = operation["responses"]["413"]["content"]["application/problem+json"]
            assert documented["schema"] == {"$ref": "#/components/schemas/ProblemDetail"}
        assert all("413" not in op["responses"] for op in operations if "requestBody" not in op)
