"""Setting up the systems under test: a scratch database, the case-api and baseline processes,
and the data the scenarios need (organizations, persons, cases, baseline rows)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import hashlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from alembic import command
from alembic.config import Config

from benchmarks import bulk
from shared.auth import mint_token
from shared.settings import REPO_ROOT, normalize_database_url

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
OUTBOX_DRAIN_LIMIT_S = 120.0
# Persons registered per second of a create scenario: above the same-work app's create rate on the
# two-core machine of docs/benchmarks.md (about 1,400/s), so no create run runs out of persons.
CREATES_PER_SECOND = 2_500


def server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_SERVER_URL
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix) :]
    return url


def database_url(name: str) -> str:
    """The server URL with its database name replaced (plain libpq form)."""
    base, _, rest = server_url().rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def create_database(name: str) -> str:
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(name)


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _upgrade(url: str) -> None:
    config = Config(toml_file=str(REPO_ROOT / "pyproject.toml"))
    config.attributes["sqlalchemy.url"] = normalize_database_url(url)
    command.upgrade(config, "head")


def migrate(url: str) -> None:
    """alembic upgrade head; env.py runs its own event loop, so give it a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_upgrade, url).result()


@dataclass
class Organizations:
    region_id: uuid.UUID
    unit_id: uuid.UUID


async def seed_organizations(url: str) -> Organizations:
    """case-api's organization read model: one region and one prison in it."""
    orgs = Organizations(region_id=uuid.uuid4(), unit_id=uuid.uuid4())
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO case_organization_ref (id, type, name, parent_id, kommunenummer, enhetsnummer,"
            " updated_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5)",
            [
                (orgs.region_id, "region", "Benchmark region", None, now),
                (orgs.unit_id, "prison", "Benchmark prison", orgs.region_id, now),
            ],
        )
    finally:
        await conn.close()
    return orgs


