"""Scale: the hot queries over a million cases and five million notices.

A dedicated scratch database is migrated with alembic and loaded with COPY (benchmarks.bulk). The
queries are not rewritten here: the real service functions run against a SQLAlchemy engine whose
statements are captured (``claim_due`` inside a rolled-back transaction, case-api's ``list_page``
as the admin viewer), and the captured SQL with its parameters is then

- timed as the services run it: one asyncpg prepared statement on one connection, five warm-up
  executions then the median of twenty. PostgreSQL plans a prepared statement afresh for its first
  five executions and may then switch to a generic plan that cannot see the parameter values;
  timing the sixth execution onwards measures whichever plan production would get;
- explained with ``EXPLAIN (ANALYZE, BUFFERS)``, both as a custom plan (parameter values known)
  and as the generic plan (``plan_cache_mode = force_generic_plan``).

The case list is also fetched through the real endpoint of a case-api process on the same data
(first page and the deep page), which also gives case-api's memory under that load.

A query that misses the target is run again with the index this module proposes for it (``PROPOSALS``),
created in the scratch database only (the lead adds the migration), and both figures are reported.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks import api, bulk
from shared.auth import Principal, Role, mint_token
from shared.db import create_engine, create_sessionmaker
from shared.settings import normalize_database_url

TARGET_MS = 10.0
RUNS = 20
WARMUP_RUNS = 5
SLOW_S = 0.5  # a function or endpoint call slower than this is timed SLOW_RUNS times only
SLOW_RUNS = 5
PAGE = 50
CLAIM_LIMIT = 20  # notify-worker's default NOTIFY_WORKER_DISPATCH_BATCH_SIZE


@dataclass(frozen=True)
class Proposal:
    """A fix for a query over the target, tried in the scratch database only."""

    label: str
    indexes: tuple[str, ...]
    rewrite: Callable[[Captured], Captured | None] | None = None


# Indexes (and rewrites) to try for a query over the target, by query name. Empty: the ones tried
# before are in the schema now (ix_case_case_opened and ix_notify_notice_state_due, migration
# e1a000000001) and list_page's cursor is a row comparison; their before and after figures are in the
# report's "What was tried, before and after". A new query over the target gets its proposal here.
PROPOSALS: dict[str, tuple[Proposal, ...]] = {}


@dataclass(frozen=True)
class ScaleProfile:
    cases: int
    notices: int
    deep_page: int  # the page number the deep cursor points at
    overdue_share: float  # scheduled notices already due: the claim query's backlog


FULL_SCALE = ScaleProfile(cases=1_000_000, notices=5_000_000, deep_page=1000, overdue_share=0.002)
QUICK_SCALE = ScaleProfile(cases=10_000, notices=50_000, deep_page=100, overdue_share=0.002)


@dataclass
class Captured:
    sql: str
    params: tuple[Any, ...]


@dataclass
class Timing:
    median_ms: float
    p90_ms: float
    max_ms: float
    rows: int


@dataclass
class Tried:
    """One proposal measured: what was changed, the figure and the plan with it."""

    label: str
    statements: list[str]
    timing: Timing
    plan: str
    generic_plan: str
    sql: str | None = None  # the rewritten query, when the proposal rewrites it

    @property
    def met(self) -> bool:
        return self.timing.median_ms <= TARGET_MS

    @property
    def generic_ms(self) -> float | None:
        return execution_ms(self.generic_plan)


@dataclass
class QueryReport:
    name: str
    sql: str
    params: list[str]
    statement: Timing  # the captured SQL as a prepared statement (what the service's driver runs)
    function_ms: float  # the service function itself, ORM included
    custom_plan: str
    generic_plan: str
    endpoint_ms: float | None = None
    tried: list[Tried] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.statement.median_ms <= TARGET_MS

    @property
    def generic_ms(self) -> float | None:
        return execution_ms(self.generic_plan)

    @property
    def generic_met(self) -> bool:
        """The generic plan, should PostgreSQL switch to it, stays within the target too."""
        generic = self.generic_ms
        return generic is None or generic <= TARGET_MS


@dataclass
class ScaleResult:
    profile: ScaleProfile
    load: bulk.LoadStats
    load_seconds: float
    database_size: str
    table_sizes: dict[str, str]
    queries: list[QueryReport] = field(default_factory=list)
    case_api_rss_kib: int | None = None
    elapsed_s: float = 0.0


class Recorder:
    """Captures every statement an engine sends (SQL and driver parameters)."""

    def __init__(self) -> None:
        self.statements: list[Captured] = []

    def __call__(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        if not executemany:
            self.statements.append(Captured(statement, tuple(parameters or ())))

    def take(self) -> list[Captured]:
        taken, self.statements = self.statements, []
        return taken


def literal(value: Any) -> str:
    """A parameter as an SQL literal, for ``EXECUTE`` of a prepared statement (bench values only)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    text = str(value).replace("'", "''")
    return f"'{text}'"


