"""Worker benchmark: signed deliveries per second, due-to-delivered lag, and no attempt made twice.

Real processes only: agreement-api (the recipients' organizations and webhook endpoints are
registered through its API; the worker asks it for endpoints and signing keys), case-api (for the
worker's per-notice questions), one or two ``python -m notify_worker`` processes (dispatch on, no
broker), and a receiver (benchmarks.receiver) that verifies every signature with the reference
``standardwebhooks`` package and records when each notice arrived.

A batch of scheduled notices is COPYed straight into ``notify_notice``, all due at the same moment
a little after the insert, spread over several recipients (municipalities) with one endpoint each.
From that moment on the clock runs: lag is the receiver's arrival time minus ``due_at``;
throughput is the batch size over the time from ``due_at`` to the last arrival. The worker's own
figures (notices by state, attempts per delivery) are read from the database afterwards.

Runs, in order: a short sweep of settings (batch size, delivery concurrency, pool size: how much
work a round takes and how much of it overlaps); the headline run with one worker at the best settings;
the same with two workers (to prove no notice is attempted twice); one run with py-spy attached to
the worker, agreement-api and case-api (CPU profiles); one run of the real worker application
under benchmarks.stages (wall time per stage).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from benchmarks import api, bulk, profiling
from shared.auth import mint_token
from shared.municipalities import all_municipalities

INTERVAL_S = 0.25  # NOTIFY_WORKER_DISPATCH_INTERVAL_SECONDS: an idle worker looks again this often
LEAD_S = 1.0  # notices are inserted this long before they all fall due
DELIVERIES_TARGET = 500.0
LAG_P99_TARGET_S = 2.0
PAIR_WITHIN_S = 10.0  # two workers deliver every one of the notices due at once within this
DEFAULT_BATCH_SIZE = 20


@dataclass(frozen=True)
class Tuning:
    """Settings the sweep tries (environment only; a setting the worker does not know is ignored)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int | None = None  # NOTIFY_WORKER_DELIVERY_CONCURRENCY; None: the worker's default
    pool: int | None = None  # NOTIFY_WORKER_DATABASE_POOL_SIZE; None: the default
    # NOTIFY_WORKER_DELIVERY_ENDPOINT_CONCURRENCY: attempts in flight per endpoint; None: the default
    per_endpoint: int | None = None

    @property
    def label(self) -> str:
        parts = [f"batch {self.batch_size}"]
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.pool is not None:
            parts.append(f"pool {self.pool}")
        if self.per_endpoint is not None:
            parts.append(f"{self.per_endpoint} per endpoint")
        return ", ".join(parts)

    def env(self) -> dict[str, str]:
        settings = {
            "NOTIFY_WORKER_DISPATCH_BATCH_SIZE": str(self.batch_size),
            "NOTIFY_WORKER_DISPATCH_INTERVAL_SECONDS": str(INTERVAL_S),
        }
        if self.concurrency is not None:
            settings["NOTIFY_WORKER_DELIVERY_CONCURRENCY"] = str(self.concurrency)
        if self.pool is not None:
            settings["NOTIFY_WORKER_DATABASE_POOL_SIZE"] = str(self.pool)
        if self.per_endpoint is not None:
            settings["NOTIFY_WORKER_DELIVERY_ENDPOINT_CONCURRENCY"] = str(self.per_endpoint)
        return settings


DEFAULTS = Tuning()


@dataclass(frozen=True)
class WorkerProfile:
    notices: int  # due at once for one worker: throughput and lag
    pair_notices: int  # due at once for two workers: nothing attempted twice
    profile_notices: int  # the py-spy run
    profile_seconds: int
    stage_notices: int  # the benchmarks.stages run
    sweep: tuple[Tuning, ...]  # settings tried before the headline run
    sweep_notices: int
    recipients: int = 8
    # False: py-spy samples the headline run itself (quick mode: one run fewer; the profiler's
    # own CPU then competes with the run, so the full run profiles a run of its own).
    profile_separately: bool = True


