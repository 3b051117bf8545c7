"""The journey of tests/journey.py against the compose stack, as an operator starts it.

`docker compose up` (or docker-compose) with host ports of the test's choosing, the migrate job,
the three services from the image deploy/Dockerfile builds; the receiver runs on this host and is
reached from the stack through its network's gateway. Run explicitly (it needs a Docker engine and
the images; .ci/run builds them): ``python3 dev.py test tests/deployed``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select

from case_api.organizations.models import OrganizationRef
from shared.db import create_engine
from shared.settings import REPO_ROOT, normalize_database_url
from tests.infra import docker_answers, free_port
from tests.journey import eventually, notice_journey
from tests.webhook_receiver import Answer, Receiver


def compose_command() -> list[str]:
    """The Compose v2 plugin when the docker CLI has it, else the v1 `docker-compose`."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("Neither `docker compose` nor `docker-compose` is installed.")


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    ports: dict[str, int]
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)  # wall clock, as the receiver records

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        command = [*compose_command(), "-p", self.project, "-f", str(REPO_ROOT / "docker-compose.yml"), *args]
        result = subprocess.run(
            command, env=self.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def gateway(self) -> str:
        """This host's address on the stack's network: where the containers reach the receiver."""
        result = subprocess.run(
            [
                "docker",
                "network",
                "inspect",
                f"{self.project}_default",
                "--format",
                "{{(index .IPAM.Config 0).Gateway}}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not docker_answers():
        pytest.fail("The compose journey needs a Docker engine (and docker compose or docker-compose).")
    ports = {
        name: free_port("0.0.0.0")
        for name in ("CASE_API", "AGREEMENT_API", "NOTIFY_WORKER", "POSTGRES", "RABBITMQ", "RABBITMQ_UI")
    }
    env = dict(os.environ)
    env.update({f"TILBAKE_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        {
            # The receiver is this host, on the stack's private network, over plain http.
            "TILBAKE_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
            "TILBAKE_ALLOW_HTTP_WEBHOOKS": "true",
            "TILBAKE_CASE_API_PUBLIC_URL": f"http://127.0.0.1:{ports['CASE_API']}",
        }
    )
    stack = Stack(project=f"tilbakejourney{os.getpid()}", env=env, ports=ports)
    stack.compose("up", "-d")
    try:
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_a_notice_travels_through_the_compose_stack(
    stack: Stack, http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    case_api, agreement_api, notify = (stack.url(s) for s in ("CASE_API", "AGREEMENT_API", "NOTIFY_WORKER"))
    engine = create_engine(
        normalize_database_url(f"postgresql://tilbake:tilbake@127.0.0.1:{stack.ports['POSTGRES']}/tilbake")
    )

    async def known_organizations() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(OrganizationRef)) or 0)

    receiver = Receiver(
        default=Answer(204), reject_unverified=True, bind="0.0.0.0", public_host=stack.gateway
    )
    try:
        for url in (agreement_api, case_api, notify):

            async def ready(url: str = url) -> bool:
                try:
                    return (await http.get(f"{url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, what=f"{url} to be ready", timeout=240)
        ready_after = time.monotonic() - stack.started
        async with receiver.serving():
            await notice_journey(
                http,
                case_api=case_api,
                agreement_api=agreement_api,
                notify=notify,
                receiver=receiver,
                known_organizations=known_organizations,
            )
        first_verified = min(item.at for item in receiver.received if item.verified) - stack.started_at
        with capsys.disabled():
            print(
                f"\ncompose journey: `up` to every service ready {ready_after:.1f} s, "
                f"to the first verified notice {first_verified:.1f} s"
            )
    except BaseException:
        logs = stack.compose("logs", "--no-color", "--tail", "80", check=False)
        print(logs.stdout[-20000:])
        raise
    finally:
        await engine.dispose()
        await asyncio.sleep(0)
