"""Machine facts and the Markdown report (docs/benchmarks.md)."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.httpclients import HttpClientsResult
from benchmarks.isolation import LAG_P99_TARGET_S as ISOLATION_LAG_TARGET_S
from benchmarks.isolation import IsolationResult
from benchmarks.profiling import Summary
from benchmarks.scale import TARGET_MS, QueryReport, ScaleResult
from benchmarks.scaleout import NGINX_WORKERS, ApiRun, ScaleoutResult
from benchmarks.worker import (
    DELIVERIES_TARGET,
    INTERVAL_S,
    LAG_P99_TARGET_S,
    PAIR_WITHIN_S,
    BatchResult,
    Busy,
    WorkerResult,
)

TARGETS = {"create": 0.4, "read": 0.6}
SAMEWORK_FACTOR = 2.0  # case-api create at most this many times slower than the same-work app
P99_TARGET_MS = 50.0


def machine() -> dict[str, str]:
    model = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions(postgres: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("fastapi", "uvicorn", "sqlalchemy", "asyncpg", "pydantic", "httpx", "py-spy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["postgresql server"] = postgres
    return found


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


def _pct(share: float) -> str:
    return f"{share:.0%}"


def render_profile(summary: Summary, add: Any, *, rows: int = 10) -> None:
    """One py-spy summary: by library, by project function, hottest leaves."""
    if summary.error:
        add(f"*{summary.name}*: no profile ({summary.error}).")
        add("")
        return
    add(f"*{summary.name}*: {summary.samples} samples (on-CPU only; idle waits left out).")
    add("")
    add("| by library (innermost frame) | share | | by project function (innermost own frame) | share |")
    add("|---|---:|---|---|---:|")
    libraries = summary.by_library[:rows]
    functions = summary.by_project_function[:rows]
    for index in range(max(len(libraries), len(functions))):
        library = f"{libraries[index][0]} | {_pct(libraries[index][1])}" if index < len(libraries) else " | "
        function = (
            f"`{functions[index][0]}` | {_pct(functions[index][1])}" if index < len(functions) else " | "
        )
        add(f"| {library} | | {function} |")
    add("")
    if summary.hottest:
        hottest = ", ".join(f"`{name}` {_pct(share)}" for name, share in summary.hottest[:6])
        add(f"Hottest leaf functions: {hottest}.")
        add("")


# --- the API part ------------------------------------------------------------------------------


def _share(summary: Summary | None, needle: str, view: str = "by_project_function") -> float:
    if summary is None:
        return 0.0
    return sum(share for name, share in getattr(summary, view) if needle in name)


def _api_proposals(data: dict[str, Any]) -> list[str]:
    """What the figures of this run still point at in case-api, beyond the fixes already applied
    (see :func:`render_tried`): each proposal appears only when its figure says it is not done."""
    profiles: dict[str, Summary] = data["profiles"]
    create, read = profiles.get("case-api create"), profiles.get("case-api read")
    statements: dict[str, Any] = data.get("statements") or {}
    proposals: list[str] = []
    lookup = (
        _share(create, "get (case_api/organizations/service.py)"),
        _share(read, "get (case_api/organizations/service.py)"),
    )
    if max(lookup) >= 0.05:
        proposals.append(
            "`case_api.organizations.service.get` still takes "
            f"{_pct(lookup[0])} of case-api's CPU in create and {_pct(lookup[1])} in read, although the "
            "viewer facts are cached per organization: the cache is missing its hits (expired or dropped "
            "by directory events during the run); look at its lifetime before anything else."
        )
    verify = (_share(create, "TokenVerifier.verify"), _share(read, "TokenVerifier.verify"))
    if max(verify) >= 0.05:
        proposals.append(
            f"`shared.auth.TokenVerifier.verify` still takes {_pct(verify[0])} of create and "
            f"{_pct(verify[1])} of read although verified tokens are remembered: the load generator's "
            "token should hit that cache on every request but the first; check its size and expiry."
        )
    if any(counted.get("pre_ping") for counted in statements.values()):
        proposals.append(
            "The engine pings PostgreSQL before each checkout again (`pool_pre_ping`): one round trip "
            "more per request, which the lost-connection handling (503 + Retry-After) made unnecessary."
        )
    for label, counted in statements.items():
        for name, per_request in counted["statements"]:
            if per_request >= 1.5:
                proposals.append(
                    f"{label}: `{name}` is sent {per_request:.1f} times per request (the count cannot tell "
                    "the same row read twice from two rows of one table): where it is the same row, pass "
                    "the loaded object on instead of reading it again."
                )
    orm = (_share(create, "SQLAlchemy", "by_library"), _share(read, "SQLAlchemy", "by_library"))
    if max(orm) >= 0.1:
        proposals.append(
            f"SQLAlchemy is still {_pct(orm[0])} of create's and {_pct(orm[1])} of read's CPU, although "
            "both send their statements as prepared asyncpg SQL (`case_api.cases.opening`, "
            "`case_api.cases.reads`): what is left is the session's own cycle (pool checkout, BEGIN, "
            "COMMIT through the greenlet bridge) and the viewer's organization facts on a cache miss."
        )
    framework = (_share(create, "ASGI", "by_library"), _share(read, "ASGI", "by_library"))
    proposals.append(
        f"uvicorn, Starlette and FastAPI take {_pct(framework[0])} of create's and {_pct(framework[1])} of "
        "read's CPU (routing over every route of the service, dependency resolution, validation): the "
        "largest share left that is not the work itself."
    )
    return proposals


def _api_limits(data: dict[str, Any]) -> list[str]:
    """Where case-api stands against the cost of its own work, from this run's figures."""
    results: dict[str, dict[str, Any]] = data["results"]
    statements: dict[str, Any] = data.get("statements") or {}
    lines = []
    for op in ("create", "read"):
        ours, base = results[f"case-api {op}"], results[f"baseline {op}"]
        same = results.get(f"same-work {op}")
        line = (
            f"{op}: case-api {ours['rps']:.0f} req/s against the baseline's {base['rps']:.0f} "
            f"({data['ratios'][op]:.2f}x; the target is {TARGETS[op]}x)"
        )
        if same:
            line += (
                f" and the same work's {same['rps']:.0f} ({same['rps'] / base['rps'] if base['rps'] else 0:.2f}x "
                "of the baseline)"
            )
        lines.append(line)
    counts = "; ".join(
        f"{label}: {counted['statements_per_request']:.1f} statements and "
        f"{counted['commits_per_request']:.0f} commit per request"
        for label, counted in statements.items()
        if label.startswith("case-api")
    )
    return [
        "This run: " + "; ".join(lines) + ".",
        "The same-work app is the limit of this work on this machine: it sends case-api's statements "
        "in raw asyncpg with nothing around them. Where it stays under a ratio target, the target is out "
        "of reach for any case-api that does this work in these transactions; the baseline does one "
        "statement and no transaction of its own.",
        "Both hot paths send one prepared statement on the request's transaction: a create inserts the "
        "case, its timeline entry, its outbox event and its domains through data-modifying CTEs "
        "(`case_api.cases.opening`), a read selects the case with its person in the viewer's scope and "
        "inserts the access-log row (`case_api.cases.reads`). The checks, the snapshot and the event "
        "payload are the ORM path's own functions, and tests hold the two paths to the same rows "
        "(`tests/case_api/cases/test_open_path.py`, `test_read_path.py`). "
        + (f"Counted in this run: {counts}." if counts else ""),
    ]