def execution_ms(plan: str) -> float | None:
    """``Execution Time`` of an EXPLAIN ANALYZE, in milliseconds."""
    match = re.search(r"Execution Time: ([0-9.]+) ms", plan)
    return float(match.group(1)) if match else None


def _timing(samples: list[float], rows: int) -> Timing:
    ordered = sorted(samples)
    return Timing(
        median_ms=statistics.median(ordered) * 1000,
        p90_ms=ordered[max(0, int(len(ordered) * 0.9) - 1)] * 1000,
        max_ms=ordered[-1] * 1000,
        rows=rows,
    )


async def time_statement(conn: asyncpg.Connection, captured: Captured, *, locking: bool) -> Timing:
    """Five warm-up executions, then the median of twenty, of one prepared statement (a locking
    statement runs in a transaction that is rolled back each time)."""
    statement = await conn.prepare(captured.sql)
    samples: list[float] = []
    rows = 0
    for run in range(WARMUP_RUNS + RUNS):
        transaction = conn.transaction() if locking else None
        if transaction is not None:
            await transaction.start()
        began = time.perf_counter()
        result = await statement.fetch(*captured.params)
        elapsed = time.perf_counter() - began
        if transaction is not None:
            await transaction.rollback()
        if run >= WARMUP_RUNS:
            samples.append(elapsed)
            rows = len(result)
    return _timing(samples, rows)


