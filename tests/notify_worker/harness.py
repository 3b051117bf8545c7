"""Real processes for the reliability tests (tests/notify_worker/test_reliability.py).

notify-worker, agreement-api and case-api run as ``python -m <service>`` on the test database, so a
worker can be killed with SIGKILL and two workers can race for the same notices; the webhook
receiver is a uvicorn server in a thread of its own (it keeps answering while the test waits on
something else), verifies every signature with the public ``standardwebhooks`` package and counts
what it got by ``webhook-id`` and ``notice_id``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.settings import REPO_ROOT
from tests.conftest import auth

ADMIN = auth("admin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, message: Callable[[], str] | str
) -> float:
    """Poll ``predicate`` until it holds; how long that took. Fails with ``message`` on timeout."""
    began = time.monotonic()
    while not await predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(message() if callable(message) else message)
        await asyncio.sleep(0.1)
    return time.monotonic() - began


# --- service processes --------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """One ``python -m <module>`` process; its output goes to a file (a pipe nobody reads would
    fill up and stall the process)."""

    module: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 40.0) -> None:
        """Until ``/readyz`` answers 200 (database, broker and consumer are up)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"{self.module} exited with {self.process.returncode}:\n{self.tail()}"
                    )
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.module} was not ready within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill_now(self) -> None:
        """SIGKILL without waiting (safe from any thread): no shutdown hook runs, whatever was in
        flight is simply gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        self.kill_now()
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_file.close()


def start_service(
    module: str, prefix: str, settings: Mapping[str, str], *, log_dir: Path, name: str | None = None
) -> ServiceProcess:
    """Start ``python -m module`` with ``PREFIX_KEY=value`` for each setting (and a free port unless
    one is given). The caller's own ``PREFIX_*`` variables are left out, so nothing leaks in."""
    values = {"port": str(free_port()), **settings}
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefix)}
    env.update({f"{prefix}{key.upper()}": value for key, value in values.items()})
    log_path = log_dir / f"{name or module}-{values['port']}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    return ServiceProcess(module, int(values["port"]), process, log_path, log_file)


def common_settings(database_url: str, amqp_url: str | None = None) -> dict[str, str]:
    """What every service process of these tests gets: the test database, JSON logs, few connections."""
    return {
        "env": "test",
        "database_url": database_url,
        "amqp_url": amqp_url or "",
        "database_pool_size": "4",
        "log_json": "true",
    }


# --- the webhook receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request."""

    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering: longer than the worker's read timeout is a timeout
    hold: bool = False  # keep the request open until the receiver stops (the sender dies meanwhile)
    # Run in the receiver's thread once the request is recorded, before answering: kills the
    # sender while its request is certainly in flight, whatever the test's own loop is doing.
    on_arrival: Callable[[], None] | None = None


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it, recorded the moment it arrived."""

    endpoint: str
    webhook_id: str
    notice_id: str | None
    verified: bool
    at: float  # time.time()
    status: int  # the answer it was given (a held request: 200 once released, if anyone still listens)


@dataclass
class Receiver:
    """Counting webhook receiver on 127.0.0.1, in a thread with its own event loop.

    Each endpoint name is a path ``/hooks/{name}`` with its own secret and its own script of answers
    (then 200). Every request is verified with the endpoint's secret before it is answered."""

    port: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, collections.deque[Answer]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _epoch: int = 0  # a held request is let go when this moves on (reset or stop)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _socket: socket.socket | None = None

    def url(self, endpoint: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{endpoint}"

    def script(self, endpoint: str, *answers: Answer) -> None:
        with self._lock:
            self.scripts[endpoint] = collections.deque(answers)

    def requests(self, endpoint: str | None = None) -> list[Received]:
        with self._lock:
            return [item for item in self.received if endpoint is None or item.endpoint == endpoint]

    def per_notice(self) -> collections.Counter[str | None]:
        return collections.Counter(item.notice_id for item in self.requests())

    def per_webhook_id(self) -> collections.Counter[str]:
        return collections.Counter(item.webhook_id for item in self.requests())

    def add_secret(self, endpoint: str, secret: str) -> None:
        with self._lock:
            self.secrets[endpoint] = secret

    def reset(self) -> None:
        """Forget everything between tests; requests still held are let go."""
        with self._lock:
            self._epoch += 1
            self.secrets.clear()
            self.scripts.clear()
            self.received.clear()

    async def _hook(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        body = await request.body()
        headers = dict(request.headers)
        with self._lock:
            epoch = self._epoch
            secret = self.secrets.get(endpoint)
            script = self.scripts.get(endpoint)
            answer = script.popleft() if script else Answer()
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(body, headers)  # the public package, unchanged
                verified = True
            except Exception:
                verified = False
        try:
            notice_id = str(json.loads(body).get("notice_id"))
        except ValueError:
            notice_id = None
        with self._lock:
            self.received.append(
                Received(
                    endpoint=endpoint,
                    webhook_id=headers.get("webhook-id", ""),
                    notice_id=notice_id,
                    verified=verified,
                    at=time.time(),
                    status=answer.status,
                )
            )
        if answer.on_arrival is not None:
            answer.on_arrival()
        if answer.hold:
            while self._epoch == epoch:  # noqa: ASYNC110 - let go from the test's thread
                await asyncio.sleep(0.05)
        elif answer.delay:
            await asyncio.sleep(answer.delay)
        extra = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        return Response(status_code=answer.status, headers=extra)

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        app = Starlette(routes=[Route("/hooks/{endpoint}", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, log_config=None, lifespan="off", access_log=False, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise AssertionError("the webhook receiver did not start")

    def stop(self) -> None:
        with self._lock:
            self._epoch += 1
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()


# --- agreement-api, through its API -------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    organization_id: str
    endpoint_id: str
    secret: str


async def register_recipient(agreement_url: str, receiver: Receiver, endpoint: str) -> Registered:
    """A recipient organization with one webhook endpoint at ``receiver``'s ``endpoint``, registered
    through agreement-api's API as an admin would; the receiver learns the signing secret."""
    async with httpx.AsyncClient(base_url=agreement_url, timeout=10.0, trust_env=False) as client:
        response = await client.post(
            "/api/v1/organizations",
            json={"type": "ngo", "name": f"Mottaker {endpoint}"},
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        organization_id = str(response.json()["id"])
        response = await client.post(
            f"/api/v1/organizations/{organization_id}/webhooks",
            json={"url": receiver.url(endpoint), "key_kind": "hmac", "rate_limit_per_minute": 6000},
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        created = response.json()
    receiver.add_secret(endpoint, str(created["key"]["secret"]))
    return Registered(organization_id, str(created["id"]), str(created["key"]["secret"]))
