"""Scale-out: the deployment shape on one machine, several case-api processes behind a load balancer
and several notify-worker processes on one database.

API half: ``api_processes`` case-api processes (``python -m case_api``, as deployed) behind nginx
(one ``upstream`` of all of them, round robin, HTTP/1.1 keep-alive to the upstreams), against the
first of them alone behind the same nginx and alone without nginx; the API part's load generator
(benchmarks.loadgen) and scenarios (create, read, 32 connections). How nginx spread the requests is
counted twice: by nginx (an access log of ``$upstream_addr``) and by each process (its own
``tilbake_http_requests_total`` at ``/metrics``).

Worker half, on the worker benchmark's rig (benchmarks.worker: agreement-api, case-api and the
receiver that verifies every signature with ``standardwebhooks`` and records each notice id):
``notices`` notices due at once for ``workers`` notify-worker processes, and for one (the
comparison). Exactly once is counted at the receiver (POSTs per notice id: none missing, none
twice) and in the database (attempts per delivery). Each worker's share comes from its own
``tilbake_notify_delivery_outcomes_total`` (the attempts it recorded) and from
``notify_notice.claimed_by`` (the ``host:pid`` of the worker that claimed and planned the notice).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import api, worker

NGINX_WORKERS = 1  # one event loop handles these rates at a few percent of a core


@dataclass(frozen=True)
class ScaleoutProfile:
    api_processes: int
    workers: int
    notices: int  # due at once for the workers
    batch_size: int  # NOTIFY_WORKER_DISPATCH_BATCH_SIZE
    connections: int
    warmup: float
    duration: float
    read_pool: int
    recipients: int = 8
    compare_one_worker: bool = True  # also deliver as many notices with one worker


FULL_SCALEOUT = ScaleoutProfile(
    api_processes=3,
    workers=3,
    notices=3_000,
    batch_size=100,
    connections=32,
    warmup=3.0,
    duration=20.0,
    read_pool=500,
)
QUICK_SCALEOUT = ScaleoutProfile(
    api_processes=2,
    workers=2,
    notices=50,
    batch_size=10,  # small rounds, so that every worker claims some of the few notices
    connections=32,
    warmup=0.2,
    duration=0.7,
    read_pool=50,
    recipients=4,
    compare_one_worker=False,
)


@dataclass
class ApiRun:
    op: str  # create or read
    via_nginx: bool
    processes: int
    load: dict[str, Any]  # benchmarks.loadgen's figures
    by_nginx: dict[str, int]  # process name -> requests nginx sent it (its access log)
    by_process: dict[str, int]  # process name -> requests the process counted (its /metrics)
    unrouted: int  # access log lines without exactly one upstream (a retry, or nginx's own answer)
    cpu: dict[str, float]  # share of one core over the scenario: each case-api, "nginx" (its workers)
    machine_cpu: float  # share of all cores
    busy: worker.Busy

    @property
    def label(self) -> str:
        where = "behind nginx" if self.via_nginx else "direct"
        return f"{self.op}, {self.processes} process{'es' if self.processes > 1 else ''} {where}"


@dataclass
class ScaleoutResult:
    profile: ScaleoutProfile
    nginx_version: str
    api_runs: list[ApiRun]
    tuning: worker.Tuning
    many: worker.BatchResult
    one: worker.BatchResult | None
    loadavg: dict[str, tuple[float, float, float]]  # /proc/loadavg at the start and after each half
    finished: str = ""
    elapsed_s: float = 0.0

    def run(self, op: str, *, via_nginx: bool, processes: int) -> ApiRun:
        return next(
            run
            for run in self.api_runs
            if run.op == op and run.via_nginx == via_nginx and run.processes == processes
        )


# --- nginx -------------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = os.environ.get("BENCH_NGINX") or shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    if found is None:
        raise RuntimeError(
            "the scale-out part needs nginx (Debian: apt-get install nginx-light; or BENCH_NGINX)"
        )
    return found


def nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().rpartition("/")[2] or "unknown"


def nginx_config(prefix: Path, sites: dict[str, tuple[int, list[api.Server]]]) -> str:
    """One ``server`` per site (its listen port, its access log ``<site>.log``), proxying to an
    ``upstream`` of the site's processes with keep-alive connections to them."""
    # As root, nginx would run its workers as nobody, who cannot enter the suite's private temp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    blocks = []
    for site, (port, servers) in sites.items():
        members = "\n".join(f"        server {api.HOST}:{server.port};" for server in servers)
        blocks.append(
            f"""
    upstream {site} {{
{members}
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 4s;  # under uvicorn's 5 s, so nginx never reuses one uvicorn is closing
    }}
    server {{
        listen {api.HOST}:{port};
        access_log {prefix}/{site}.log upstream;
        location / {{
            proxy_pass http://{site};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}"""
        )
    return f"""{user}
worker_processes {NGINX_WORKERS};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format upstream '$upstream_addr $status';
    keepalive_requests 1000000;
    keepalive_timeout 65s;
{"".join(blocks)}
}}
"""


