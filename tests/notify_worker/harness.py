"""Real processes for the reliability tests (tests/notify_worker/test_reliability.py).

notify-worker, agreement-api and case-api run as ``python -m <service>`` on the test database, so a
worker can be killed with SIGKILL and two workers can race for the same notices; the webhook
receiver (tests.webhook_receiver) runs in a thread of its own (it keeps answering while the test
waits on something else), verifies every signature with the public ``standardwebhooks`` package and
counts what it got by ``webhook-id`` and ``notice_id``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from shared.settings import REPO_ROOT
from tests.conftest import auth
from tests.infra import free_port
from tests.webhook_receiver import Receiver

ADMIN = auth("admin")


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


class Processes:
    """Processes started by one test, stopped after it (last started first)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[ServiceProcess] = []

    def start(self, module: str, prefix: str, settings: dict[str, str], name: str) -> ServiceProcess:
        process = start_service(module, prefix, settings, log_dir=self.logs, name=name)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def common_settings(database_url: str, amqp_url: str | None = None) -> dict[str, str]:
    """What every service process of these tests gets: the test database, JSON logs, few connections."""
    return {
        "env": "test",
        "database_url": database_url,
        "amqp_url": amqp_url or "",
        "database_pool_size": "4",
        "log_json": "true",
    }


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
            json={"url": receiver.url_of(endpoint), "key_kind": "hmac", "rate_limit_per_minute": 6000},
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        created = response.json()
    receiver.secrets[endpoint] = str(created["key"]["secret"])
    return Registered(organization_id, str(created["id"]), str(created["key"]["secret"]))
