"""One signed webhook POST with three HTTP clients: what each costs the sending process in CPU.

The suite's part (:func:`run`) starts the receiver (benchmarks.receiver, which verifies every
signature with the reference ``standardwebhooks`` package) and then the POSTs in a process of their
own, ``python -m benchmarks.httpclients SPEC.json``, so its ``time.process_time()`` counts them and
nothing else. That process runs uvloop, as uvicorn picks it for the worker, and sends realistic notice
bodies (``sender.payload``/``sender.encode``), 64 in flight and then the worker's default 16, with
each client in turn:

- *aiohttp, the worker's sender*: ``WebhookSender.send`` as the worker calls it (the URL check,
  signing, aiohttp pinned by ``shared.ssrf.PinnedResolver``);
- *httpx, checked and pinned*: the same check and signing through httpx and
  ``shared.ssrf.PinnedTransport``, as the worker sent before aiohttp;
- *httpx, plain*: an ``httpx.AsyncClient`` with the same signing and headers, no URL check and no
  pinning, to tell httpx's own cost from theirs.

The URL names its host (``localhost``), so the check resolves it before every POST as the worker
does for a real endpoint, and the pinned clients' connections go through their pins. Each client is
warmed up before each run; the runs of the clients take turns, so a busy moment of the shared
machine falls on all of them alike, and the report gives each figure's median over the runs.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import uvloop

from benchmarks import api, worker
from notify_worker.clients import SigningKey
from notify_worker.deliveries import sender
from notify_worker.notices.models import AgreementSource, NoticeKind, NotifyNotice, RecipientKind
from shared import ssrf, webhooks
from shared.settings import REPO_ROOT

CONNECT_TIMEOUT_S = 5.0  # the worker's default delivery timeouts
READ_TIMEOUT_S = 10.0
PUBLIC_URL = "https://case-api.example.org"  # the detail link in the bodies


@dataclass(frozen=True)
class HttpClientsProfile:
    posts: int  # POSTs in each timed run of each client
    runs: int  # timed runs of each client; the report gives the median
    warmup: int  # POSTs before each run, not timed (connections opened, caches filled)
    # POSTs in flight: the 64, and the worker's default NOTIFY_WORKER_DELIVERY_CONCURRENCY.
    concurrencies: tuple[int, ...] = (64, 16)
    endpoints: int = 8  # receiver paths, each with a secret of its own


FULL_HTTPCLIENTS = HttpClientsProfile(posts=5_000, runs=3, warmup=500)
QUICK_HTTPCLIENTS = HttpClientsProfile(posts=100, runs=1, warmup=64)

# Each client's key and its row label, in the order of the report's table.
CLIENTS: tuple[tuple[str, str], ...] = (
    ("worker", "aiohttp, the worker's WebhookSender"),
    ("pinned", "httpx, checked and pinned"),
    ("httpx", "httpx, plain AsyncClient"),
)
LABELS = dict(CLIENTS)


@dataclass
class ClientRun:
    """One timed run of one client."""

    posts: int
    failed: int  # POSTs without a 2xx answer (errors included)
    verified: int  # of this run's notices, how many the receiver verified
    rejected: int  # requests the receiver refused for a bad signature during the run
    seconds: float
    cpu_s: float  # process_time() of the sending process over the run
    p50_ms: float
    p99_ms: float
    connections: int  # TCP connections the client opened during the run
    receiver_cpu_s: float

    @property
    def rps(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_post(self) -> float:
        return self.cpu_s * 1000 / self.posts if self.posts else 0.0

    @property
    def client_busy(self) -> float:
        """The sending process's CPU over the run, as a share of one core."""
        return self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def receiver_busy(self) -> float:
        """The receiver's CPU over the run, as a share of one core."""
        return self.receiver_cpu_s / self.seconds if self.seconds else 0.0


@dataclass
class ClientResult:
    key: str
    label: str
    concurrency: int
    runs: list[ClientRun]

    def median(self, figure: Callable[[ClientRun], float]) -> float:
        return statistics.median(figure(run) for run in self.runs) if self.runs else 0.0

    @property
    def all_verified(self) -> bool:
        return all(r.failed == 0 and r.rejected == 0 and r.verified == r.posts for r in self.runs)