@dataclass
class Nginx:
    server: api.Server  # the master process
    ports: dict[str, int]  # site -> listen port
    logs: dict[str, Path]  # site -> access log

    def url(self, site: str) -> str:
        return f"http://{api.HOST}:{self.ports[site]}"

    def cpu_seconds(self) -> float:
        """CPU time of the master and its worker processes."""
        total = self.server.cpu_seconds() or 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.server.pid:
                total += (int(fields[11]) + int(fields[12])) / api.CLOCK_TICKS
        return total


def launch_nginx(binary: str, workdir: Path, sites: dict[str, list[api.Server]]) -> Nginx:
    """nginx in the foreground as a child process, its configuration, logs and pid file in
    ``workdir/nginx``, one listen port per site."""
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    ports = {site: api.free_port() for site in sites}
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, {site: (ports[site], servers) for site, servers in sites.items()}))
    args = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    checked = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused its configuration:\n{checked.stderr}")
    log_path = prefix / "nginx.out"
    log = log_path.open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **api.child_options())
    return Nginx(
        server=api.Server(
            name="nginx", process=process, port=next(iter(ports.values())), log_path=log_path, log=log
        ),
        ports=ports,
        logs={site: prefix / f"{site}.log" for site in sites},
    )


async def start_nginx(binary: str, workdir: Path, sites: dict[str, list[api.Server]]) -> Nginx:
    nginx = await asyncio.to_thread(launch_nginx, binary, workdir, sites)
    try:
        for port in nginx.ports.values():
            # /healthz through each site: nginx listens and reaches its upstreams.
            probe = api.Server(
                name="nginx",
                process=nginx.server.process,
                port=port,
                log_path=nginx.server.log_path,
                log=nginx.server.log,
            )
            await api.wait_healthy(probe, timeout=30.0)
    except BaseException:
        await asyncio.to_thread(nginx.server.stop)
        raise
    return nginx


def upstream_counts(path: Path, offset: int, names: dict[str, str]) -> tuple[dict[str, int], int]:
    """Requests per process in the access log after ``offset``; and the lines with no single upstream."""
    counts: dict[str, int] = {}
    unrouted = 0
    with path.open("rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode().splitlines():
            upstream = line.split(" ", 1)[0]
            if upstream in names:
                counts[names[upstream]] = counts.get(names[upstream], 0) + 1
            else:
                unrouted += 1
    return counts, unrouted


def requests_counted(server: api.Server) -> int:
    """The case requests a case-api process has answered, by its own request counter."""
    return round(
        sum(
            sample.value
            for sample in worker.scrape(server)
            if sample.name == "tilbake_http_requests_total"
            and sample.labels.get("route", "").startswith("/api/v1/cases")
        )
    )


# --- the API half ------------------------------------------------------------------------------


async def _scenario(
    workdir: Path,
    *,
    op: str,
    spec: dict[str, Any],
    servers: list[api.Server],
    used: list[api.Server],
    nginx: Nginx,
    site: str | None,
) -> ApiRun:
    names = {f"{api.HOST}:{server.port}": server.name for server in servers}
    counted_before = {server.name: await asyncio.to_thread(requests_counted, server) for server in used}
    offset = nginx.logs[site].stat().st_size if site else 0
    cpu_before = {server.name: server.cpu_seconds() or 0.0 for server in servers}
    nginx_before = nginx.cpu_seconds()
    busy_before = worker.machine_busy()
    watch = worker.Watch()
    started = time.monotonic()
    load = await asyncio.to_thread(api.run_load, workdir, spec)
    busy = watch.stop()
    wall = max(time.monotonic() - started, 1e-9)
    busy_after = worker.machine_busy()
    cpu = {
        server.name: ((server.cpu_seconds() or 0.0) - cpu_before[server.name]) / wall for server in servers
    }
    cpu["nginx"] = (nginx.cpu_seconds() - nginx_before) / wall
    by_process = {
        server.name: await asyncio.to_thread(requests_counted, server) - counted_before[server.name]
        for server in used
    }
    by_nginx, unrouted = upstream_counts(nginx.logs[site], offset, names) if site else ({}, 0)
    for server in servers:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} died:\n{server.tail()}")
    return ApiRun(
        op=op,
        via_nginx=site is not None,
        processes=len(used),
        load=load,
        by_nginx=by_nginx,
        by_process=by_process,
        unrouted=unrouted,
        cpu=cpu,
        machine_cpu=(busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1e-9),
        busy=busy,
    )