async def explain(conn: asyncpg.Connection, captured: Captured, *, generic: bool) -> str:
    """EXPLAIN (ANALYZE, BUFFERS), in a transaction that is rolled back (row locks, audit rows)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        if not generic:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + captured.sql, *captured.params)
        else:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute("PREPARE bench_generic AS " + captured.sql)
            arguments = ", ".join(literal(value) for value in captured.params)
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({arguments})")
    finally:
        await transaction.rollback()
        if generic:
            await conn.execute("DEALLOCATE bench_generic")
    return "\n".join(row[0] for row in rows)


async def sample(one: Callable[[], Awaitable[float]]) -> float:
    """Median milliseconds of ``one`` (which returns its own elapsed seconds): five warm-up runs and
    twenty timed ones; a call that takes over ``SLOW_S`` is only a context figure beside the timed
    statement, so it gets one warm-up and ``SLOW_RUNS`` timed runs (minutes saved at 1M cases)."""
    first = await one()
    warmups, runs = (1, SLOW_RUNS) if first > SLOW_S else (WARMUP_RUNS, RUNS)
    for _ in range(warmups - 1):
        await one()
    return statistics.median([await one() for _ in range(runs)]) * 1000


async def time_function(call: Callable[[AsyncSession], Awaitable[Any]], sessionmaker: Any) -> float:
    """Median milliseconds of the service function, each run in a rolled-back session."""

    async def one() -> float:
        async with sessionmaker() as session:
            began = time.perf_counter()
            await call(session)
            elapsed = time.perf_counter() - began
            await session.rollback()
        return elapsed

    return await sample(one)


def admin_viewer() -> Any:
    from case_api.access import Viewer

    return Viewer(
        principal=Principal(subject="bench-admin", role=Role.ADMIN), organization=None, region_id=None
    )


async def capture_queries(url: str, profile: ScaleProfile) -> list[tuple[str, Captured, float, bool]]:
    """Run the real service functions once to capture their SQL, then time them as functions:
    (name, captured select, function median ms, locking)."""
    from case_api.cases import service as cases
    from notify_worker.deliveries.claims import claim_due

    engine = create_engine(normalize_database_url(url), pool_size=2)
    recorder = Recorder()
    event.listen(engine.sync_engine, "before_cursor_execute", recorder)
    sessionmaker = create_sessionmaker(engine)
    viewer = admin_viewer()
    now = datetime.now(UTC)
    found: list[tuple[str, Captured, float, bool]] = []
    try:

        async def claim(session: AsyncSession) -> Any:
            return await claim_due(session, worker_id="bench-scale", now=now, limit=CLAIM_LIMIT)

        async def first_page(session: AsyncSession) -> Any:
            return await cases.list_page(session, viewer=viewer, limit=PAGE)

        async with sessionmaker() as session:
            depth = max(1, (profile.deep_page - 1) * PAGE)
            _, deep_cursor = await cases.list_page(session, viewer=viewer, limit=depth)
            await session.rollback()
        if deep_cursor is None:
            raise RuntimeError("too few cases for the deep page")

        async def deep_page(session: AsyncSession) -> Any:
            return await cases.list_page(session, viewer=viewer, limit=PAGE, cursor=deep_cursor)

        for name, call, locking, marker in (
            ("claim due notices", claim, True, "FROM notify_notice"),
            ("case list, first page", first_page, False, "FROM case_case"),
            ("case list, deep page", deep_page, False, "FROM case_case"),
        ):
            recorder.take()
            async with sessionmaker() as session:
                await call(session)
                await session.rollback()
            selects = [
                c for c in recorder.take() if c.sql.lstrip().upper().startswith("SELECT") and marker in c.sql
            ]
            if not selects:
                raise RuntimeError(f"{name}: no SELECT captured")
            function_ms = await time_function(call, sessionmaker)
            recorder.take()
            found.append((name, selects[0], function_ms, locking))
        found.append(("_deep_cursor", Captured(deep_cursor, ()), 0.0, False))
    finally:
        await engine.dispose()
    return found


async def endpoint_timings(url: str, workdir: Path, deep_cursor: str) -> tuple[float, float, int | None]:
    """Median ms of case-api's GET /api/v1/cases (first page, deep page) as admin; case-api's VmHWM."""
    server = api.start_case_api(url, workdir)
    try:
        await api.wait_healthy(server)
        headers = {"Authorization": f"Bearer {mint_token(role='admin', subject='bench-admin')}"}
        medians: list[float] = []
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=120.0) as client:
            pages: list[dict[str, str | int]] = [{"limit": PAGE}, {"limit": PAGE, "cursor": deep_cursor}]
            for params in pages:

                async def one(params: dict[str, str | int] = params) -> float:
                    began = time.perf_counter()
                    response = await client.get("/api/v1/cases", params=params)
                    elapsed = time.perf_counter() - began
                    if response.status_code != 200:
                        raise RuntimeError(
                            f"case list answered {response.status_code}: {response.text[:300]}"
                        )
                    return elapsed

                medians.append(await sample(one))
        rss = server.peak_rss_kib()
    finally:
        server.stop()
    return medians[0], medians[1], rss


async def load(url: str, profile: ScaleProfile, log: Callable[[str], None]) -> tuple[bulk.LoadStats, float]:
    rng = random.Random(20261123)
    directory = bulk.Directory.synthetic(rng)
    stats = bulk.LoadStats()
    now = datetime.now(UTC)
    began = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        # A bulk load, not a workload: no fsync wait per chunk (the data is thrown away afterwards).
        await conn.execute("SET synchronous_commit = off")
        started = time.monotonic()
        cases = await bulk.load_cases(conn, profile.cases, directory=directory, now=now, rng=rng)
        stats.seconds["persons and cases"] = time.monotonic() - started
        stats.persons = stats.cases = profile.cases
        await bulk.load_notices(
            conn,
            cases,
            profile.notices,
            directory=directory,
            now=now,
            rng=rng,
            overdue_share=profile.overdue_share,
            stats=stats,
        )
        log("VACUUM ANALYZE (statistics and visibility map, as autovacuum would leave them)")
        started = time.monotonic()
        for table in ("case_person", "case_case", "notify_notice"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        stats.seconds["vacuum analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    return stats, time.monotonic() - began


async def measure(
    captured: Sequence[tuple[str, Captured, float, bool]], conn: asyncpg.Connection
) -> list[QueryReport]:
    reports: list[QueryReport] = []
    for name, query, function_ms, locking in captured:
        if name.startswith("_"):
            continue
        reports.append(
            QueryReport(
                name=name,
                sql=query.sql,
                params=[literal(value) for value in query.params],
                statement=await time_statement(conn, query, locking=locking),
                function_ms=function_ms,
                custom_plan=await explain(conn, query, generic=False),
                generic_plan=await explain(conn, query, generic=True),
            )
        )
    return reports


async def try_proposals(
    conn: asyncpg.Connection,
    reports: list[QueryReport],
    captured: Sequence[tuple[str, Captured, float, bool]],
    log: Callable[[str], None],
    *,
    every: bool = False,
) -> list[str]:
    """For each query over the target, or whose generic plan is (``every``: each query, so a smoke
    run exercises this) create the proposed index here and measure again (also with
    the proposed rewrite, when there is one). Returns the indexes created."""
    by_name = {name: (query, locking) for name, query, _, locking in captured}
    created: list[str] = []
    for report in reports:
        if report.met and report.generic_met and not every:
            continue
        for proposal in PROPOSALS.get(report.name, ()):
            for statement in proposal.indexes:
                if statement not in created:
                    log(f"trying the proposed index: {statement}")
                    await conn.execute(statement)
                    await conn.execute(f"ANALYZE {statement.split()[4]}")
                    created.append(statement)
            query, locking = by_name[report.name]
            rewritten = proposal.rewrite(query) if proposal.rewrite else query
            if rewritten is None:
                log(f"{report.name}: the rewrite '{proposal.label}' does not apply to the SQL any more")
                continue
            report.tried.append(
                Tried(
                    label=proposal.label,
                    statements=list(proposal.indexes),
                    timing=await time_statement(conn, rewritten, locking=locking),
                    plan=await explain(conn, rewritten, generic=False),
                    generic_plan=await explain(conn, rewritten, generic=True),
                    sql=rewritten.sql if proposal.rewrite else None,
                )
            )
    return created


async def run(
    profile: ScaleProfile,
    workdir: Path,
    log: Callable[[str], None],
    *,
    keep: str | None = None,
    try_every_proposal: bool = False,
) -> ScaleResult:
    """Create, migrate and load a scratch database, measure, drop it (``keep``: reuse/keep that one)."""
    started = time.monotonic()
    name = keep or f"tilbake_bench_scale_{uuid.uuid4().hex[:8]}"
    reuse = False
    if keep:
        admin = await asyncpg.connect(api.server_url())
        try:
            reuse = bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", keep))
        finally:
            await admin.close()
    url = api.database_url(name) if reuse else await api.create_database(name)
    try:
        if reuse:
            log(f"reusing the loaded database {name}")
            stats, load_seconds = bulk.LoadStats(persons=profile.cases, cases=profile.cases), 0.0
            stats.notices = profile.notices
        else:
            log(f"scale: database {name}, {profile.cases:,} cases and {profile.notices:,} notices")
            await asyncio.to_thread(api.migrate, url)
            stats, load_seconds = await load(url, profile, log)
        captured = await capture_queries(url, profile)
        deep_cursor = next(query.sql for label, query, _, _ in captured if label == "_deep_cursor")
        conn = await asyncpg.connect(url)
        try:
            reports = await measure(captured, conn)
            size = str(await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))"))
            tables = {
                table: str(await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size($1))", table))
                for table in ("case_person", "case_case", "notify_notice")
            }
            first_ms, deep_ms, rss = await endpoint_timings(url, workdir, deep_cursor)
            for report in reports:
                if report.name == "case list, first page":
                    report.endpoint_ms = first_ms
                elif report.name == "case list, deep page":
                    report.endpoint_ms = deep_ms
            created = await try_proposals(conn, reports, captured, log, every=try_every_proposal)
            if keep:
                for statement in created:
                    await conn.execute(f"DROP INDEX IF EXISTS {statement.split()[2]}")
        finally:
            await conn.close()
        for report in reports:
            after = "".join(f"; {tried.label}: {tried.timing.median_ms:.2f} ms" for tried in report.tried)
            log(
                f"  {report.name}: {report.statement.median_ms:.2f} ms "
                f"(function {report.function_ms:.2f} ms){after}"
            )
    finally:
        if not keep:
            await api.drop_database(name)
            log(f"dropped {name}")
    return ScaleResult(
        profile=profile,
        load=stats,
        load_seconds=load_seconds,
        database_size=size,
        table_sizes=tables,
        queries=reports,
        case_api_rss_kib=rss,
        elapsed_s=time.monotonic() - started,
    )