FULL_WORKER = WorkerProfile(
    notices=10_000,
    pair_notices=10_000,
    profile_notices=2_000,
    profile_seconds=15,
    stage_notices=1_000,
    sweep=(
        DEFAULTS,
        Tuning(batch_size=100),
        Tuning(batch_size=500, concurrency=64, pool=40),
        Tuning(batch_size=500, concurrency=64, pool=40, per_endpoint=16),
        Tuning(batch_size=500, concurrency=128, pool=40, per_endpoint=16),
    ),
    sweep_notices=2_000,
)
QUICK_WORKER = WorkerProfile(
    notices=40,
    pair_notices=40,
    profile_notices=0,
    profile_seconds=1,
    stage_notices=20,
    sweep=(),
    sweep_notices=0,
    profile_separately=False,
)


@dataclass
class BatchResult:
    label: str
    workers: int
    tuning: Tuning
    notices: int
    states: dict[str, int]
    posts: int
    notices_received: int
    notices_posted_twice: int
    repeats_with_one_webhook_id: int  # the same delivery sent again (not a second delivery)
    rejected: int
    deliveries: int
    attempts: int
    failed_attempts: int
    deliveries_attempted_twice: int
    seconds: float  # due_at to the last arrival
    wall_s: float  # due_at to the moment every notice had ended: what the CPU shares are of
    throughput: float  # notices received / seconds
    steady_rate: float  # between the first and the last arrival
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    timed_out: bool
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core over the run
    machine_cpu: float = 0.0  # share of all cores
    rss_kib: dict[str, int | None] = field(default_factory=dict)
    profiles: list[profiling.Summary] = field(default_factory=list)
    # Per worker process: the successful attempts it recorded (its own delivery-outcome metric), and
    # the notices it claimed and planned (``notify_notice.claimed_by``, the worker's host:pid).
    sent_by: dict[str, int] = field(default_factory=dict)
    claimed_by: dict[str, int] = field(default_factory=dict)
    busy: Busy | None = None  # what else used the CPU over the run

    @property
    def delivered(self) -> int:
        return self.states.get("delivered", 0)

    def cpu_ms_per_notice(self, name: str) -> float:
        """CPU milliseconds the named process spent per notice of this run."""
        return self.cpu.get(name, 0.0) * self.wall_s / max(self.notices, 1) * 1000


@dataclass
class WorkerResult:
    profile: WorkerProfile
    sweep: list[BatchResult]
    best: Tuning
    single: BatchResult
    pair: BatchResult
    profiled: BatchResult
    stages: dict[str, Any]
    rss_kib: dict[str, int | None]
    elapsed_s: float


@dataclass
class Rig:
    url: str
    workdir: Path
    agreement: api.Server
    case_api: api.Server
    receiver: api.Server
    recipients: list[uuid.UUID]
    case_ids: list[uuid.UUID]
    log: Callable[[str], None]
    batches: int = 0
    peak: dict[str, int | None] = field(default_factory=dict)

    def next_batch(self) -> int:
        self.batches += 1
        return 100 + self.batches  # stored as milestone_days: never one of the real milestones

    def note_peak(self, server: api.Server) -> None:
        value = server.peak_rss_kib()
        if value is not None:
            self.peak[server.name] = max(self.peak.get(server.name) or 0, value)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    total = sum(fields[:8])
    return total - idle, total


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = (float(value) for value in Path("/proc/loadavg").read_text().split()[:3])
    return one, five, fifteen


@dataclass(frozen=True)
class Busy:
    """What else used the CPU during a run (shares of one core), and the load average at its end."""

    postgres: float  # PostgreSQL's processes, this part's databases and anyone else's
    others: float  # the rest of the machine's busy CPU, neither this suite's nor PostgreSQL's
    loadavg_1min: float  # counts this part's own runnable processes too