async def api_half(
    rig: worker.Rig, profile: ScaleoutProfile, binary: str, log: Callable[[str], None]
) -> list[ApiRun]:
    """case-api: one process direct, one behind nginx, ``api_processes`` behind nginx."""
    orgs = await api.seed_organizations(rig.url)
    headers = api.coordinator_headers(orgs)
    servers = [
        api.start_case_api(rig.url, rig.workdir, name=f"case-api-{index + 1}")
        for index in range(profile.api_processes)
    ]
    nginx: Nginx | None = None
    try:
        await asyncio.gather(*(api.wait_healthy(server) for server in servers))
        nginx = await start_nginx(binary, rig.workdir, {"case_api_one": servers[:1], "case_api_all": servers})
        first = servers[0]
        log(f"scale-out: seeding {profile.read_pool} cases")
        pool = api.case_bodies(await api.register_persons(rig.url, profile.read_pool), orgs)
        case_ids = await api.create_cases(first, headers, pool)
        await api.drain_outbox(rig.url, log)
        requests: dict[str, dict[str, Any]] = {
            # Bodies for persons of their own before each run: a person has one open case at a time.
            "create": {"method": "POST", "path": "/api/v1/cases", "once": True, "expect": 201},
            "read": {
                "method": "GET",
                "paths": [f"/api/v1/cases/{case_id}" for case_id in case_ids],
                "expect": 200,
            },
        }
        common = {
            "headers": headers,
            "connections": profile.connections,
            "warmup": profile.warmup,
            "duration": profile.duration,
        }
        runs: list[ApiRun] = []
        for op, request in requests.items():
            shapes: list[tuple[str | None, list[api.Server]]] = [
                (None, servers[:1]),
                ("case_api_one", servers[:1]),
                ("case_api_all", servers),
            ]
            for site, used in shapes:
                base_url = nginx.url(site) if site else first.base_url
                spec = {**request, **common, "base_url": base_url}
                if op == "create":
                    creates = api.creates_in(profile.warmup + profile.duration)
                    spec["bodies"] = await api.create_bodies(rig.url, orgs, creates)
                run = await _scenario(
                    rig.workdir, op=op, spec=spec, servers=servers, used=used, nginx=nginx, site=site
                )
                runs.append(run)
                r = run.load
                spread = ", ".join(f"{name} {n}" for name, n in (run.by_nginx or run.by_process).items())
                log(
                    f"  {run.label}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                    f"errors {r['errors']}; requests per process: {spread}; others' CPU {run.busy.others:.0%} of a core, load average "
                    f"{run.busy.loadavg_1min:.2f}"
                )
                if op == "create":
                    if r.get("exhausted"):
                        log(f"  {run.label} sent the last of its persons early: raise api.CREATES_PER_SECOND")
                    await api.drain_outbox(rig.url, log)
    finally:
        if nginx is not None:
            await asyncio.to_thread(nginx.server.stop)
        for server in servers:
            await asyncio.to_thread(server.stop)
    return runs


# --- the whole part ----------------------------------------------------------------------------


async def run(profile: ScaleoutProfile, workdir: Path, log: Callable[[str], None]) -> ScaleoutResult:
    started = time.monotonic()
    binary = nginx_binary()
    version = nginx_version(binary)
    averages = {"start": worker.loadavg()}
    tuning = worker.Tuning(batch_size=profile.batch_size)
    async with worker.open_rig(
        workdir, log, cases=profile.notices, recipients=profile.recipients, label="scaleout"
    ) as rig:
        api_runs = await api_half(rig, profile, binary, log)
        averages["after the API half"] = worker.loadavg()
        one = None
        if profile.compare_one_worker:
            one = await worker.run_batch(rig, "one worker", workers=1, count=profile.notices, tuning=tuning)
        many = await worker.run_batch(
            rig, f"{profile.workers} workers", workers=profile.workers, count=profile.notices, tuning=tuning
        )
        for name, share in many.sent_by.items():
            log(f"  {name}: {share} successful attempts, {many.claimed_by.get(name, 0)} notices claimed")
        averages["after the worker half"] = worker.loadavg()
    return ScaleoutResult(
        profile=profile,
        nginx_version=version,
        api_runs=api_runs,
        tuning=tuning,
        many=many,
        one=one,
        loadavg=averages,
        finished=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        elapsed_s=time.monotonic() - started,
    )