@dataclass
class HttpClientsResult:
    profile: HttpClientsProfile
    clients: list[ClientResult]
    versions: dict[str, str]
    loop: str
    body_bytes: int  # the size of one notice body
    elapsed_s: float = 0.0


# --- the suite's part: the receiver, then the sending process ----------------------------------------


async def run(profile: HttpClientsProfile, workdir: Path, log: Callable[[str], None]) -> HttpClientsResult:
    started = time.monotonic()
    secrets = {f"/hook/{index}": webhooks.new_hmac_secret() for index in range(profile.endpoints)}
    receiver = api.start_receiver(secrets, api.free_port(), workdir)
    try:
        await api.wait_healthy(receiver)
        output = workdir / f"httpclients-{uuid.uuid4().hex[:8]}.json"
        spec = {
            "profile": profile.__dict__,
            "receiver_url": f"http://localhost:{receiver.port}",
            "receiver_pid": receiver.pid,
            "secrets": secrets,
            "output": str(output),
        }
        spec_path = workdir / "httpclients.spec.json"
        spec_path.write_text(json.dumps(spec))
        log(
            f"HTTP clients: {profile.runs} x {profile.posts:,} signed POSTs each, "
            f"{' and '.join(map(str, profile.concurrencies))} at a time (benchmarks.httpclients)"
        )
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.httpclients",
            str(spec_path),
            cwd=REPO_ROOT,
            **api.child_options(),
        )
        try:
            code = await child.wait()
        finally:
            if child.returncode is None:
                child.terminate()
                await child.wait()
        if code != 0:
            raise RuntimeError(f"benchmarks.httpclients exited with {code}; receiver:\n{receiver.tail()}")
        if receiver.process.poll() is not None:
            raise RuntimeError(f"the receiver died during the run:\n{receiver.tail()}")
        result = from_json(json.loads(output.read_text()))
    finally:
        await asyncio.to_thread(receiver.stop)
    result.elapsed_s = time.monotonic() - started
    return result


def profile_from(data: dict[str, Any]) -> HttpClientsProfile:
    return HttpClientsProfile(**{**data, "concurrencies": tuple(data["concurrencies"])})


def from_json(data: dict[str, Any]) -> HttpClientsResult:
    return HttpClientsResult(
        profile=profile_from(data["profile"]),
        clients=[
            ClientResult(
                key=c["key"],
                label=c["label"],
                concurrency=c["concurrency"],
                runs=[ClientRun(**r) for r in c["runs"]],
            )
            for c in data["clients"]
        ],
        versions=data["versions"],
        loop=data["loop"],
        body_bytes=data["body_bytes"],
    )


# --- the clients ----------------------------------------------------------------------------------

Send = Callable[[str, str, bytes, Sequence[SigningKey]], Awaitable[bool]]


def signed_headers(webhook_id: str, body: bytes, keys: Sequence[SigningKey]) -> dict[str, str]:
    """The headers ``WebhookSender.send`` sends: the Standard Webhooks three, content type, agent."""
    timestamp = int(time.time())
    signature = webhooks.sign(
        webhook_id, timestamp, body, [webhooks.SigningKey(kind=key.kind, secret=key.secret) for key in keys]
    )
    return {
        **webhooks.headers(webhook_id, timestamp, signature),
        "content-type": "application/json",
        "user-agent": sender.USER_AGENT,
    }


class WorkerClient:
    """(a) The worker's own sender, built as notify_worker.main builds it."""

    def __init__(self, policy: ssrf.UrlPolicy) -> None:
        self._sender = sender.WebhookSender(
            connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, policy=policy
        )

    async def send(self, url: str, webhook_id: str, body: bytes, keys: Sequence[SigningKey]) -> bool:
        return (await self._sender.send(url, webhook_id, body, keys)).succeeded

    async def aclose(self) -> None:
        await self._sender.aclose()