async def query_value(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the suite's process dies, so a suite
    killed from outside (a CI timeout) leaves no server behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def child_options() -> dict[str, Any]:
    """Keyword arguments for every child process the suite starts."""
    return {"preexec_fn": _die_with_parent} if sys.platform == "linux" else {}


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log: IO[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the process has used so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_kib(self) -> int | None:
        """VmHWM: the process's peak resident set size so far."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def tail(self, lines: int = 25) -> str:
        """The end of the process's log, for an error message (the work directory is removed)."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


def _start(name: str, args: list[str], env: dict[str, str], port: int, log_dir: Path) -> Server:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        **child_options(),
    )
    return Server(name=name, process=process, port=port, log_path=log_path, log=log)


def case_api_env(url: str, port: int, *, log_level: str = "WARNING") -> dict[str, str]:
    """case-api's environment here: test env, no broker (in-process bus), the outbox relay on."""
    return {
        "CASE_API_DATABASE_URL": url,
        "CASE_API_PORT": str(port),
        "CASE_API_HOST": HOST,
        "CASE_API_ENV": "test",
        "CASE_API_LOG_LEVEL": log_level,
        "CASE_API_LOG_JSON": "true",
        "CASE_API_AMQP_URL": "",
        "CASE_API_OUTBOX_RELAY_ENABLED": "true",
    }


def start_case_api(url: str, log_dir: Path, *, log_level: str = "WARNING", name: str = "case-api") -> Server:
    port = free_port()
    return _start(name, ["-m", "case_api"], case_api_env(url, port, log_level=log_level), port, log_dir)


def start_agreement_api(url: str, log_dir: Path) -> Server:
    """agreement-api with plain-http loopback webhook URLs allowed (test env only): the receiver
    of the worker benchmark listens on 127.0.0.1."""
    port = free_port()
    env = {
        "AGREEMENT_API_DATABASE_URL": url,
        "AGREEMENT_API_PORT": str(port),
        "AGREEMENT_API_HOST": HOST,
        "AGREEMENT_API_ENV": "test",
        "AGREEMENT_API_LOG_LEVEL": "INFO",
        "AGREEMENT_API_LOG_JSON": "true",
        "AGREEMENT_API_AMQP_URL": "",
        "AGREEMENT_API_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
        "AGREEMENT_API_ALLOW_HTTP_WEBHOOKS": "true",
    }
    return _start("agreement-api", ["-m", "agreement_api"], env, port, log_dir)


def notify_worker_env(
    url: str, *, port: int, agreement_api: Server, case_api: Server, settings: dict[str, str]
) -> dict[str, str]:
    """The worker's environment: dispatch on, no broker (the in-process bus; the consumer plays no
    part here), INFO logs as JSON as in production, plus the benchmark's dispatch settings."""
    return {
        "NOTIFY_WORKER_DATABASE_URL": url,
        "NOTIFY_WORKER_PORT": str(port),
        "NOTIFY_WORKER_HOST": HOST,
        "NOTIFY_WORKER_ENV": "test",
        "NOTIFY_WORKER_LOG_LEVEL": "INFO",
        "NOTIFY_WORKER_LOG_JSON": "true",
        "NOTIFY_WORKER_AMQP_URL": "",
        "NOTIFY_WORKER_AGREEMENT_API_URL": agreement_api.base_url,
        "NOTIFY_WORKER_CASE_API_URL": case_api.base_url,
        "NOTIFY_WORKER_CASE_API_PUBLIC_URL": case_api.base_url,
        "NOTIFY_WORKER_DISPATCH_ENABLED": "true",
        # The receivers are http on 127.0.0.1; the worker checks every URL before each attempt.
        "NOTIFY_WORKER_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
        "NOTIFY_WORKER_ALLOW_HTTP_WEBHOOKS": "true",
        **settings,
    }


def start_notify_worker(
    url: str,
    log_dir: Path,
    *,
    name: str,
    agreement_api: Server,
    case_api: Server,
    settings: dict[str, str],
) -> Server:
    port = free_port()
    env = notify_worker_env(url, port=port, agreement_api=agreement_api, case_api=case_api, settings=settings)
    return _start(name, ["-m", "notify_worker"], env, port, log_dir)


def start_receiver(
    secrets: dict[str, str], port: int, log_dir: Path, *, delays: dict[str, float] | None = None
) -> Server:
    """benchmarks.receiver; an endpoint (path) in ``delays`` answers that many seconds late."""
    args = [
        "-m",
        "uvicorn",
        "--factory",
        "benchmarks.receiver:create_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = {"BENCH_RECEIVER_SECRETS": json.dumps(secrets), "BENCH_RECEIVER_DELAYS": json.dumps(delays or {})}
    return _start("receiver", args, env, port, log_dir)


def start_baseline(url: str, log_dir: Path) -> Server:
    port = free_port()
    args = [
        "-m",
        "uvicorn",
        "benchmarks.baseline:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return _start("baseline", args, {"BENCH_BASELINE_DSN": url}, port, log_dir)


def start_samework(url: str, log_dir: Path, region_id: uuid.UUID) -> Server:
    """benchmarks/samework.py: case-api's statements in raw asyncpg, one uvicorn process."""
    port = free_port()
    args = ["-m", "uvicorn", "benchmarks.samework:app", "--host", HOST, "--port", str(port)]
    args += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    env = {"BENCH_SAMEWORK_DSN": url, "BENCH_SAMEWORK_REGION": str(region_id)}
    return _start("same-work", args, env, port, log_dir)


async def wait_healthy(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited early:\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.name} did not become healthy in {timeout:.0f} s:\n{server.tail()}")


def run_load(workdir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One scenario in a separate load-generator process (benchmarks.loadgen)."""
    spec_path = workdir / f"spec-{uuid.uuid4().hex}.json"
    spec_path.write_text(json.dumps(spec))
    limit = spec["warmup"] + spec["duration"] + 60
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", str(spec_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
        **child_options(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def drain_outbox(url: str, log: Callable[[str], None]) -> tuple[int, float]:
    """Wait until the relay has published everything a create scenario wrote (bounded); the
    backlog it found and how long it waited."""
    backlog = int(await query_value(url, "SELECT count(*) FROM case_outbox WHERE published_at IS NULL"))
    started = time.monotonic()
    remaining = backlog
    while remaining and time.monotonic() - started < OUTBOX_DRAIN_LIMIT_S:
        await asyncio.sleep(0.25)
        remaining = int(await query_value(url, "SELECT count(*) FROM case_outbox WHERE published_at IS NULL"))
    if remaining:
        log(f"outbox still holds {remaining} unpublished events after {OUTBOX_DRAIN_LIMIT_S:.0f} s")
    return backlog, time.monotonic() - started


def coordinator_headers(orgs: Organizations) -> dict[str, str]:
    token = mint_token(
        role="coordinator",
        organization_id=str(orgs.region_id),
        subject="bench-coordinator",
        ttl_seconds=6 * 3600,
    )
    return {"Authorization": f"Bearer {token}"}


async def _post_all(
    base_url: str, path: str, headers: dict[str, str], bodies: list[dict[str, Any]], expect: int
) -> list[dict[str, Any]]:
    semaphore = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:

        async def one(body: dict[str, Any]) -> dict[str, Any]:
            async with semaphore:
                response = await client.post(path, json=body)
            if response.status_code != expect:
                raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
            result: dict[str, Any] = response.json()
            return result

        return await asyncio.gather(*(one(body) for body in bodies))


async def register_persons(url: str, count: int) -> list[str]:
    """``count`` synthetic persons without a case, straight into ``case_person`` with COPY: the API
    would take minutes for the persons of a create scenario. The identity columns hold a hash-shaped
    and a ciphertext-shaped placeholder, as :mod:`benchmarks.bulk` loads them: no identity number."""
    salt = uuid.uuid4().hex
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        (
            person_id,
            "Bench",
            f"Person {index}",
            date(1970, 1, 1) + timedelta(days=index % 15_000),
            hashlib.sha256(f"{salt}:{index}".encode()).hexdigest(),
            bulk.CIPHERTEXT_PLACEHOLDER,
            now,
            "bench-loader",
        )
        for index, person_id in enumerate(ids)
    ]
    conn = await asyncpg.connect(url)
    try:
        await bulk.copy_rows(conn, "case_person", bulk.PERSON_COLUMNS, rows)
    finally:
        await conn.close()
    return [str(person_id) for person_id in ids]


def creates_in(seconds: float) -> int:
    """How many persons a create scenario of ``seconds`` gets (:data:`CREATES_PER_SECOND`)."""
    return math.ceil(seconds * CREATES_PER_SECOND)


async def create_bodies(url: str, orgs: Organizations, count: int) -> list[dict[str, Any]]:
    """``count`` bodies for creates, each for a person of its own: a person has one open case at a
    time, so a body sent twice would be a 409. The load generator sends them with ``"once": true``,
    so a run faster than :data:`CREATES_PER_SECOND` ends early rather than repeating one."""
    return case_bodies(await register_persons(url, count), orgs)


def case_bodies(person_ids: list[str], orgs: Organizations) -> list[dict[str, Any]]:
    return [
        {"person_id": pid, "current_unit_id": str(orgs.unit_id), "planning_basis": "final_judgment"}
        for pid in person_ids
    ]


async def create_cases(server: Server, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[str]:
    created = await _post_all(server.base_url, "/api/v1/cases", headers, bodies, 201)
    return [case["id"] for case in created]


async def create_baseline_items(server: Server, bodies: list[dict[str, Any]]) -> list[str]:
    created = await _post_all(server.base_url, "/items", {}, bodies, 201)
    return [item["id"] for item in created]
