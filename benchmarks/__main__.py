"""``python -m benchmarks [--quick] [--scale] [--output PATH]``: the whole suite in one command.

Six parts, each with its own scratch database where it needs one: the API (case-api against a bare
baseline, and case-api under py-spy), the worker (benchmarks.worker), one slow receiver among fast
ones (benchmarks.isolation), the webhook POST with httpx and with aiohttp (benchmarks.httpclients),
the scale-out shape (several case-api processes behind nginx, several workers: benchmarks.scaleout)
and, with ``--scale`` or ``--quick``, the scale part (benchmarks.scale).
``--quick`` runs every part small, to keep the code paths working (CI runs it); its figures mean
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import api, httpclients, isolation, profiling, report, scale, scaleout, worker
from shared.settings import REPO_ROOT

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"
RAMP = (4, 8, 16, 32)


PARTS = ("api", "worker", "isolation", "httpclients", "scaleout", "scale")


@dataclass(frozen=True)
class Profile:
    connections: int
    warmup: float
    duration: float
    ramp_warmup: float
    ramp_duration: float
    read_pool: int
    profile_seconds: int
    statement_requests: int


FULL = Profile(
    connections=32,
    warmup=3.0,
    duration=20.0,
    ramp_warmup=1.0,
    ramp_duration=5.0,
    read_pool=500,
    profile_seconds=10,
    statement_requests=50,
)
QUICK = Profile(
    connections=32,
    warmup=0.5,
    duration=3.0,
    ramp_warmup=0.2,
    ramp_duration=1.0,
    read_pool=50,
    profile_seconds=1,
    statement_requests=5,
)


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


async def profile_case_api(
    case_api: api.Server, spec: dict[str, Any], seconds: int, workdir: Path, label: str
) -> profiling.Summary:
    """One more run of a scenario with py-spy attached to case-api (its figures are not reported)."""
    output = workdir / f"profile-case-api-{uuid.uuid4().hex[:8]}.txt"
    recording = profiling.record("case-api", case_api.pid, output, seconds=seconds)
    await asyncio.to_thread(api.run_load, workdir, {**spec, "warmup": 0.0, "duration": float(seconds) + 0.5})
    await asyncio.to_thread(recording.wait, seconds + 30)
    log(f"  profiled case-api during {label}")
    return profiling.summarize(recording)


def sql_per_request(
    url: str, workdir: Path, headers: dict[str, str], scenarios: dict[str, dict[str, Any]], requests: int
) -> dict[str, Any]:
    """benchmarks.statements in its own process: statements and commits per case-api request."""
    tag = uuid.uuid4().hex[:8]
    output = workdir / f"statements-{tag}.json"
    spec = {
        "env": api.case_api_env(url, api.free_port()),
        "headers": headers,
        "output": str(output),
        "scenarios": [
            {**scenarios[label], "label": label, "requests": requests}
            for label in ("case-api create", "case-api read")
        ],
    }
    spec_path = workdir / f"statements-{tag}.spec.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.statements", str(spec_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **api.child_options(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"the statement counter failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(output.read_text())
    return result


async def api_suite(profile: Profile, workdir: Path) -> tuple[dict[str, Any], list[str]]:
    """case-api against the baseline; the part's figures and its notes."""
    name = f"tilbake_bench_{uuid.uuid4().hex[:10]}"
    log(f"creating scratch database {name}")
    url = await api.create_database(name)
    servers: list[api.Server] = []
    try:
        await asyncio.to_thread(api.migrate, url)
        orgs = await api.seed_organizations(url)
        postgres_version = str(await api.query_value(url, "SHOW server_version"))

        case_api = api.start_case_api(url, workdir)
        servers.append(case_api)
        baseline = api.start_baseline(url, workdir)
        servers.append(baseline)
        samework = api.start_samework(url, workdir, orgs.region_id)
        servers.append(samework)
        await asyncio.gather(
            api.wait_healthy(case_api), api.wait_healthy(baseline), api.wait_healthy(samework)
        )
        headers = api.coordinator_headers(orgs)

        log(f"seeding {profile.read_pool} cases / baseline rows")
        pool_bodies = api.case_bodies(await api.register_persons(url, profile.read_pool), orgs)
        case_ids = await api.create_cases(case_api, headers, pool_bodies)
        item_ids = await api.create_baseline_items(baseline, pool_bodies)
        await api.drain_outbox(url, log)
        creates = api.creates_in(profile.warmup + profile.duration)
        log(f"registering {creates} persons for the creates")

        common = {"connections": profile.connections, "warmup": profile.warmup, "duration": profile.duration}
        scenarios: dict[str, dict[str, Any]] = {
            "case-api create": {
                "base_url": case_api.base_url,
                "method": "POST",
                "path": "/api/v1/cases",
                "bodies": await api.create_bodies(url, orgs, creates),
                "once": True,  # a person has one open case at a time
                "headers": headers,
                "expect": 201,
            },
            "baseline create": {
                "base_url": baseline.base_url,
                "method": "POST",
                "path": "/items",
                "bodies": pool_bodies,
                "expect": 201,
            },
            "same-work create": {
                "base_url": samework.base_url,
                "method": "POST",
                "path": "/api/v1/cases",
                "bodies": await api.create_bodies(url, orgs, creates),
                "once": True,
                "expect": 201,
            },
            "case-api read": {
                "base_url": case_api.base_url,
                "method": "GET",
                "paths": [f"/api/v1/cases/{case_id}" for case_id in case_ids],
                "headers": headers,
                "expect": 200,
            },
            "baseline read": {
                "base_url": baseline.base_url,
                "method": "GET",
                "paths": [f"/items/{item_id}" for item_id in item_ids],
                "expect": 200,
            },
            "same-work read": {
                "base_url": samework.base_url,
                "method": "GET",
                "paths": [f"/api/v1/cases/{case_id}" for case_id in case_ids],
                "expect": 200,
            },
        }
        results: dict[str, dict[str, Any]] = {}
        outbox: tuple[int, float] = (0, 0.0)
        for label, spec in scenarios.items():
            log(f"running {label}: {profile.warmup:g} s warm-up + {profile.duration:g} s")
            results[label] = await asyncio.to_thread(api.run_load, workdir, {**spec, **common})
            r = results[label]
            log(
                f"  {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}"
            )
            if label == "case-api create":
                outbox = await api.drain_outbox(url, log)
                log(f"  outbox backlog after the scenario: {outbox[0]} events, drained in {outbox[1]:.1f} s")

        ramp: list[dict[str, Any]] = []
        for connections in RAMP:
            log(f"ramp: case-api read at {connections} connections")
            spec = {
                **scenarios["case-api read"],
                "connections": connections,
                "warmup": profile.ramp_warmup,
                "duration": profile.ramp_duration,
            }
            ramp.append(await asyncio.to_thread(api.run_load, workdir, spec))

        # Every later round of creates gets persons of its own (a person has one open case at a time).
        profiles: dict[str, profiling.Summary] = {}
        for label in ("case-api create", "case-api read"):
            spec = {**scenarios[label], **common}
            if label == "case-api create":
                spec["bodies"] = await api.create_bodies(
                    url, orgs, api.creates_in(profile.profile_seconds + 0.5)
                )
            profiles[label] = await profile_case_api(case_api, spec, profile.profile_seconds, workdir, label)
        log("counting SQL statements per case-api request (benchmarks.statements)")
        bodies = await api.create_bodies(url, orgs, profile.statement_requests)
        counted = {**scenarios, "case-api create": {**scenarios["case-api create"], "bodies": bodies}}
        statements = await asyncio.to_thread(
            sql_per_request, url, workdir, headers, counted, profile.statement_requests
        )
        rss = {server.name: server.peak_rss_kib() for server in servers}
        for server in servers:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} died during the run:\n{server.tail()}")
    finally:
        for server in servers:
            server.stop()
        await api.drop_database(name)
        log(f"dropped {name}")

    ratios = {
        op: (results[f"case-api {op}"]["rps"] / results[f"baseline {op}"]["rps"])
        if results[f"baseline {op}"]["rps"]
        else 0.0
        for op in ("create", "read")
    }
    samework_ratios = {
        op: (results[f"case-api {op}"]["rps"] / results[f"same-work {op}"]["rps"])
        if results[f"same-work {op}"]["rps"]
        else 0.0
        for op in ("create", "read")
    }
    loadgen_cpu = max(r["loadgen_cpu"] for r in results.values())
    notes = [
        "**case-api create** is `POST /api/v1/cases` as a region coordinator: token verification, body "
        "validation, unit and region lookup, the case row, one row per domain, the audit/timeline entry and "
        "the outbox event, in one transaction. Each create is for a person of its own, registered "
        f"beforehand ({creates} of them): a person has one open case at a time.",
        "**case-api read** is `GET /api/v1/cases/{id}`: token verification, the access check, the access-log "
        f"write and the response with its ETag, over {len(case_ids)} cases created beforehand.",
        "**baseline** is `benchmarks/baseline.py`: FastAPI + asyncpg (pool of 10, as case-api's default), "
        "a validated JSON body, one INSERT into `bench_item`, or one SELECT by primary key. No auth, no "
        "ORM, no audit.",
        "**same-work** is `benchmarks/samework.py`: case-api's create and read statements, on the same "
        "tables and rows in the same transactions (the person, the case, its timeline entry, its outbox "
        "event and its eleven domains; the case with its person and the access-log row), in raw asyncpg "
        "in a bare FastAPI app with the same pool size. No token is checked: the region comes from its "
        "settings. It reads the cases case-api created, and creates for persons of its own.",
        "Both servers run as one uvicorn process each against the same scratch PostgreSQL database "
        "(created, migrated with alembic and dropped by the suite). case-api runs with "
        "`CASE_API_ENV=test`, `CASE_API_LOG_LEVEL=WARNING`, no AMQP URL (in-process bus) and the outbox "
        "relay on.",
        f"The outbox relay had {outbox[0]} unpublished events when the create scenario ended and needed "
        f"{outbox[1]:.1f} s to drain them; the suite waits for that before the next scenario, so the "
        "relay's catch-up work is not billed to the scenarios after it.",
        "The load generator (`benchmarks/loadgen.py`: one asyncio process with a bare HTTP/1.1 keep-alive "
        "client, every request's bytes built before the clock starts) runs on the same machine and competes "
        f"with the servers and PostgreSQL for {report.machine()['cores']} cores; its busiest run used "
        f"{loadgen_cpu:.0%} of one core. (An httpx-based generator used a full core at a few hundred "
        "requests per second and held the baseline down to that, which flattered case-api's ratios.)",
    ]
    for label in ("case-api create", "same-work create"):
        if results[label].get("exhausted"):
            notes.append(
                f"The {label} run sent the last of its {creates} persons before its end, so it was "
                "measured over a shorter time; raise `CREATES_PER_SECOND` in `benchmarks/api.py`."
            )
    slowest = min(results["case-api create"]["rps"], results["case-api read"]["rps"])
    notes.append(
        f"With {profile.connections} connections always busy, mean latency is about connections / "
        f"throughput (Little's law): at case-api's slower {slowest:.0f} requests/s that is "
        f"{profile.connections / slowest * 1000 if slowest else 0:.0f} ms, so a p99 of 50 ms at "
        f"{profile.connections} connections needs well over {profile.connections / 0.05:.0f} requests/s. "
        "The ramp shows the latency case-api gives at lower concurrency."
    )
    settings = {
        "connections": profile.connections,
        "warmup": profile.warmup,
        "duration": profile.duration,
        "ramp_warmup": profile.ramp_warmup,
        "ramp_duration": profile.ramp_duration,
    }
    figures = {
        "settings": settings,
        "results": results,
        "ratios": ratios,
        "samework_ratios": samework_ratios,
        "ramp": ramp,
        "rss": rss,
        "profiles": profiles,
        "profile_seconds": profile.profile_seconds,
        "statements": statements,
        "postgres_version": postgres_version,
    }
    return figures, notes