def _httpx_timeout() -> httpx.Timeout:
    """The sender's timeouts, as httpx takes them."""
    return httpx.Timeout(
        connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S, write=READ_TIMEOUT_S, pool=CONNECT_TIMEOUT_S
    )


class PlainHttpxClient:
    """(b) httpx with the sender's timeouts, signing and headers; no URL check, no pinning."""

    def __init__(self) -> None:
        self._http = httpx.AsyncClient(timeout=_httpx_timeout(), follow_redirects=False, trust_env=False)

    async def send(self, url: str, webhook_id: str, body: bytes, keys: Sequence[SigningKey]) -> bool:
        headers = signed_headers(webhook_id, body, keys)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def aclose(self) -> None:
        await self._http.aclose()


class PinnedHttpxClient:
    """(b) httpx with the sender's URL check, signing and headers through the pinned transport of
    ``shared/ssrf.py``: the worker's sender before it moved to aiohttp (agreement-api's test event
    still sends this way)."""

    def __init__(self, policy: ssrf.UrlPolicy) -> None:
        self.policy = policy
        self._http = ssrf.pinned_client(timeout=_httpx_timeout())

    async def send(self, url: str, webhook_id: str, body: bytes, keys: Sequence[SigningKey]) -> bool:
        try:
            addresses = await ssrf.check_url(url, self.policy, resolve_timeout=CONNECT_TIMEOUT_S)
        except ssrf.UrlRefused:
            return False
        headers = signed_headers(webhook_id, body, keys)
        try:
            with ssrf.pinned(url, addresses):
                response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def aclose(self) -> None:
        await self._http.aclose()


# --- the sending process --------------------------------------------------------------------------


class CountingLoop(uvloop.Loop):
    """uvloop, counting the TCP connections opened (httpx's anyio backend and aiohttp both open
    theirs with ``loop.create_connection``)."""

    connections = 0

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        CountingLoop.connections += 1
        return await super().create_connection(*args, **kwargs)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / api.CLOCK_TICKS


def notice_template(recipient: uuid.UUID) -> dict[str, Any]:
    """The body of a milestone notice as the worker builds it (its ``notice_id`` is replaced per POST)."""
    notice = NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=recipient,
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=30,
        release_date=date(2027, 3, 1),
        due_at=datetime.now(UTC),
        receipt_deadline_days=5,
        release_date_certainty="probable",
        coordinator_contact={
            "name": "Kari Nordmann",
            "phone": "+47 22 00 00 00",
            "email": "kari.nordmann@kriminalomsorgen.example.no",
            "organization_id": str(uuid.uuid4()),
        },
    )
    return sender.payload(notice, case_api_public_url=PUBLIC_URL)


Job = tuple[str, str, bytes, Sequence[SigningKey]]