def cpu_snapshot() -> dict[int, tuple[int, str, float]]:
    """Every process: (parent pid, command name, CPU seconds so far), from /proc."""
    found: dict[int, tuple[int, str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, tail = stat.read_text().rpartition(")")
        except OSError:
            continue
        fields = tail.split()
        cpu = (int(fields[11]) + int(fields[12])) / api.CLOCK_TICKS
        found[int(stat.parent.name)] = (int(fields[1]), head.partition("(")[2], cpu)
    return found


def own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (they were waited for)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class Watch:
    """From here to :meth:`stop`: the machine's busy CPU (``/proc/stat``) less this suite's (its
    processes alive at the end, and those that ended meanwhile) and PostgreSQL's; what is left is
    other work on the machine. Stop it before the servers stop: a PostgreSQL connection that ended
    meanwhile would be counted as other work."""

    def __init__(self) -> None:
        self.before = cpu_snapshot()
        self.own = own_cpu()
        self.busy = machine_busy()
        self.started = time.monotonic()

    def stop(self) -> Busy:
        after = cpu_snapshot()
        own = own_cpu() - self.own
        busy = machine_busy()
        wall = max(time.monotonic() - self.started, 1e-9)
        machine = (busy[0] - self.busy[0]) / api.CLOCK_TICKS  # busy CPU seconds, all cores
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in after.items():
            children.setdefault(parent, []).append(pid)
        ours, stack = set(), list(children.get(os.getpid(), []))
        while stack:  # the suite's descendants: servers, workers, nginx, the load generator
            pid = stack.pop()
            ours.add(pid)
            stack.extend(children.get(pid, []))
        postgres = 0.0
        for pid, (_, name, cpu) in after.items():
            used = cpu - self.before[pid][2] if pid in self.before else cpu
            if pid in ours:
                own += used
            elif name == "postgres":
                postgres += used
        others = max(0.0, machine - own - postgres)
        return Busy(postgres=postgres / wall, others=others / wall, loadavg_1min=loadavg()[0])


def scrape(server: api.Server) -> list[Sample]:
    """The samples of a process's Prometheus ``/metrics``."""
    response = httpx.get(f"{server.base_url}/metrics", timeout=10.0)
    response.raise_for_status()
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def succeeded_attempts(server: api.Server) -> int:
    """Attempts a worker process recorded as successful, from its own delivery-outcome counter
    (counted in the process that recorded the attempt, so it tells the workers apart)."""
    return round(
        sum(
            sample.value
            for sample in scrape(server)
            if sample.name == "tilbake_notify_delivery_outcomes_total"
            and sample.labels.get("state") == "succeeded"
        )
    )


def endpoint_path(index: int) -> str:
    """The receiver's path for the endpoint of the ``index``-th recipient."""
    return f"/hook/{index}"


async def register_recipients(
    agreement: api.Server, receiver_port: int, count: int
) -> tuple[list[uuid.UUID], dict[str, str]]:
    """Municipalities with one webhook endpoint each, through agreement-api's API as an admin;
    returns their ids and the receiver's path -> secret map."""
    headers = {"Authorization": f"Bearer {mint_token(role='admin', subject='bench-admin')}"}
    numbers = [municipality.kommunenummer for municipality in all_municipalities()][:count]
    ids: list[uuid.UUID] = []
    secrets: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=agreement.base_url, headers=headers, timeout=30.0) as client:
        for index, number in enumerate(numbers):
            response = await client.post(
                "/api/v1/organizations",
                json={"type": "municipality", "name": f"Benchmark kommune {index}", "kommunenummer": number},
            )
            if response.status_code != 201:
                raise RuntimeError(f"organization: {response.status_code} {response.text[:300]}")
            organization_id = response.json()["id"]
            path = endpoint_path(index)
            response = await client.post(
                f"/api/v1/organizations/{organization_id}/webhooks",
                json={
                    "url": f"http://{api.HOST}:{receiver_port}{path}",
                    "description": "benchmark receiver",
                    "rate_limit_per_minute": 6000,
                    "key_kind": "hmac",
                },
            )
            if response.status_code != 201:
                raise RuntimeError(f"webhook endpoint: {response.status_code} {response.text[:300]}")
            ids.append(uuid.UUID(organization_id))
            secrets[path] = response.json()["key"]["secret"]
    return ids, secrets


async def _insert_batch(rig: Rig, count: int, batch: int, due: float) -> None:
    conn = await asyncpg.connect(rig.url)
    try:
        await bulk.due_notices(
            conn,
            rig.case_ids[:count],
            recipients=rig.recipients,
            due_at=datetime.fromtimestamp(due, UTC),
            batch=batch,
        )
    finally:
        await conn.close()


async def _finished(rig: Rig, batch: int) -> int:
    conn = await asyncpg.connect(rig.url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notify_notice WHERE milestone_days = $1 AND state IN ('delivered', 'dead')",
                batch,
            )
        )
    finally:
        await conn.close()


