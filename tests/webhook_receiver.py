"""The webhook receiver every test sends to: uvicorn on 127.0.0.1 (a free port) that checks each
POST's Standard Webhooks signature (``v1`` with the public ``standardwebhooks`` package unchanged,
``v1a`` with cryptography's ed25519), records it and answers from a per-endpoint script.

Each endpoint is a path ``/hooks/{name}`` with its own keys and script; ``url``, ``secret`` and
``answers`` are those of the endpoint ``main``. It runs in the test's event loop
(``async with Receiver().serving()``) or in a thread of its own (``start()`` and ``stop()``), which
keeps answering while the test waits on something else.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import InTestServer, base_url, config, serve
from tilbake.embedded.receiver import verify_v1a

MAIN = "main"


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request."""

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering: longer than the sender's read timeout is a timeout
    hold: bool = False  # keep the request open until reset() or stop() (the sender dies meanwhile)
    # Run in the receiver's loop once the request is recorded, before answering: kills the sender
    # while its request is certainly in flight, whatever the test's own loop is doing.
    on_arrival: Callable[[], None] | None = None


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it, recorded the moment it arrived."""

    endpoint: str
    body: bytes
    headers: dict[str, str]
    verified: bool  # a v1 or v1a signature in it verifies under the endpoint's key
    at: float  # time.time()
    status: int  # the answer it was given (a held request: once released, if anyone still listens)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def notice_id(self) -> str | None:
        try:
            return str(self.payload.get("notice_id"))
        except ValueError:
            return None


def verify(body: bytes, headers: dict[str, str], *, secret: str | None, public_key: str | None) -> bool:
    """True when a ``v1`` signature verifies under the ``whsec_`` secret or a ``v1a`` one under the
    ``whpk_`` public key (checked as the demo receiver does, with cryptography's ed25519)."""
    if secret:
        try:
            Webhook(secret).verify(body, headers)  # the public package, unchanged
            return True
        except Exception:
            pass
    if not public_key:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
        return verify_v1a(key, headers, body)
    except (KeyError, ValueError):
        return False


@dataclass
class Receiver:
    """A webhook receiver on a free port of 127.0.0.1 that verifies, records and answers."""

    default: Answer = field(default_factory=Answer)  # once an endpoint's script is used up
    reject_unverified: bool = False  # answer 401 to what does not verify, as a real receiver does
    secrets: dict[str, str] = field(default_factory=dict)  # endpoint -> whsec_ secret (v1)
    public_keys: dict[str, str] = field(default_factory=dict)  # endpoint -> whpk_ public key (v1a)
    scripts: dict[str, collections.deque[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    bind: str = "127.0.0.1"  # the address it listens on
    public_host: str = "127.0.0.1"  # the address senders reach it at (a container's gateway, say)
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests the receiver was answering at one time
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _epoch: int = 0  # a held request is let go when this moves on (reset or stop)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # --- the endpoint ``main`` -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_of(MAIN)

    @property
    def secret(self) -> str:
        return self.secrets.get(MAIN, "")

    @secret.setter
    def secret(self, value: str) -> None:
        self.secrets[MAIN] = value

    @property
    def answers(self) -> collections.deque[Answer]:
        with self._lock:
            return self.scripts.setdefault(MAIN, collections.deque())

    @answers.setter
    def answers(self, value: Iterable[Answer]) -> None:
        self.script(MAIN, *value)

    @property
    def bodies(self) -> list[bytes]:
        return [item.body for item in self.requests()]

    @property
    def headers(self) -> list[dict[str, str]]:
        return [item.headers for item in self.requests()]

    @property
    def verified(self) -> list[bool]:
        return [item.verified for item in self.requests()]

    # --- any endpoint ----------------------------------------------------------------------------

    def url_of(self, endpoint: str) -> str:
        return f"http://{self.public_host}:{self.port}/hooks/{endpoint}"

    def script(self, endpoint: str, *answers: Answer) -> None:
        """The answers to ``endpoint``'s next requests, in order (then ``default``)."""
        with self._lock:
            self.scripts[endpoint] = collections.deque(answers)

    def requests(self, endpoint: str | None = None) -> list[Received]:
        with self._lock:
            return [item for item in self.received if endpoint is None or item.endpoint == endpoint]

    def per_notice(self) -> collections.Counter[str | None]:
        return collections.Counter(item.notice_id for item in self.requests())

    def per_webhook_id(self) -> collections.Counter[str]:
        return collections.Counter(item.webhook_id for item in self.requests())

    def reset(self) -> None:
        """Forget everything between tests; requests still held are let go."""
        with self._lock:
            self._epoch += 1
            self.secrets.clear()
            self.public_keys.clear()
            self.scripts.clear()
            self.received.clear()

    async def _hook(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        body = await request.body()
        headers = dict(request.headers)
        with self._lock:
            epoch = self._epoch
            secret, public_key = self.secrets.get(endpoint), self.public_keys.get(endpoint)
        verified = verify(body, headers, secret=secret, public_key=public_key)
        if self.reject_unverified and not verified:
            answer = Answer(401)
        else:
            with self._lock:
                script = self.scripts.get(endpoint)
                answer = script.popleft() if script else self.default
        with self._lock:
            self.received.append(Received(endpoint, body, headers, verified, time.time(), answer.status))
        if answer.on_arrival is not None:
            answer.on_arrival()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if answer.hold:
                while self._epoch == epoch:  # noqa: ASYNC110 - let go from the test's thread
                    await asyncio.sleep(0.05)
            elif answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            self.in_flight -= 1
        extra = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        return Response(status_code=answer.status, headers=extra)

    # --- running ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{endpoint}", self._hook, methods=["POST"])])

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        """Serve in the running event loop until the block ends."""
        async with serve(self.app(), host=self.bind, access_log=False) as url:
            self.port = urlsplit(url).port or 0
            try:
                yield self
            finally:
                self._let_go()

    def start(self) -> None:
        """Serve in a thread of its own until :meth:`stop`."""
        server = InTestServer(
            config(self.app(), host=self.bind, access_log=False, timeout_graceful_shutdown=2)
        )
        self._server = server
        self._thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise AssertionError("the webhook receiver did not start")
        self.port = urlsplit(base_url(server)).port or 0

    def stop(self) -> None:
        self._let_go()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _let_go(self) -> None:
        """Requests still held are answered now."""
        with self._lock:
            self._epoch += 1