def worker_notes() -> list[str]:
    return [
        "**worker**: each run starts its worker process(es) afresh against the same database, "
        "agreement-api, case-api and receiver; a run's notices carry their own `milestone_days`, so the "
        "figures of one run never count another's notices. The stage timings run the worker application "
        "in a harness process (`benchmarks/stages.py`), the CPU profiles attach py-spy to the running "
        "processes; in a full run neither is among the headline figures (`--quick` profiles its one-worker "
        "run itself).",
    ]


def scale_notes(result: scale.ScaleResult) -> list[str]:
    return [
        f"**scale**: the scale part took {result.elapsed_s:.0f} s, {result.load_seconds:.0f} s of it loading. "
        "Timings are of warm caches (the load and the warm-up executions leave the pages in memory); "
        "a cold cache adds reads from disk to the first pages.",
    ]


async def suite(
    profile: Profile, quick: bool, workdir: Path, parts: set[str], keep_scale: str | None
) -> dict[str, Any]:
    started = time.monotonic()
    # SIGTERM or SIGINT (a CI timeout, Ctrl-C) cancels the run, so every part's finally block stops
    # its servers and drops its scratch database on the way out.
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    if task is not None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
    notes: list[str] = []
    data: dict[str, Any] = {
        "api": None,
        "worker": None,
        "isolation": None,
        "httpclients": None,
        "scaleout": None,
        "scale": None,
    }
    postgres_version = str(await api.query_value(api.server_url(), "SHOW server_version"))
    if "api" in parts:
        data["api"], api_notes = await api_suite(profile, workdir)
        notes.extend(api_notes)
        log(f"API part done after {time.monotonic() - started:.0f} s")
    if "worker" in parts:
        data["worker"] = await worker.run(worker.QUICK_WORKER if quick else worker.FULL_WORKER, workdir, log)
        notes.extend(worker_notes())
        log(f"worker part done after {time.monotonic() - started:.0f} s")
    if "isolation" in parts:
        data["isolation"] = await isolation.run(
            isolation.QUICK_ISOLATION if quick else isolation.FULL_ISOLATION, workdir, log
        )
        log(f"isolation part done after {time.monotonic() - started:.0f} s")
    if "httpclients" in parts:
        data["httpclients"] = await httpclients.run(
            httpclients.QUICK_HTTPCLIENTS if quick else httpclients.FULL_HTTPCLIENTS, workdir, log
        )
        log(f"HTTP client part done after {time.monotonic() - started:.0f} s")
    if "scaleout" in parts:
        data["scaleout"] = await scaleout.run(
            scaleout.QUICK_SCALEOUT if quick else scaleout.FULL_SCALEOUT, workdir, log
        )
        log(f"scale-out part done after {time.monotonic() - started:.0f} s")
    if "scale" in parts:
        data["scale"] = await scale.run(
            scale.QUICK_SCALE if quick else scale.FULL_SCALE,
            workdir,
            log,
            keep=keep_scale,
            try_every_proposal=quick,
        )
        notes.extend(scale_notes(data["scale"]))
        log(f"scale part done after {time.monotonic() - started:.0f} s")
    notes.append(
        "Figures come from one run on a small shared machine and move noticeably between runs (the same "
        "scenario has differed by more than a third from one run to the next here). A figure close to its "
        "target is not settled by one run; compare runs on the same machine before concluding."
    )
    if quick:
        notes.insert(0, "This is a --quick smoke run: every part runs small; the figures are not meaningful.")
    return {
        **data,
        "quick": quick,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": time.monotonic() - started,
        "machine": report.machine(),
        "versions": report.versions(postgres_version),
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke test of every part, temp report")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="include the scale part: 1M cases / 5M notices, several minutes of loading (--quick always has a tiny one)",
    )
    parser.add_argument(
        "--output", type=Path, help="report path (full: docs/benchmarks.md; quick: a temp file)"
    )
    parser.add_argument(
        "--only", action="append", choices=PARTS, help="run only this part (repeatable; for trials)"
    )
    parser.add_argument(
        "--keep-scale-db",
        metavar="NAME",
        help="load the scale data into this database and keep it; reuse it if it exists (for trials)",
    )
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    parts = set(args.only or PARTS)
    if not (args.quick or args.scale or args.only):
        parts.discard("scale")
    if args.output is not None:
        output: Path = args.output
    elif args.quick:
        output = Path(tempfile.mkdtemp(prefix="tilbake-bench-")) / "benchmarks-quick.md"
    else:
        output = DEFAULT_OUTPUT
    with tempfile.TemporaryDirectory(prefix="tilbake-bench-work-") as workdir:
        data = asyncio.run(suite(profile, args.quick, Path(workdir), parts, args.keep_scale_db))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.render(data), encoding="utf-8")
    sys.stdout.write(f"report written to {output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