async def _database_counts(rig: Rig, batch: int) -> dict[str, Any]:
    conn = await asyncpg.connect(rig.url)
    try:
        states = {
            row["state"]: int(row["n"])
            for row in await conn.fetch(
                "SELECT state, count(*) AS n FROM notify_notice WHERE milestone_days = $1 GROUP BY state",
                batch,
            )
        }
        deliveries = int(
            await conn.fetchval(
                "SELECT count(*) FROM notify_delivery d JOIN notify_notice n ON n.id = d.notice_id "
                "WHERE n.milestone_days = $1",
                batch,
            )
        )
        attempts = await conn.fetchrow(
            "SELECT count(*) AS attempts, count(*) FILTER (WHERE a.error_class IS NOT NULL) AS failed "
            "FROM notify_attempt a JOIN notify_delivery d ON d.id = a.delivery_id "
            "JOIN notify_notice n ON n.id = d.notice_id WHERE n.milestone_days = $1",
            batch,
        )
        twice = int(
            await conn.fetchval(
                "SELECT count(*) FROM (SELECT a.delivery_id FROM notify_attempt a "
                "JOIN notify_delivery d ON d.id = a.delivery_id JOIN notify_notice n ON n.id = d.notice_id "
                "WHERE n.milestone_days = $1 GROUP BY a.delivery_id HAVING count(*) > 1) AS repeated",
                batch,
            )
        )
        ids = [
            str(row[0])
            for row in await conn.fetch("SELECT id FROM notify_notice WHERE milestone_days = $1", batch)
        ]
        claimed = {
            str(row["claimed_by"]): int(row["n"])
            for row in await conn.fetch(
                "SELECT claimed_by, count(*) AS n FROM notify_notice WHERE milestone_days = $1 "
                "GROUP BY claimed_by",
                batch,
            )
        }
    finally:
        await conn.close()
    return {
        "claimed": claimed,
        "states": states,
        "deliveries": deliveries,
        "attempts": int(attempts["attempts"]),
        "failed_attempts": int(attempts["failed"]),
        "twice": twice,
        "ids": ids,
    }


async def received(rig: Rig) -> tuple[list[tuple[str, str, float]], int]:
    """What the receiver recorded so far: (notice id, webhook-id, arrival time) each, and how many
    requests it refused."""
    async with httpx.AsyncClient(base_url=rig.receiver.base_url, timeout=30.0) as client:
        body = (await client.get("/results")).json()
    arrivals = [
        (str(notice_id), str(webhook_id), float(at)) for notice_id, webhook_id, at in body["arrivals"]
    ]
    return arrivals, int(body["rejected"])