def render_api(data: dict[str, Any], add: Any) -> None:
    results: dict[str, dict[str, Any]] = data["results"]
    settings = data["settings"]
    add("## API: case-api against a bare FastAPI + asyncpg baseline")
    add("")
    add(
        f"{settings['connections']} concurrent connections, {settings['warmup']:g} s warm-up then "
        f"{settings['duration']:g} s measured per scenario. Latency is per request as the client sees it."
    )
    add("")
    add(
        "| scenario | requests | errors | requests/s | p50 ms | p99 ms | max ms | vs baseline "
        "| case-api vs same-work | client CPU |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    samework_ratios: dict[str, float] = data.get("samework_ratios") or {}
    for op in ("create", "read"):
        base_rps = results[f"baseline {op}"]["rps"]
        for system in ("case-api", "same-work", "baseline"):
            r = results.get(f"{system} {op}")
            if r is None:
                continue
            ratio = f"{r['rps'] / base_rps:.2f}x" if base_rps else "-"
            against = f"{samework_ratios[op]:.2f}x" if system == "case-api" and op in samework_ratios else ""
            add(
                f"| {system} {op} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {ratio} | {against} | {r['loadgen_cpu']:.0%} |"
            )
    add("")
    add(
        "*client CPU* is the load generator's own CPU time over its wall time (100% = one full core). "
        "Near 100% the generator, not the server, sets the pace: that figure is a floor for the server."
    )
    add("")
    add("### Latency against load (case-api read)")
    add("")
    ramp = data["ramp"]
    add(
        f"A short ramp, {settings['ramp_warmup']:g} s warm-up then {settings['ramp_duration']:g} s per step. "
        "In the chart the lower line is p50, the upper line p99 (milliseconds)."
    )
    add("")
    add("| connections | requests/s | p50 ms | p99 ms | errors |")
    add("|---:|---:|---:|---:|---:|")
    for step in ramp:
        add(
            f"| {step['connections']} | {step['rps']:.0f} | {step['p50_ms']:.1f} | {step['p99_ms']:.1f} "
            f"| {step['errors']} |"
        )
    add("")
    top = max([step["p99_ms"] for step in ramp] + [1.0])
    add("```mermaid")
    add("xychart-beta")
    add('    title "case-api GET /api/v1/cases/{id}: latency against concurrent connections"')
    add('    x-axis "connections" [' + ", ".join(str(step["connections"]) for step in ramp) + "]")
    add(f'    y-axis "latency (ms)" 0 --> {top * 1.1:.0f}')
    add("    line [" + ", ".join(f"{step['p50_ms']:.1f}" for step in ramp) + "]")
    add("    line [" + ", ".join(f"{step['p99_ms']:.1f}" for step in ramp) + "]")
    add("```")
    add("")
    add("### Where case-api's CPU goes")
    add("")
    add(
        "py-spy sampled case-api during extra runs of the same scenarios (after the measured ones, so "
        f"the figures above are unprofiled): {data['profile_seconds']:g} s each at "
        f"{settings['connections']} connections."
    )
    add("")
    for label, summary in data["profiles"].items():
        add(f"**{label}**")
        add("")
        render_profile(summary, add)
    statements: dict[str, Any] = data.get("statements") or {}
    if statements:
        add("### What one case-api request sends to PostgreSQL")
        add("")
        add(
            "`benchmarks/statements.py` runs the case-api application in a process of its own and sends the "
            "same requests through httpx's ASGI transport, one at a time, counting every statement and "
            "commit of its engine (the outbox relay stopped, so its polling is not counted). Each statement "
            "is a round trip to PostgreSQL that the request waits for, and SQLAlchemy and asyncpg work for "
            "each (the two largest entries of the profiles above)."
        )
        add("")
        for label, counted in statements.items():
            ping = (
                f", {counted['checkouts_per_request']:.1f} pool checkouts each preceded by a ping "
                "(the pool pre-pings again: one more round trip per checkout)"
                if counted.get("pre_ping")
                else f", {counted.get('checkouts_per_request', 0.0):.1f} pool checkouts, no ping"
            )
            add(
                f"**{label}**: {counted['statements_per_request']:.1f} statements and "
                f"{counted['commits_per_request']:.1f} commits per request{ping} ({counted['requests']} requests)."
            )
            add("")
            add("| statement | per request |")
            add("|---|---:|")
            for name, per_request in counted["statements"][:15]:
                add(f"| `{name}` | {per_request:.2f} |")
            add("")
        repeated = sorted(
            {
                (name, per_request, label)
                for label, counted in statements.items()
                for name, per_request in counted["statements"]
                if per_request >= 1.5
            },
            key=lambda item: -item[1],
        )
        if repeated:
            listed = "; ".join(
                f"`{name}` {per_request:.1f}x in {label}" for name, per_request, label in repeated
            )
            add(f"Statements sent more than once per request: {listed}.")
            add("")
    add("### case-api against the cost of its own work")
    add("")
    for paragraph in _api_limits(data):
        add(paragraph)
        add("")
    add("### What is left to propose")
    add("")
    add(
        "The fixes applied so far, with their before and after figures, are under *What was tried, before "
        "and after*. What the profiles and counts of this run still point at:"
    )
    add("")
    for proposal in _api_proposals(data):
        add(f"- {proposal}")
    add("")


# --- the worker part ---------------------------------------------------------------------------


def _batch_row(result: BatchResult) -> str:
    cpu = result.cpu
    workers = [value for name, value in cpu.items() if name.startswith("notify-worker")]
    return (
        f"| {result.label} | {result.workers} | {result.tuning.label} | {result.notices:,} | "
        f"{result.notices_received:,} | {result.throughput:.0f} | {result.steady_rate:.0f} | "
        f"{result.lag_p50_s:.2f} | {result.lag_p99_s:.2f} | {result.lag_max_s:.2f} | "
        f"{' + '.join(_pct(value) for value in workers)} | {_pct(cpu.get('agreement-api', 0.0))} | "
        f"{_pct(cpu.get('case-api', 0.0))} | {_pct(result.machine_cpu)} |"
        + (" timed out |" if result.timed_out else " |")
    )


STAGE_HINTS = {
    "run_once": "one whole round",
    "release_stale_claims": "stale claims back to scheduled",
    "plan": "claim, ask for endpoints and facts, plan the round",
    "claim_due": "the claim transaction",
    "_ask": "agreement-api asked side by side: a round's recipients' endpoints, a lease's signing keys",
    "CachedEndpoints.endpoints_for": "the worker's cache in front of agreement-api",
    "AgreementClient.endpoints_for": "HTTP: a recipient's endpoints (agreement-api), on a cache miss",
    "_facts": "the round's cases' notice facts",
    "CaseClient.notice_facts_many": "HTTP: notice facts of many cases (case-api)",
    "CaseClient.notice_facts": "HTTP: one case's notice facts (case-api)",
    "health.seen_active": "endpoint health bookkeeping",
    "_plan_all": "the round's notices locked and marked, deliveries in one INSERT",
    "retry_disables": "endpoints still to disable",
    "health.pending_disables": "endpoints still to disable: the query",
    "attempt_due": "the round's attempts: slots leased as they free up, ended attempts recorded",
    "_start": "a lease into the free slots, its signing keys, its attempts started",
    "_lease": "lease transaction (SELECT ... FOR UPDATE SKIP LOCKED, commit)",
    "_attempt": "one attempt: send + record",
    "_send": "one attempt: sign and POST",
    "_record_ended": "the attempts that have ended, recorded together",
    "_finish": "a record transaction, then the endpoints to disable",
    "_idle": "the loop waiting for work, or for an attempt in flight to end",
    "_settle": "on stop: the attempts in flight finished and recorded",
    "CachedEndpoints.signing_keys": "the worker's cache in front of agreement-api",
    "AgreementClient.signing_keys": "HTTP: signing keys (agreement-api), on a cache miss",
    "WebhookSender.send": "sign and POST to the receiver",
    "_record": "record transaction (attempt row, delivery state, endpoint health)",
    "health.record_attempt": "the endpoint's health row, inside the record transaction",
    "health._record_success": "the endpoint's health row after a success",
    "health.record_successes": "a chunk's successes: the endpoints' health rows, one statement",
    "told.record_many": "what the recipients were told: one upsert for the batch",
    "emit_all": "a batch's events staged in one INSERT",
    "_record_in": "one attempt's rows, inside a record transaction",
    "_attempts_this_run": "attempts since a redelivery (a query only after one)",
    "finish_notices": "mark ended notices delivered/dead",
    "escalate": "receipts overdue: escalation, at its interval",
    "escalate_overdue": "receipts overdue: escalation",
}


def _stage_proposals(stages: dict[str, Any], notices: int, worker_cpu_ms: float) -> list[str]:
    """What the measured stages still point at in the worker, beyond what it does already (the
    endpoint cache, a round planned in one transaction, attempts leased in batches and sent side by
    side, a round's facts in one request): each proposal appears only when its stage is there per
    notice."""
    by_name = {stage["stage"]: stage for stage in stages.get("stages", []) if stage["calls"]}
    wall = max(stages["wall_s"], 1e-9)

    def told(name: str) -> str:
        stage = by_name[name]
        overlap = " (the calls overlap)" if stage["total_s"] > wall * 1.05 else ""
        return (
            f"`{name}`: {stage['calls']:,} calls for {notices:,} notices, {stage['mean_ms']:.1f} ms each, "
            f"{stage['total_s']:.1f} s in all against {wall:.1f} s of wall time{overlap}"
        )

    def per_notice(name: str) -> bool:
        return name in by_name and by_name[name]["calls"] >= 0.9 * notices

    proposals = [
        f"One worker needed {wall / max(notices, 1) * 1000:.1f} ms of wall time per notice here, and "
        f"{worker_cpu_ms:.1f} ms of its own CPU per notice in the headline run (the CPU table above; "
        "agreement-api and case-api add theirs). Attempts already run side by side, so more "
        "concurrency helps only while there is CPU to spare: what is left is CPU per notice, in the "
        "worker (the session's cycle in SQLAlchemy, asyncpg, aiohttp, signing) and in PostgreSQL, and the "
        "round trips of the record and lease transactions, which the loop runs one after the other "
        "while the slots they free wait."
    ]
    if per_notice("AgreementClient.signing_keys") or per_notice("AgreementClient.endpoints_for"):
        asked = [
            name
            for name in ("AgreementClient.signing_keys", "AgreementClient.endpoints_for")
            if per_notice(name)
        ]
        proposals.append(
            "; ".join(told(name) for name in asked)
            + ". agreement-api is asked per notice: the endpoint cache "
            "(`NOTIFY_WORKER_ENDPOINT_CACHE_SECONDS`) is off or missing its hits in this run."
        )
    if per_notice("CaseClient.notice_facts"):
        proposals.append(
            told("CaseClient.notice_facts")
            + ". One case-api request per case: the round's facts should come in one request "
            "(`GET /api/v1/notice-facts`)."
        )
    transactions = [name for name in ("_record",) if per_notice(name)]
    if transactions:
        listed = "; ".join(told(name) for name in transactions)
        proposals.append(
            f"Still one transaction per attempt: {listed}. The lease is one transaction for a batch "
            "of attempts, the record is not: each attempt checks a connection out, locks its delivery, "
            "adds the attempt row and updates the endpoint's health row, and commits. Recording a "
            "batch's attempts in one transaction (Core statements over many rows) would save most of "
            "that, at the price of one failed record taking the batch's records with it (the leases "
            "then run out and the batch is sent again with the same webhook-ids)."
        )
    if per_notice("health.record_attempt"):
        proposals.append(
            told("health.record_attempt")
            + ". The endpoint's `notify_endpoint_health` row is updated after a success too, so every "
            "attempt to one endpoint, from every worker and every concurrent attempt, queues on that one "
            "row lock while holding its connection. Writing `last_success_at` only when the endpoint was "
            "failing, or at most every few seconds per endpoint, removes the queue."
        )
    return proposals


def render_worker(worker: WorkerResult, add: Any) -> None:
    single, pair = worker.single, worker.pair
    add("## Worker: signed deliveries, lag, and no attempt made twice")
    add("")
    add(
        "Real processes: `python -m notify_worker` (dispatch on, no broker), agreement-api (the "
        f"{worker.profile.recipients} recipient municipalities and their webhook endpoints registered through "
        "its API; the worker asks it for endpoints and for the signing keys it signs with), case-api "
        "(the worker asks it for each notice's facts) and a receiver (`benchmarks/receiver.py`) that "
        "verifies every signature with the `standardwebhooks` package and records each arrival. A batch of "
        "scheduled notices is COPYed into `notify_notice`, all due at the same moment; lag is arrival "
        "minus `due_at`; deliveries/s is the batch over the time from `due_at` to the last arrival "
        "(*steady* leaves out the first round's start-up: first to last arrival)."
    )
    add("")
    add(
        f"Settings: `NOTIFY_WORKER_DISPATCH_INTERVAL_SECONDS={INTERVAL_S:g}` (an idle worker looks again "
        "this often), "
        + ", ".join(
            f"`{name}={value}`" for name, value in worker.best.env().items() if "INTERVAL" not in name
        )
        + (" (the best of the sweep below)" if worker.sweep else " (the defaults)")
        + ", log level INFO as JSON lines to a file (as in production), everything else default. "
        "CPU columns: share of one core over the run; *machine* is the share of all cores."
    )
    add("")
    add(
        "| run | workers | settings | notices | received | deliveries/s | steady/s | lag p50 s | lag p99 s "
        "| lag max s | worker CPU | agreement-api CPU | case-api CPU | machine CPU | |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    runs = [*worker.sweep, single, pair]
    if worker.profiled is not single:
        runs.append(worker.profiled)
    for result in runs:
        add(_batch_row(result))
    add("")
    add("CPU per notice, from the same runs (process CPU time over the run, divided by its notices):")
    add("")
    add("| run | worker(s) ms | agreement-api ms | case-api ms | receiver ms | sum ms | ceiling on 2 cores |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for result in runs:
        workers = sum(
            result.cpu_ms_per_notice(name) for name in result.cpu if name.startswith("notify-worker")
        )
        others = [result.cpu_ms_per_notice(name) for name in ("agreement-api", "case-api", "receiver")]
        total = workers + sum(others)
        ceiling = f"{2000 / total:.0f}/s" if total else "—"
        add(
            f"| {result.label} | {workers:.1f} | {others[0]:.1f} | {others[1]:.1f} | {others[2]:.1f} | "
            f"{total:.1f} | {ceiling} |"
        )
    add("")
    add(
        "*ceiling* is two cores' worth of milliseconds over the sum, before PostgreSQL's own share: no "
        "amount of concurrency delivers more notices per second than that on this machine. "
        f"{DELIVERIES_TARGET:.0f}/s needs the whole path under {2000 / DELIVERIES_TARGET:.0f} ms of CPU per "
        "notice, PostgreSQL included."
    )
    add("")
    add("### Nothing attempted twice (two workers)")
    add("")
    add("| | count |")
    add("|---|---:|")
    add(f"| notices due at once | {pair.notices:,} |")
    add(f"| notices delivered | {pair.delivered:,} |")
    add(f"| deliveries (one per notice and endpoint) | {pair.deliveries:,} |")
    add(f"| attempts recorded (`notify_attempt`) | {pair.attempts:,} |")
    add(f"| failed attempts | {pair.failed_attempts:,} |")
    add(f"| deliveries attempted more than once | {pair.deliveries_attempted_twice:,} |")
    add(f"| POSTs the receiver verified | {pair.posts:,} |")
    add(f"| notices POSTed more than once | {pair.notices_posted_twice:,} |")
    add(
        f"| of those, the same `webhook-id` each time (one delivery sent again) | {pair.repeats_with_one_webhook_id:,} |"
    )
    add(f"| requests refused for a bad signature | {pair.rejected:,} |")
    add("")
    stages = worker.stages
    add("### Where a worker's wall time goes")
    add("")
    add(
        f"The real worker application run under `benchmarks/stages.py` ({stages['notices']:,} notices due "
        f"at once, {stages['settings']}; {stages['finished']:,} finished in "
        f"{stages['wall_s']:.1f} s): every coroutine method of the running dispatcher, of its clients and "
        "of the worker modules it calls is timed. Stages nest (a round holds everything) and concurrent "
        "calls overlap, so shares add up to more than 100 %."
    )
    add("")
    add("| stage | what | calls | mean ms | total s | share of wall time |")
    add("|---|---|---:|---:|---:|---:|")
    for stage in stages["stages"]:
        if not stage["calls"]:
            continue
        add(
            f"| `{stage['stage']}` | {STAGE_HINTS.get(stage['stage'], '')} | {stage['calls']:,} | "
            f"{stage['mean_ms']:.2f} | {stage['total_s']:.2f} | {_pct(stage['share'])} |"
        )
    add("")
    add("### Where the CPU goes (py-spy)")
    add("")
    add(
        f"Sampled during the run *{worker.profiled.label}* ({worker.profile.profile_seconds} s, 100 Hz, "
        "non-blocking), for the worker and the two services it calls on every notice."
    )
    add("")
    for summary in worker.profiled.profiles:
        render_profile(summary, add)
    add("### What is left to propose")
    add("")
    add(
        "The worker's code is as committed; only settings change here (the sweep above, a second "
        "worker process). The fixes applied so far, with their before and after figures, are under "
        "*What was tried, before and after*. What the measured stages still point at:"
    )
    add("")
    worker_cpu_ms = sum(
        single.cpu_ms_per_notice(name) for name in single.cpu if name.startswith("notify-worker")
    )
    for proposal in _stage_proposals(stages, stages["notices"], worker_cpu_ms):
        add(f"- {proposal}")
    add("")


# --- the scale part ----------------------------------------------------------------------------


def _plan_block(title: str, plan: str, add: Any) -> None:
    add(f"<details><summary>{title}</summary>")
    add("")
    add("```text")
    add(plan)
    add("```")
    add("")
    add("</details>")
    add("")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _query_row(report: QueryReport) -> str:
    return (
        f"| {report.name} | {report.statement.median_ms:.2f} | {report.statement.p90_ms:.2f} | "
        f"{report.statement.max_ms:.2f} | {report.function_ms:.2f} | {_ms(report.endpoint_ms)} | "
        f"{_ms(report.generic_ms)} | {_verdict(report.met)} |"
    )


def render_scale(scale: ScaleResult, add: Any) -> None:
    profile, load = scale.profile, scale.load
    add(f"## Scale: {profile.cases:,} cases and {profile.notices:,} notices")
    add("")
    add(
        "A dedicated database, migrated with alembic, loaded with COPY into the real tables with every "
        "index and constraint in place (`benchmarks/bulk.py`): one person per case; cases opened over five "
        "years, most planning towards a release date in the next 18 months; notices of the default rule set "
        "(90, 30, 7 and 0 days to the municipality, 0 days to NAV), scheduled over the next 18 months, "
        f"delivered where their time has passed, some held or cancelled, and {profile.overdue_share:.1%} "
        "scheduled and overdue (the backlog the claim query finds). Then `VACUUM ANALYZE`."
    )
    add("")
    if scale.load_seconds:
        rate = (load.persons + load.cases + load.notices) / max(scale.load_seconds, 1e-9)
        add(
            f"Loaded in {scale.load_seconds:.0f} s ({rate:,.0f} rows/s; "
            + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in load.seconds.items())
            + f"). Database {scale.database_size}: "
            + ", ".join(f"`{table}` {size}" for table, size in scale.table_sizes.items())
            + "."
        )
        add("")
        states = ", ".join(f"{state} {count:,}" for state, count in sorted(load.notice_states.items()))
        add(
            f"Notices by state: {states}; {load.due_now:,} scheduled notices were due when the load finished."
        )
        add("")
    add(
        "The SQL is not written here: the real functions ran once against an engine whose statements were "
        "captured (`notify_worker.deliveries.claims.claim_due` in a rolled-back transaction, with "
        "notify-worker's default batch of 20; `case_api.cases.service.list_page` as the admin viewer, 50 per "
        "page). The deep "
        f"page's cursor is the one `list_page` itself returns after {(profile.deep_page - 1) * 50:,} rows "
        f"(page {profile.deep_page}). Each captured statement then ran as a prepared statement on one "
        "connection, as asyncpg runs it for the service: five warm-up executions, then twenty timed (median, "
        "p90, max; client round trip, rows included). *function* is the service function itself, ORM "
        "included; *endpoint* is `GET /api/v1/cases` of a case-api process on the same data, as admin, "
        "access log included (both medians of twenty, or of five where one call took over 0.5 s). "
        "*generic plan* is the execution time of the plan PostgreSQL may switch a prepared statement to "
        "after five executions (see the plans below)."
    )
    add("")
    for report in scale.queries:
        generic = report.generic_ms
        if report.met and generic is not None and generic > TARGET_MS:
            add(
                f"**{report.name}**: the timed executions kept the custom plan, but the generic plan takes "
                f"{generic:.1f} ms. A prepared statement switches to the generic plan once its estimated "
                "cost is no worse than the custom plans' average, so this figure is one statistics change "
                "away. Where a partial index answers only a literal (`WHERE state = 'scheduled'`), a "
                "parameter (`state = $1`) cannot use it in a generic plan; a plain index that leads with "
                "the parameter's column serves both."
            )
            add("")
    add(
        f"| query | median ms | p90 ms | max ms | function ms | endpoint ms | generic plan ms "
        f"| <= {TARGET_MS:.0f} ms |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---|")
    for report in scale.queries:
        add(_query_row(report))
    add("")
    tried = [(report, attempt) for report in scale.queries for attempt in report.tried]
    if not tried:
        add(
            "No fix was tried in this run: `benchmarks/scale.py` proposes none for these queries now (the "
            "indexes and the row comparison tried before are in the schema and the code; see *What was "
            "tried, before and after*)."
        )
        add("")
    if tried:
        add("### Proposed fixes, measured")
        add("")
        add(
            "Each proposal was applied in the scratch database only (the migration is the lead's), then the "
            "same statement was timed again the same way."
        )
        add("")
        add("| query | change | median ms | p90 ms | generic plan ms | <= target |")
        add("|---|---|---:|---:|---:|---|")
        for report, attempt in tried:
            add(
                f"| {report.name} | {attempt.label} | {attempt.timing.median_ms:.2f} | "
                f"{attempt.timing.p90_ms:.2f} | {_ms(attempt.generic_ms)} | {_verdict(attempt.met)} |"
            )
        add("")
        statements = sorted({statement for _, attempt in tried for statement in attempt.statements})
        add("Index statements tried:")
        add("")
        add("```sql")
        for statement in statements:
            add(statement.replace("bench_ix_", "ix_") + ";")
        add("```")
        add("")
        if any(attempt.sql for _, attempt in tried):
            add(
                "The row comparison is a change to `case_api.cases.service.list_page`: "
                "`tuple_(Case.opened_at, Case.id) < (opened_at, last)` instead of "
                "`or_(Case.opened_at < opened_at, and_(Case.opened_at == opened_at, Case.id < last))`; "
                "PostgreSQL takes a row comparison as the bound of an index scan, while the OR form can only "
                "filter what a scan from the newest row returns, so every page costs as much as all pages "
                "before it."
            )
            add("")
    add("### Query plans")
    add("")
    add(
        "`EXPLAIN (ANALYZE, BUFFERS)` of each statement: the custom plan (parameter values known, what "
        "PostgreSQL uses for a prepared statement's first five executions and keeps while it is cheaper) "
        "and the generic plan (`plan_cache_mode = force_generic_plan`, what it may switch to after that)."
    )
    add("")
    for report in scale.queries:
        add(f"**{report.name}** (parameters: {', '.join(report.params)})")
        add("")
        _plan_block("SQL", report.sql, add)
        _plan_block("custom plan", report.custom_plan, add)
        _plan_block("generic plan", report.generic_plan, add)
        for attempt in report.tried:
            _plan_block(f"with {attempt.label}: custom plan", attempt.plan, add)
            _plan_block(f"with {attempt.label}: generic plan", attempt.generic_plan, add)


# --- one slow receiver -------------------------------------------------------------------------


def _isolation_target(result: IsolationResult) -> str:
    ok = result.lag_p99_s <= ISOLATION_LAG_TARGET_S and not result.timed_out
    return (
        f"| one receiver {result.profile.slow_s:g} s slow: the others' lag p99 <= {ISOLATION_LAG_TARGET_S:g} s "
        f"(p50 {result.lag_p50_s:.2f} s) | {result.lag_p99_s:.2f} s | {_verdict(ok)} |"
    )


def render_isolation(result: IsolationResult, add: Any) -> None:
    profile = result.profile
    add("## Worker: one slow receiver")
    add("")
    add(
        "Real processes as in the worker runs: agreement-api, case-api, the receiver and one "
        f"`python -m notify_worker` (`{result.settings}`, everything else default). "
        f"{profile.notices:,} notices fall due in a steady flow, {profile.rate:g} a second for "
        f"{profile.seconds:g} s, spread over {profile.fast_recipients} recipients whose endpoints answer "
        f"at once and one whose endpoint answers only {profile.slow_s:g} s after each POST, longer than "
        "the worker's read timeout (every attempt to it times out and waits for its retry). Lag is "
        "arrival minus `due_at` of the fast recipients' notices; the run ends when all of them have "
        "arrived (`benchmarks/isolation.py`)."
    )
    add("")
    add(
        "| run | fast notices | arrived | lag p50 s | lag p99 s | lag max s | slow notices | POSTs to the "
        "slow one | its attempts | of them read timeouts | worker CPU | |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    add(
        f"| one slow receiver | {result.fast_notices:,} | {result.fast_received:,} | {result.lag_p50_s:.2f} | "
        f"{result.lag_p99_s:.2f} | {result.lag_max_s:.2f} | {result.slow_notices:,} | {result.slow_posts:,} | "
        f"{result.slow_attempts:,} | {result.slow_timeouts:,} | {_pct(result.worker_cpu)} |"
        + (" timed out |" if result.timed_out else " |")
    )
    add("")


def render_httpclients(result: HttpClientsResult | None, add: Any) -> None:
    """The webhook POST with the worker's aiohttp sender, pinned httpx and plain httpx: CPU per POST."""
    if result is None:
        return
    profile, versions = result.profile, result.versions
    add("## Worker: HTTP clients for webhook POSTs")
    add("")
    add(
        f"One process on {result.loop} (the loop uvicorn picks for the worker) POSTs {profile.posts:,} signed "
        f"notice bodies ({result.body_bytes} bytes each, built as the worker builds them) to the receiver, "
        f"{' and then '.join(str(c) for c in profile.concurrencies)} in flight, with each of three clients: "
        "*aiohttp, the worker's WebhookSender* is `WebhookSender.send` as the worker calls it (the URL check, "
        "the Standard Webhooks signature, aiohttp whose resolver answers only the checked addresses, "
        "`shared.ssrf.PinnedResolver`); *httpx, checked and pinned* makes the same check and signature "
        "through httpx and the pinned transport of `shared/ssrf.py`, as the worker sent before; *httpx, "
        "plain AsyncClient* sends the same signature and headers with no URL check and no pinning. The URL "
        "names its host (`localhost`), so the check resolves it before every POST as for a real endpoint. "
        "The receiver verifies every signature "
        f"with `standardwebhooks` in a process of its own. Each client is warmed up ({profile.warmup} POSTs) "
        f"before every run ({profile.runs} per client), the clients take turns, and the table gives each "
        "figure's median over the runs. CPU is `time.process_time()` of the sending process over a run (all its "
        "threads, the URL check's resolver thread too) per POST: unlike POSTs per second it hardly depends "
        "on what else the machine's cores are doing (`benchmarks/httpclients.py`; httpx "
        f"{versions.get('httpx')}, httpcore {versions.get('httpcore')}, aiohttp {versions.get('aiohttp')})."
    )
    add("")
    add(
        "| client | in flight | POSTs | POST/s | CPU ms per POST | sender CPU | p50 ms | p99 ms | connections "
        "opened | verified | bad signatures | failed | receiver CPU |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for client in result.clients:
        runs = client.runs
        add(
            f"| {client.label} | {client.concurrency} | {sum(r.posts for r in runs):,} | "
            f"{client.median(lambda r: r.rps):,.0f} | {client.median(lambda r: r.cpu_ms_per_post):.3f} | "
            f"{_pct(client.median(lambda r: r.client_busy))} | {client.median(lambda r: r.p50_ms):.1f} | "
            f"{client.median(lambda r: r.p99_ms):.1f} | {sum(r.connections for r in runs):,} | "
            f"{sum(r.verified for r in runs):,} | {sum(r.rejected for r in runs)} | "
            f"{sum(r.failed for r in runs)} | {_pct(client.median(lambda r: r.receiver_busy))} |"
        )
    add("")
    sentences = []
    for concurrency in profile.concurrencies:
        clients = [client for client in result.clients if client.concurrency == concurrency]
        cost = {client.key: client.median(lambda r: r.cpu_ms_per_post) for client in clients}
        worker, pinned, plain = cost.get("worker", 0.0), cost.get("pinned", 0.0), cost.get("httpx", 0.0)
        if worker <= min(pinned, plain):
            lead = (
                f"At {concurrency} in flight the worker's aiohttp sender used the least CPU per POST, "
                f"{worker:.3f} ms against {pinned:.3f} ms through httpx with the same check and pinning "
                f"({pinned / worker if worker else float('inf'):.1f}x less, {pinned - worker:.3f} ms saved per POST)"
            )
        else:
            best = min(clients, key=lambda client: cost[client.key])
            lead = (
                f"At {concurrency} in flight *{best.label}* used the least CPU per POST: {cost[best.key]:.3f} ms "
                f"against {worker:.3f} ms for the worker's aiohttp sender"
            )
        sentences.append(
            f"{lead}; plain httpx took {plain:.3f} ms, so httpx's own cost, not the check or the pinning, "
            f"is most of the difference ({pinned - plain:+.3f} ms for them)."
        )
    add(" ".join(sentences))
    if not all(client.all_verified for client in result.clients):
        add("")
        add("**Not every POST was answered 2xx and verified by the receiver**: see the table.")
    add("")


# --- scale-out -----------------------------------------------------------------------------------


def _scaleout_api_row(run: ApiRun, reference: ApiRun) -> str:
    r = run.load
    ratio = r["rps"] / reference.load["rps"] if reference.load["rps"] else 0.0
    case_api = " + ".join(_pct(share) for name, share in run.cpu.items() if name.startswith("case-api"))
    nginx = _pct(run.cpu.get("nginx", 0.0)) if run.via_nginx else "—"
    return (
        f"| {run.label} | {r['requests']:,} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {ratio:.2f}x | {case_api} | {nginx} | "
        f"{_pct(run.machine_cpu)} | {_pct(r['loadgen_cpu'])} | {_busy(run.busy)} |"
    )


def _busy(busy: Busy | None) -> str:
    """The PostgreSQL, others' CPU and load average cells of a row."""
    if busy is None:
        return "— | — | —"
    return f"{_pct(busy.postgres)} | {_pct(busy.others)} | {busy.loadavg_1min:.2f}"


def _spread_row(run: ApiRun, names: list[str]) -> str:
    total = sum(run.by_nginx.values())
    cells = [
        f"{run.by_nginx.get(name, 0):,} ({_pct(run.by_nginx.get(name, 0) / total if total else 0.0)})"
        for name in names
    ]
    differ = [
        f"{name} {run.by_process.get(name, 0):,}"
        for name in names
        if run.by_process.get(name, 0) != run.by_nginx.get(name, 0)
    ]
    own = "the same" if not differ else ", ".join(differ)
    return f"| {run.label} | {' | '.join(cells)} | {run.unrouted:,} | {own} |"


def _exactly_once(result: BatchResult) -> bool:
    return (
        result.notices_received == result.notices
        and result.notices_posted_twice == 0
        and result.deliveries_attempted_twice == 0
        and result.rejected == 0
        and result.delivered == result.notices
        and not result.timed_out
    )


def render_scaleout(result: ScaleoutResult, add: Any) -> None:
    profile, many, one = result.profile, result.many, result.one
    n = profile.api_processes
    add(f"## Scale-out: {n} case-api processes behind nginx, {profile.workers} notify-workers")
    add("")
    averages = "; ".join(
        f"{when} {one_min:.2f}, {five:.2f}, {fifteen:.2f}"
        for when, (one_min, five, fifteen) in result.loadavg.items()
    )
    add(
        f"The deployment shape on one machine (`benchmarks/scaleout.py`; alone: `python -m benchmarks "
        f"--only scaleout --output PATH`). This part ran until {result.finished} and took "
        f"{result.elapsed_s:.0f} s. Load average (1, 5, 15 min; `/proc/loadavg`) {averages}: the machine "
        f"has {machine()['cores']} cores and is shared, so whatever else ran at the time is in these figures."
    )
    add("")
    busy = [run.busy for run in result.api_runs] + [b.busy for b in (one, many) if b is not None and b.busy]
    add(
        "Each run below says what else used the CPU meanwhile, in shares of one core: *PostgreSQL* "
        "is PostgreSQL's processes (other databases' too), *others* the rest of the machine's busy CPU "
        "(`/proc/stat`) once this suite's processes and PostgreSQL's are taken out: other work on the "
        "machine (with PostgreSQL connections that ended during the run); *load avg* is the 1-minute load "
        "average as the run ended, which counts this part's own processes too. "
        f"Others took {_pct(min(b.others for b in busy))} to {_pct(max(b.others for b in busy))} of a core "
        "in these runs. The kernel shares a busy CPU among the processes that want it, so where others "
        "compete, more processes of ours also take a larger share from them."
    )
    add("")
    add("### case-api behind nginx")
    add("")
    add(
        f"nginx {result.nginx_version} ({NGINX_WORKERS} worker process; its own configuration, logs and "
        "pid file in the suite's temporary directory) with an `upstream` of the case-api processes "
        "(`python -m case_api`: one uvicorn process each, a pool of 10 connections, log level WARNING, "
        "the outbox relay on in each), round robin, HTTP/1.1 keep-alive to the upstreams; a second "
        "site of the same nginx has only case-api-1, and *direct* is case-api-1 without nginx. The API "
        "part's load generator and requests: *create* is `POST /api/v1/cases` as a region coordinator, "
        f"*read* `GET /api/v1/cases/{{id}}` over {profile.read_pool} cases; {profile.connections} "
        f"connections, {profile.warmup:g} s warm-up then {profile.duration:g} s measured per scenario. "
        "CPU columns are shares of one core over the scenario (warm-up included); *machine* is the "
        "share of all cores; *client* is the load generator's."
    )
    add("")
    add(
        "| scenario | requests | errors | requests/s | p50 ms | p99 ms | max ms | vs one process behind "
        "nginx | case-api CPU | nginx CPU | machine CPU | client CPU | PostgreSQL CPU | others' CPU | load avg |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ("create", "read"):
        reference = result.run(op, via_nginx=True, processes=1)
        for run in result.api_runs:
            if run.op == op:
                add(_scaleout_api_row(run, reference))
    add("")
    names = [f"case-api-{index + 1}" for index in range(n)]
    add(
        "Requests per process, as nginx's access log (`$upstream_addr`) counts them over the scenario, "
        "warm-up included; *unrouted* are lines without exactly one upstream (a retry on another "
        "process, or nginx's own answer); *own counters* compares each process's "
        "`tilbake_http_requests_total` at `/metrics` over the same scenario."
    )
    add("")
    add(f"| scenario | {' | '.join(names)} | unrouted | own counters |")
    add(f"|---|{'---:|' * n}---:|---|")
    for run in result.api_runs:
        if run.via_nginx and run.processes == n:
            add(_spread_row(run, names))
    add("")
    findings = []
    for op in ("create", "read"):
        direct = result.run(op, via_nginx=False, processes=1).load
        single = result.run(op, via_nginx=True, processes=1).load
        spread = result.run(op, via_nginx=True, processes=n)
        ratio = spread.load["rps"] / single["rps"] if single["rps"] else 0.0
        ratio_direct = single["rps"] / direct["rps"] if direct["rps"] else 0.0
        findings.append(
            f"{op}: {n} processes gave {ratio:.2f}x the requests/s of one behind the same nginx (p99 "
            f"{spread.load['p99_ms']:.0f} ms against {single['p99_ms']:.0f} ms) at {_pct(spread.machine_cpu)} "
            f"of the machine's CPU; one process behind nginx gave {ratio_direct:.2f}x the requests/s of the "
            f"same process direct (p99 {single['p99_ms']:.0f} ms against {direct['p99_ms']:.0f} ms)"
        )
    add("This run: " + "; ".join(findings) + ".")
    add("")
    saturated = [
        run for run in result.api_runs if run.via_nginx and run.processes == n and run.machine_cpu >= 0.9
    ]
    if saturated:
        add(
            f"With {n} processes the machine's cores were busy ({', '.join(_pct(run.machine_cpu) for run in saturated)} "
            "of all cores): the case-api processes, PostgreSQL, nginx, the load generator and whatever "
            "else ran share them, so another process adds no CPU, only another queue. That ratio is the "
            "machine's, not the design's; with a core per process it is to be measured again."
        )
        add("")
    add(f"### notify-workers: {profile.notices:,} notices due at once")
    add("")
    add(
        "The worker benchmark's rig (agreement-api, case-api, and the receiver that verifies every "
        "signature with the `standardwebhooks` package and records each notice id it is POSTed): "
        f"{profile.notices:,} scheduled notices COPYed into `notify_notice`, all due at the same moment, "
        f"spread over {profile.recipients} recipients with one endpoint each; the workers started "
        f"before and stopped after. Settings: `NOTIFY_WORKER_DISPATCH_INTERVAL_SECONDS={INTERVAL_S:g}`, "
        f"`NOTIFY_WORKER_DISPATCH_BATCH_SIZE={result.tuning.batch_size}`, everything else default. "
        "*missing* are notices the receiver never got; *twice* counts notices POSTed more than once "
        "(receiver) and deliveries attempted more than once (`notify_attempt`); lag is arrival minus "
        "`due_at`."
    )
    add("")
    add(
        "| run | notices | received | missing | POSTed twice | attempted twice | bad signatures | delivered "
        "| deliveries/s | steady/s | lag p50 s | lag p99 s | lag max s | worker CPU | machine CPU "
        "| PostgreSQL CPU | others' CPU | load avg | |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for batch in [b for b in (one, many) if b is not None]:
        workers = " + ".join(_pct(v) for name, v in batch.cpu.items() if name.startswith("notify-worker"))
        add(
            f"| {batch.label} | {batch.notices:,} | {batch.notices_received:,} | "
            f"{batch.notices - batch.notices_received:,} | {batch.notices_posted_twice:,} | "
            f"{batch.deliveries_attempted_twice:,} | {batch.rejected:,} | {batch.delivered:,} | "
            f"{batch.throughput:.0f} | {batch.steady_rate:.0f} | {batch.lag_p50_s:.2f} | {batch.lag_p99_s:.2f} | "
            f"{batch.lag_max_s:.2f} | {workers} | {_pct(batch.machine_cpu)} | "
            f"{_busy(batch.busy)} |" + (" timed out |" if batch.timed_out else " |")
        )
    add("")
    add(
        f"Share of each worker in the run *{many.label}*: the successful attempts it recorded (its own "
        "`tilbake_notify_delivery_outcomes_total`, counted in the process that made the attempt) and the "
        "notices it claimed and planned (`notify_notice.claimed_by`, the worker's `host:pid`). A notice "
        "claimed by one worker may be sent by another: attempts are leased from all due deliveries."
    )
    add("")
    add("| worker | successful attempts | share | notices claimed | share | CPU |")
    add("|---|---:|---:|---:|---:|---:|")
    sent_total = sum(many.sent_by.values())
    claimed_total = sum(many.claimed_by.values())
    for name in sorted(set(many.sent_by) | set(many.claimed_by)):
        sent, claimed = many.sent_by.get(name, 0), many.claimed_by.get(name, 0)
        add(
            f"| {name} | {sent:,} | {_pct(sent / sent_total if sent_total else 0.0)} | {claimed:,} | "
            f"{_pct(claimed / claimed_total if claimed_total else 0.0)} | {_pct(many.cpu.get(name, 0.0))} |"
        )
    add(f"| all | {sent_total:,} | | {claimed_total:,} | | |")
    add("")
    verdict = "every notice delivered exactly once" if _exactly_once(many) else "**not** exactly once"
    summary = (
        f"This run, {many.label}: {verdict} ({many.notices_received:,} of {many.notices:,} received, "
        f"{many.notices - many.notices_received:,} missing, {many.notices_posted_twice:,} POSTed twice, "
        f"{many.deliveries_attempted_twice:,} deliveries attempted twice, {many.rejected:,} bad signatures), "
        f"{many.throughput:.0f} deliveries/s, lag p50 {many.lag_p50_s:.2f} s and p99 {many.lag_p99_s:.2f} s"
    )
    if one is not None and one.throughput:
        summary += (
            f"; {many.throughput / one.throughput:.2f}x the deliveries/s of one worker over as many notices "
            f"({one.throughput:.0f}/s, lag p99 {one.lag_p99_s:.2f} s)"
        )
    add(summary + ".")
    add("")


# --- what was tried ----------------------------------------------------------------------------

TRIED_WHEN = "2026-11-23"
ISOLATION_TRIED_WHEN = "2026-12-06"
ISOLATION_TRIED = (
    "| fast receivers' lag p50 | 5.02-5.08 s | 0.17-0.18 s |",
    "| fast receivers' lag p99 | 10.18-10.20 s | 0.29-0.31 s |",
    "| fast receivers' lag max | 10.21-10.28 s | 0.45-0.56 s |",
    "| attempts to the slow receiver (all read timeouts) | 20 | 19-20 |",
)


def render_tried(add: Any) -> None:
    """The fixes applied since the first report, with the figures measured before and after. These
    figures are not of this run: they come from earlier short runs on the same machine (partial
    runs with ``--only``, and the statement counter and stage harness of this suite), kept here so
    the report says what each change bought."""
    add("## What was tried, before and after")
    add("")
    add(
        f"Fixes applied to the services since the first report, as measured before and after each in "
        f"earlier short runs on this same machine on {TRIED_WHEN} (partial runs of this suite, one "
        "configuration at a time). They are not figures of this run, and short runs on a shared "
        "machine move by a third or more; this run's own figures are in the sections above."
    )
    add("")
    add("### case-api")
    add("")
    add(
        "Applied: verified tokens remembered until they expire (`shared.auth`); the viewer's "
        "organization facts cached per organization (`case_api.organizations.service`, `case_api.access`); "
        "no pool pre-ping (`shared.db`; a connection the database dropped answers 503 + Retry-After "
        "once); the opened case's person not read again on create; a new case's domain rows as one "
        "Core INSERT; a read's case and person in one SELECT."
    )
    add("")
    add("| figure | before | after |")
    add("|---|---:|---:|")
    add("| statements per create | 8 (+3 pre-pings) | 5 |")
    add("| statements per read | 4 (+3 pre-pings) | 2 |")
    add("| CPU per create, in-process | 7.4 ms | 5.0 ms |")
    add("| CPU per read, in-process | 3.8 ms | 2.6 ms |")
    add("| create over HTTP, back to back | 80 req/s (0.03x), p99 663 ms | 138 req/s (0.08x), p99 451 ms |")
    add("| read over HTTP, back to back | 216 req/s (0.08x), p99 320 ms | 246 req/s (0.09x), p99 328 ms |")
    add("")
    add(
        "*statements* are those `benchmarks/statements.py` counts (BEGIN and COMMIT not among them). The "
        "HTTP figures are two runs of the API part one after the other; read's p99 did not move within "
        "the noise."
    )
    add("")
    add(
        "Then, on 2026-12-06: the create and the read as one prepared asyncpg statement each on the "
        "request's transaction (data-modifying CTEs; `case_api.cases.opening`, `case_api.cases.reads`), "
        "and the case answer serialized by pydantic-core straight to bytes. What one statement cost in "
        "CPU, in-process, the same SELECT of a case with its person (3,000 runs each): through the ORM "
        "0.61 ms, SQLAlchemy Core built per call 0.49 ms, Core built once 0.26 ms, a prepared asyncpg "
        "statement 0.08 ms; a session's cycle (checkout, BEGIN, one statement, COMMIT) 0.78 ms."
    )
    add("")
    add("| figure (quick API part, 32 connections, quiet machine) | before | after |")
    add("|---|---:|---:|")
    add("| statements per create | 5 | 1 |")
    add("| statements per read | 2 | 1 |")
    add("| case-api create | 207 req/s, p99 299 ms | 382-421 req/s, p99 271-298 ms |")
    add("| case-api read | 357-368 req/s, p99 199-210 ms | 545-612 req/s, p99 165-184 ms |")
    add("| same-work create (raw asyncpg, same statements) | 851-920 req/s | 893-1,017 req/s |")
    add("")
    add("### notify-worker")
    add("")
    add(
        "Applied: agreement-api's answers (endpoint lists, signing keys) cached "
        "(`NOTIFY_WORKER_ENDPOINT_CACHE_SECONDS`); a round's recipients asked side by side and its "
        "deliveries inserted at once, in one transaction; attempts leased in batches and sent side by "
        "side (`NOTIFY_WORKER_DELIVERY_CONCURRENCY`); `sniffio` installed (without it httpcore searched "
        "`sys.path` on every lock, 59 µs a time). Then a round's notice facts from case-api in one "
        "request (`GET /api/v1/notice-facts`) instead of one per case, and a chunk's attempts recorded "
        "in one transaction instead of one each (second table: 1,000 notices, batch 100, concurrency "
        "32, pool 20)."
    )
    add("")
    add("| figure | before | after |")
    add("|---|---:|---:|")
    add("| one worker, 600 notices due at once | 28-34 deliveries/s | 71 deliveries/s |")
    add("| CPU per notice: notify-worker | 13.9 ms | 8.3 ms |")
    add("| CPU per notice: agreement-api | 5.8 ms | 0.2 ms |")
    add("| CPU per notice: case-api | 3.6 ms | 3.6 ms (one request per case) |")
    add("")
    add("| figure | before | batch facts | and batched records |")
    add("|---|---:|---:|---:|")
    add("| one worker, 1,000 notices due at once | 47-63 deliveries/s | 99 deliveries/s | 122 deliveries/s |")
    add("| CPU per notice: notify-worker | 10.2-10.6 ms | 8.7 ms | 6.5 ms |")
    add("| CPU per notice: case-api | 5.2-5.7 ms | 0.35 ms | 0.36 ms |")
    add("| CPU per notice: agreement-api | 0.3 ms | 0.19 ms | 0.16 ms |")
    add("")
    add(
        "Then the hot path without the ORM, and another HTTP client (`python -m notify_worker` against "
        "the worker benchmark's rig: 3,000 notices due at once over 8 recipients, one worker, batch 500, "
        "concurrency 64, pool 40; the second of two runs each, on this machine on 2026-12-06; another "
        "benchmark shared the machine during the second to fourth columns, so CPU per notice is the "
        "steadier figure there). Each column adds one change to the one before: the lease, the record "
        "and the end of a notice as Core statements over the batch (one SELECT of the chunk's "
        "deliveries, one INSERT of its attempt rows, one executemany UPDATE of their states and one of "
        "the endpoints' health; the told record as one upsert); a batch's rows and events staged by "
        "one compiled statement instead of a multi-row VALUES list compiled afresh per batch size; the "
        "claim and the plan as Core statements; the webhook POSTs sent with aiohttp instead of httpx "
        "(see *HTTP clients for webhook POSTs*); and, a setting only, 16 attempts in flight per "
        "endpoint instead of the default 2 (8 recipients at 2 each allow 16 attempts in flight in all, "
        "whatever the concurrency)."
    )
    add("")
    add(
        "| figure | before | Core record, lease, end | one compiled statement | Core claim and plan | aiohttp | 16 per endpoint |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|")
    add("| one worker, 3,000 notices due at once | 147 deliveries/s | 212 | 258 | 305 | 474 | 663 |")
    add("| CPU per notice: notify-worker | 5.7 ms | 3.1 ms | 2.6 ms | 2.6 ms | 1.3 ms | 1.05 ms |")
    add("")
    add(
        "Attempts in flight per endpoint, two workers, 10,000 notices due at once over the 8 recipients "
        "(the same rig, one run each, 2026-12-06): 8 per endpoint 780 deliveries/s (lag p99 12.7 s), 16 "
        "per endpoint 983/s (10.0 s), 16 per endpoint at 128 in flight 1,042/s (9.6 s), 32 per endpoint at "
        "128 in flight 944/s (10.5 s); the CPU per notice falls as each record and lease transaction "
        "serves more attempts (0.7 ms a worker at 8, 0.54 ms at 16)."
    )
    add("")
    add(
        "Tried and left out: recording the ended attempts while the free slots are leased, two "
        "transactions side by side instead of one after the other. Both got slower (record 5.3 -> 8.1 ms, "
        "lease 3.8 -> 9.0 ms a transaction, the POST itself 2.1 -> 4.1 ms, on one event loop) and the "
        "run took 6.5 s instead of 5.5 s (3,000 notices, under `benchmarks/stages.py`); so did waiting "
        "10 ms after an attempt ends for others to end with it (2.6 -> 2.65-2.9 ms CPU per notice)."
    )
    add("")
    add("### notify-worker: one slow receiver")
    add("")
    add(
        "Applied: at most `NOTIFY_WORKER_DELIVERY_ENDPOINT_CONCURRENCY` (default 2) attempts in flight "
        "per endpoint, deliveries of an endpoint at its limit left due for a later lease, a slot freed "
        "as each attempt ends (a pipeline instead of chunks that waited for their slowest attempt), and "
        "a round of the loop that waits for its attempts at most 0.25 s before leaving slow ones in "
        "flight. Measured with `python -m benchmarks --only isolation` (`benchmarks/isolation.py`: "
        "real processes, one worker at its defaults, dispatch interval 0.25 s; 120 notices falling due "
        "one a second, spread over 8 receivers answering at once and one answering after 15 s, past the "
        "10 s read timeout), before and after the change, two runs each, on a 2-core AMD EPYC machine "
        f"(Python 3.11.7, PostgreSQL 15.20) on {ISOLATION_TRIED_WHEN}. Lag is the fast receivers' "
        "arrival minus `due_at` (107 notices)."
    )
    add("")
    add("| figure | before | after |")
    add("|---|---:|---:|")
    for row in ISOLATION_TRIED:
        add(row)
    add("")
    add(
        "The limit costs a burst to a single endpoint its width: 1,000 notices due at once for one "
        "endpoint, two workers (`tests/notify_worker/test_reliability.py`), went from 152 to 75-84 "
        "deliveries/s (148/s with the limit raised to 16). Spread over 8 endpoints (2,000 notices, one "
        "worker) nothing was lost: 111 -> 126 deliveries/s at the defaults, 164 -> 162/s at batch 500, "
        "concurrency 64, pool 40."
    )
    add("")
    add("### Queries at scale (100,000 cases, 500,000 notices)")
    add("")
    add(
        "Applied: the index `ix_case_case_opened` on `case_case (opened_at, id)` and "
        "`ix_notify_notice_state_due` on `notify_notice (state, due_at, id)` (migration e1a000000001); "
        "the case list's cursor as a row comparison, `(opened_at, id) < (t, i)`, instead of "
        "`opened_at < t OR (opened_at = t AND id < i)`, so the index scan starts at the cursor rather "
        "than filtering everything before it."
    )
    add("")
    add("| query | before | after |")
    add("|---|---:|---:|")
    add("| case list, first page | 120-185 ms (sequential scan and sort) | 0.4-0.6 ms (the index) |")
    add("| case list, deep page | 30-42 ms | 0.4-0.7 ms (index and row comparison) |")
    add("| claim due notices, generic plan | 54 ms | 0.04 ms (the (state, due_at, id) index) |")
    add("")


# --- the whole report --------------------------------------------------------------------------


def render(data: dict[str, Any]) -> str:
    """The whole report from one run's figures."""
    api: dict[str, Any] | None = data.get("api")
    worker: WorkerResult | None = data.get("worker")
    scale: ScaleResult | None = data.get("scale")
    isolation: IsolationResult | None = data.get("isolation")
    scaleout: ScaleoutResult | None = data.get("scaleout")
    lines: list[str] = []
    add = lines.append
    title = "# Benchmarks" if not data["quick"] else "# Benchmarks (quick smoke run: figures not meaningful)"
    add(title)
    add("")
    add(
        "case-api's create and read against a bare FastAPI + asyncpg baseline, notify-worker's signed "
        "deliveries, and the hot queries at a million cases, in one run on one machine. Written by "
        "`python -m benchmarks`; do not edit by hand."
    )
    add("")
    add(f"Run finished {data['finished']} and took {data['elapsed_s']:.0f} s.")
    add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add("# a PostgreSQL server you may create and drop databases on (default shown)")
    add("export BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres")
    add(
        ".venv/bin/python -m benchmarks --scale  # full run with the 1M-case load, rewrites docs/benchmarks.md"
    )
    add(".venv/bin/python -m benchmarks          # the same without the scale part")
    add(".venv/bin/python -m benchmarks --quick  # smoke test of every part, report to a temporary file")
    add("```")
    add("")
    add("## Machine and versions")
    add("")
    add("| | |")
    add("|---|---|")
    for key, value in data["machine"].items():
        add(f"| {key} | {value} |")
    for key, value in data["versions"].items():
        add(f"| {key} | {value} |")
    add("")
    add("## Targets")
    add("")
    add("| target | figure | verdict |")
    add("|---|---:|---|")
    if api is not None:
        for op in ("create", "read"):
            ratio = api["ratios"][op]
            add(
                f"| case-api {op} throughput >= {TARGETS[op]}x baseline | {ratio:.2f}x "
                f"| {_verdict(ratio >= TARGETS[op])} |"
            )
        samework = api.get("samework_ratios") or {}
        if "create" in samework:
            add(
                f"| case-api create within {SAMEWORK_FACTOR:g}x of the same-work app "
                f"| {1 / samework['create'] if samework['create'] else float('inf'):.2f}x slower "
                f"| {_verdict(samework['create'] >= 1 / SAMEWORK_FACTOR)} |"
            )
        for op in ("create", "read"):
            p99 = api["results"][f"case-api {op}"]["p99_ms"]
            add(
                f"| case-api {op} p99 <= {P99_TARGET_MS:.0f} ms at {api['settings']['connections']} connections "
                f"| {p99:.1f} ms | {_verdict(p99 <= P99_TARGET_MS)} |"
            )
    if worker is not None:
        single, pair = worker.single, worker.pair
        add(
            f"| one worker >= {DELIVERIES_TARGET:.0f} deliveries/s | {single.throughput:.0f}/s "
            f"| {_verdict(single.throughput >= DELIVERIES_TARGET)} |"
        )
        add(
            f"| {single.notices:,} notices due at once: lag p99 <= {LAG_P99_TARGET_S:g} s "
            f"(p50 {single.lag_p50_s:.1f} s) | {single.lag_p99_s:.1f} s "
            f"| {_verdict(single.lag_p99_s <= LAG_P99_TARGET_S)} |"
        )
        every = pair.notices_received == pair.notices
        add(
            f"| {pair.notices:,} notices due at once, two workers: all delivered within {PAIR_WITHIN_S:g} s "
            f"({pair.notices_received:,} received, lag p99 {pair.lag_p99_s:.1f} s) | {pair.lag_max_s:.1f} s "
            f"| {_verdict(every and pair.lag_max_s <= PAIR_WITHIN_S)} |"
        )
        twice = pair.deliveries_attempted_twice + pair.notices_posted_twice
        clean = twice == 0 and pair.delivered == pair.notices and pair.rejected == 0
        add(
            f"| two workers: no attempt made twice ({pair.notices:,} notices) | "
            f"{pair.deliveries_attempted_twice} deliveries attempted twice, {pair.notices_posted_twice} notices "
            f"POSTed twice | {_verdict(clean)} |"
        )
    if isolation is not None:
        add(_isolation_target(isolation))
    if scale is not None:
        for report in scale.queries:
            best = min([report.statement.median_ms] + [attempt.timing.median_ms for attempt in report.tried])
            note = f" (best with a proposed fix: {best:.2f} ms)" if not report.met and report.tried else ""
            add(
                f"| {report.name} <= {TARGET_MS:.0f} ms at {scale.profile.cases:,} cases / "
                f"{scale.profile.notices:,} notices | {report.statement.median_ms:.2f} ms{note} "
                f"| {_verdict(report.met)} |"
            )
    add("")
    add("## Memory")
    add("")
    add("Peak resident set size (VmHWM) of each process, over the part of the run it served.")
    add("")
    add("| process | under | VmHWM |")
    add("|---|---|---:|")
    if api is not None:
        add(f"| case-api | the API scenarios | {_mib(api['rss'].get('case-api'))} |")
        add(f"| baseline | the API scenarios | {_mib(api['rss'].get('baseline'))} |")
        if "same-work" in api["rss"]:
            add(f"| same-work | the API scenarios | {_mib(api['rss'].get('same-work'))} |")
    if worker is not None:
        for name, kib in worker.rss_kib.items():
            add(f"| {name} | the worker runs | {_mib(kib)} |")
    if scale is not None:
        add(
            f"| case-api | the case list over {scale.profile.cases:,} cases | {_mib(scale.case_api_rss_kib)} |"
        )
    add("")
    if api is not None:
        render_api(api, add)
    if worker is not None:
        render_worker(worker, add)
    if isolation is not None:
        render_isolation(isolation, add)
    render_httpclients(data.get("httpclients"), add)
    if scaleout is not None:
        render_scaleout(scaleout, add)
    if scale is not None:
        render_scale(scale, add)
    render_tried(add)
    add("## What is measured")
    add("")
    for paragraph in data["notes"]:
        add(f"- {paragraph}")
    add("")
    return "\n".join(lines)