class Bench:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.profile = profile_from(spec["profile"])
        self.base_url: str = spec["receiver_url"]
        self.receiver_pid: int = spec["receiver_pid"]
        self.endpoints = [
            (path, [SigningKey(id=uuid.uuid4(), kind="hmac", secret=secret)], notice_template(uuid.uuid4()))
            for path, secret in spec["secrets"].items()
        ]
        self.results = httpx.AsyncClient(base_url=self.base_url, timeout=60.0, trust_env=False)

    def jobs(self, count: int) -> tuple[list[Job], set[str]]:
        """``count`` POSTs over the endpoints in turn, each a notice of its own; built before the clock."""
        jobs: list[Job] = []
        ids: set[str] = set()
        for index in range(count):
            path, keys, template = self.endpoints[index % len(self.endpoints)]
            notice_id = str(uuid.uuid4())
            ids.add(notice_id)
            body = sender.encode({**template, "notice_id": notice_id})
            jobs.append((self.base_url + path, str(uuid.uuid4()), body, keys))
        return jobs, ids

    async def drive(self, send: Send, jobs: list[Job], concurrency: int) -> tuple[list[float], int]:
        """Every job sent, ``concurrency`` at a time; each POST's latency (ms) and the failures."""
        latencies: list[float] = []
        failed = 0
        queue = iter(jobs)

        async def lane() -> None:
            nonlocal failed
            for url, webhook_id, body, keys in queue:
                begun = time.perf_counter()
                ok = await send(url, webhook_id, body, keys)
                latencies.append((time.perf_counter() - begun) * 1000)
                failed += not ok

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return latencies, failed

    async def received(self) -> tuple[set[str], int]:
        """The notice ids the receiver verified so far, and how many requests it refused."""
        data = (await self.results.get("/results")).json()
        return {notice_id for notice_id, _, _ in data["arrivals"]}, int(data["rejected"])

    async def timed(self, send: Send, concurrency: int) -> ClientRun:
        warm, _ = self.jobs(self.profile.warmup)
        await self.drive(send, warm, concurrency)
        jobs, ids = self.jobs(self.profile.posts)
        _, rejected_before = await self.received()
        gc.collect()  # the garbage of what came before is not billed to this run
        connections_before = CountingLoop.connections
        receiver_before = cpu_seconds(self.receiver_pid)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        latencies, failed = await self.drive(send, jobs, concurrency)
        seconds, cpu_s = time.perf_counter() - wall_before, time.process_time() - cpu_before
        receiver_cpu_s = cpu_seconds(self.receiver_pid) - receiver_before
        connections = CountingLoop.connections - connections_before
        arrived, rejected_after = await self.received()
        return ClientRun(
            posts=len(jobs),
            failed=failed,
            verified=len(ids & arrived),
            rejected=rejected_after - rejected_before,
            seconds=seconds,
            cpu_s=cpu_s,
            p50_ms=worker.percentile(latencies, 0.50),
            p99_ms=worker.percentile(latencies, 0.99),
            connections=connections,
            receiver_cpu_s=receiver_cpu_s,
        )


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    bench = Bench(spec)
    # As the worker's settings allow in the benchmarks: plain http to a loopback address.
    policy = ssrf.UrlPolicy(allow_private=True, allow_http=True)
    runs: dict[tuple[str, int], list[ClientRun]] = {}
    try:
        for concurrency in bench.profile.concurrencies:
            # Fresh clients for each concurrency: no pool carries the connections of the one before.
            clients: dict[str, WorkerClient | PinnedHttpxClient | PlainHttpxClient] = {
                "worker": WorkerClient(policy),
                "pinned": PinnedHttpxClient(policy),
                "httpx": PlainHttpxClient(),
            }
            try:
                for round_, (key, label) in itertools.product(range(bench.profile.runs), CLIENTS):
                    result = await bench.timed(clients[key].send, concurrency)
                    runs.setdefault((key, concurrency), []).append(result)
                    log(
                        f"  {concurrency} in flight, run {round_ + 1}, {label}: {result.rps:,.0f} POST/s, "
                        f"{result.cpu_ms_per_post:.3f} CPU ms/POST, p50 {result.p50_ms:.1f} ms, p99 "
                        f"{result.p99_ms:.1f} ms, {result.verified}/{result.posts} verified, "
                        f"{result.rejected} refused, {result.failed} failed, "
                        f"{result.connections} connections opened"
                    )
            finally:
                for client in clients.values():
                    await client.aclose()
    finally:
        await bench.results.aclose()
    versions = {name: metadata.version(name) for name in ("httpx", "httpcore", "anyio", "aiohttp", "uvloop")}
    return {
        "profile": bench.profile.__dict__,
        "clients": [
            {
                "key": key,
                "label": LABELS[key],
                "concurrency": concurrency,
                "runs": [r.__dict__ for r in found],
            }
            for (key, concurrency), found in runs.items()
        ],
        "versions": versions,
        "body_bytes": len(bench.jobs(1)[0][0][2]),
        "loop": f"uvloop {metadata.version('uvloop')}"
        if isinstance(loop, uvloop.Loop)
        else type(loop).__name__,
    }


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # uvloop, as uvicorn's "auto" loop picks it for the worker.
    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        result = runner.run(measure(spec))
    Path(spec["output"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