async def run_batch(
    rig: Rig,
    label: str,
    *,
    workers: int,
    count: int,
    tuning: Tuning,
    profile_seconds: int = 0,
) -> BatchResult:
    """``count`` notices due at once, delivered by ``workers`` worker processes."""
    batch = rig.next_batch()
    settings = tuning.env()
    rig.log(f"{label}: {count:,} notices due at once, {workers} worker(s), {tuning.label}")
    processes = [
        api.start_notify_worker(
            rig.url,
            rig.workdir,
            name=f"notify-worker-{index + 1}",
            agreement_api=rig.agreement,
            case_api=rig.case_api,
            settings=settings,
        )
        for index in range(workers)
    ]
    watched = [*processes, rig.agreement, rig.case_api, rig.receiver]
    recordings: list[profiling.Recording] = []
    _, rejected_before = await received(rig)
    try:
        await asyncio.gather(*(api.wait_healthy(process) for process in processes))
        due = time.time() + LEAD_S
        await _insert_batch(rig, count, batch, due)
        await asyncio.sleep(max(0.0, due - time.time()))
        cpu_before = {server.name: server.cpu_seconds() or 0.0 for server in watched}
        busy_before = machine_busy()
        watch = Watch()
        if profile_seconds:
            for server in (processes[0], rig.agreement, rig.case_api):
                output = rig.workdir / f"profile-{server.name}-{batch}.txt"
                recordings.append(profiling.record(server.name, server.pid, output, seconds=profile_seconds))
        deadline = time.monotonic() + 60 + count / 10
        timed_out = True
        while time.monotonic() < deadline:
            if await _finished(rig, batch) >= count:
                timed_out = False
                break
            for process in processes:
                if process.process.poll() is not None:
                    raise RuntimeError(f"{process.name} died:\n{process.tail()}")
            await asyncio.sleep(0.2)
        ended = time.time()
        busy_after = machine_busy()
        busy = watch.stop()
        wall = max(ended - due, 1e-9)
        cpu = {
            server.name: ((server.cpu_seconds() or 0.0) - cpu_before[server.name]) / wall
            for server in watched
        }
        machine_cpu = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1e-9)
        for recording in recordings:
            await asyncio.to_thread(recording.wait, profile_seconds + 30)
        rss = {server.name: server.peak_rss_kib() for server in watched}
        for server in watched:
            rig.note_peak(server)
        sent_by = {
            process.name: await asyncio.to_thread(succeeded_attempts, process) for process in processes
        }
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
    counts = await _database_counts(rig, batch)
    # claimed_by is the worker's "host:pid": back to the process names.
    by_pid = {str(process.pid): process.name for process in processes}
    claimed_by = {
        by_pid.get(claimant.rpartition(":")[2], claimant): n for claimant, n in counts["claimed"].items()
    }
    arrivals, rejected = await received(rig)
    ours = set(counts["ids"])
    first_arrival: dict[str, float] = {}
    posts: dict[str, int] = {}
    webhook_ids: dict[str, set[str]] = {}
    for notice_id, webhook_id, arrived in arrivals:
        if notice_id not in ours:
            continue
        posts[notice_id] = posts.get(notice_id, 0) + 1
        webhook_ids.setdefault(notice_id, set()).add(webhook_id)
        first_arrival[notice_id] = min(arrived, first_arrival.get(notice_id, arrived))
    repeated = [notice_id for notice_id, n in posts.items() if n > 1]
    if repeated:
        # Evidence for whoever looks into it: the work directory goes when the suite ends.
        kept = Path(tempfile.mkdtemp(prefix="tilbake-bench-repeated-"))
        for process in processes:
            shutil.copy(process.log_path, kept / process.log_path.name)
        (kept / "repeated.json").write_text(
            json.dumps(
                {
                    notice_id: {"posts": posts[notice_id], "webhook_ids": sorted(webhook_ids[notice_id])}
                    for notice_id in repeated
                },
                indent=2,
            )
        )
        rig.log(f"  {len(repeated)} notices were POSTed more than once; worker logs kept in {kept}")
    lags = [arrived - due for arrived in first_arrival.values()]
    times = sorted(first_arrival.values())
    seconds = (times[-1] - due) if times else wall
    result = BatchResult(
        label=label,
        workers=workers,
        tuning=tuning,
        notices=count,
        states=counts["states"],
        posts=sum(posts.values()),
        notices_received=len(first_arrival),
        notices_posted_twice=len(repeated),
        repeats_with_one_webhook_id=sum(1 for notice_id in repeated if len(webhook_ids[notice_id]) == 1),
        rejected=rejected - rejected_before,
        deliveries=counts["deliveries"],
        attempts=counts["attempts"],
        failed_attempts=counts["failed_attempts"],
        deliveries_attempted_twice=counts["twice"],
        seconds=seconds,
        wall_s=wall,
        throughput=len(first_arrival) / seconds if seconds > 0 else 0.0,
        steady_rate=(len(times) - 1) / (times[-1] - times[0])
        if len(times) > 1 and times[-1] > times[0]
        else 0.0,
        lag_p50_s=percentile(lags, 0.50),
        lag_p99_s=percentile(lags, 0.99),
        lag_max_s=max(lags) if lags else 0.0,
        timed_out=timed_out,
        cpu=cpu,
        machine_cpu=machine_cpu,
        rss_kib=rss,
        profiles=[profiling.summarize(recording) for recording in recordings],
        sent_by=sent_by,
        claimed_by=claimed_by,
        busy=busy,
    )
    rig.log(
        f"  {result.throughput:.0f} deliveries/s (steady {result.steady_rate:.0f}/s), lag p50 "
        f"{result.lag_p50_s:.2f} s p99 {result.lag_p99_s:.2f} s, {result.notices_received}/{count} received, "
        f"{result.notices_posted_twice} posted twice, {result.deliveries_attempted_twice} attempted twice, "
        f"{result.rejected} rejected" + (" (TIMED OUT)" if timed_out else "")
    )
    return result


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """A Python child process of this interpreter, its output to ``log_path``."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=api.REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            **api.child_options(),
        )


async def run_stages(rig: Rig, *, count: int, tuning: Tuning) -> dict[str, Any]:
    """The real worker application under benchmarks.stages: wall time per stage."""
    batch = rig.next_batch()
    rig.log(f"stage timings: {count:,} notices, the worker application in benchmarks.stages")
    env = api.notify_worker_env(
        rig.url,
        port=api.free_port(),
        agreement_api=rig.agreement,
        case_api=rig.case_api,
        settings=tuning.env(),
    )
    tag = uuid.uuid4().hex[:8]
    deadline_s = 60 + count / 10
    ready = rig.workdir / f"stages-{tag}.ready"
    due_file = rig.workdir / f"stages-{tag}.due"
    output = rig.workdir / f"stages-{tag}.json"
    spec: dict[str, Any] = {
        "env": env,
        "database_url": rig.url,
        "notices": count,
        "batch": batch,
        "deadline_s": deadline_s,
        "ready_file": str(ready),
        "due_file": str(due_file),
        "output": str(output),
    }
    spec_path = rig.workdir / f"stages-{tag}.spec.json"
    spec_path.write_text(json.dumps(spec))
    log_path = rig.workdir / f"stages-{tag}.log"
    process = _spawn(["-m", "benchmarks.stages", str(spec_path)], log_path)
    try:
        waited = time.monotonic() + 60
        while not await asyncio.to_thread(ready.exists):
            if process.poll() is not None or time.monotonic() > waited:
                raise RuntimeError(f"the stage harness did not start:\n{api.log_tail(log_path)}")
            await asyncio.sleep(0.1)
        due = time.time() + 1.0
        await _insert_batch(rig, count, batch, due)
        await asyncio.to_thread(due_file.write_text, repr(due))
        await asyncio.to_thread(process.wait, deadline_s + 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0 or not await asyncio.to_thread(output.exists):
        raise RuntimeError(f"the stage harness failed:\n{api.log_tail(log_path)}")
    result: dict[str, Any] = json.loads(await asyncio.to_thread(output.read_text))
    result["notices"] = count
    result["finished"] = await _finished(rig, batch)
    result["settings"] = tuning.label
    rig.log(f"  {result['finished']}/{count} notices in {result['wall_s']:.1f} s")
    return result


@contextlib.asynccontextmanager
async def open_rig(
    workdir: Path,
    log: Callable[[str], None],
    *,
    cases: int,
    recipients: int,
    delays: dict[int, float] | None = None,
    label: str = "worker",
) -> AsyncIterator[Rig]:
    """A scratch database with ``cases`` cases, agreement-api and case-api, ``recipients``
    municipalities with one endpoint each, and the receiver; all stopped and dropped afterwards. The
    endpoint of a recipient whose index is in ``delays`` answers that many seconds late."""
    name = f"tilbake_bench_{label}_{uuid.uuid4().hex[:8]}"
    log(f"{label}: scratch database {name}")
    url = await api.create_database(name)
    servers: list[api.Server] = []
    try:
        await asyncio.to_thread(api.migrate, url)
        conn = await asyncpg.connect(url)
        try:
            rng = random.Random(7)
            loaded = await bulk.load_cases(
                conn,
                cases,
                directory=bulk.Directory.synthetic(rng),
                now=datetime.now(UTC),
                rng=rng,
                label="cases for the notices",
            )
        finally:
            await conn.close()
        agreement = api.start_agreement_api(url, workdir)
        servers.append(agreement)
        case_api = api.start_case_api(url, workdir, log_level="INFO")
        servers.append(case_api)
        await asyncio.gather(api.wait_healthy(agreement), api.wait_healthy(case_api))
        receiver_port = api.free_port()
        ids, secrets = await register_recipients(agreement, receiver_port, recipients)
        slow = {endpoint_path(index): seconds for index, seconds in (delays or {}).items()}
        receiver = api.start_receiver(secrets, receiver_port, workdir, delays=slow)
        servers.append(receiver)
        await api.wait_healthy(receiver)
        rig = Rig(
            url=url,
            workdir=workdir,
            agreement=agreement,
            case_api=case_api,
            receiver=receiver,
            recipients=ids,
            case_ids=[case.id for case in loaded],
            log=log,
        )
        yield rig
        for server in servers:
            rig.note_peak(server)
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} died during the run:\n{server.tail()}")
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
        await api.drop_database(name)
        log(f"dropped {name}")


async def run(profile: WorkerProfile, workdir: Path, log: Callable[[str], None]) -> WorkerResult:
    started = time.monotonic()
    needed = max(
        profile.notices,
        profile.pair_notices,
        profile.profile_notices,
        profile.stage_notices,
        profile.sweep_notices,
    )
    async with open_rig(workdir, log, cases=needed, recipients=profile.recipients) as rig:
        sweep = [
            await run_batch(
                rig, f"sweep: {tuning.label}", workers=1, count=profile.sweep_notices, tuning=tuning
            )
            for tuning in profile.sweep
        ]
        best = max(sweep, key=lambda result: result.throughput).tuning if sweep else DEFAULTS
        single = await run_batch(
            rig,
            "one worker" if profile.profile_separately else "one worker under py-spy",
            workers=1,
            count=profile.notices,
            tuning=best,
            profile_seconds=0 if profile.profile_separately else profile.profile_seconds,
        )
        pair = await run_batch(rig, "two workers", workers=2, count=profile.pair_notices, tuning=best)
        profiled = single
        if profile.profile_separately:
            profiled = await run_batch(
                rig,
                "one worker under py-spy",
                workers=1,
                count=profile.profile_notices,
                tuning=best,
                profile_seconds=profile.profile_seconds,
            )
        stages = await run_stages(rig, count=profile.stage_notices, tuning=best)
    return WorkerResult(
        profile=profile,
        sweep=sweep,
        best=best,
        single=single,
        pair=pair,
        profiled=profiled,
        stages=stages,
        rss_kib=dict(rig.peak),
        elapsed_s=time.monotonic() - started,
    )
