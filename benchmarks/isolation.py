"""One slow receiver among fast ones: do the others' deliveries wait for it?

Real processes, on the worker benchmark's rig (benchmarks.worker): agreement-api, case-api, the
receiver (benchmarks.receiver) and one ``python -m notify_worker`` with its delivery settings at
their defaults (concurrency, read timeout, what one endpoint may have in flight) and the worker
benchmark's dispatch interval. One recipient's endpoint answers only ``slow_s`` after each POST,
longer than the worker's read timeout, so every attempt to it times out and waits for its retry;
the others answer at once. Notices fall due in a steady flow (``rate`` a second for ``seconds``),
spread over the recipients in turn. Lag is the receiver's arrival time minus ``due_at``, of the
fast recipients' notices. The run ends when every fast notice has arrived, or at a deadline; then
the worker is stopped (SIGTERM: the attempts in flight end within the read timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from benchmarks import api, bulk, worker

LAG_P99_TARGET_S = 2.0


@dataclass(frozen=True)
class IsolationProfile:
    fast_recipients: int
    rate: float  # notices falling due a second, over all recipients
    seconds: float  # how long they keep falling due
    slow_s: float  # how late the slow receiver answers
    read_timeout_s: float | None = None  # NOTIFY_WORKER_DELIVERY_READ_TIMEOUT_SECONDS; None: the default
    drain_s: float = 120.0  # after the last notice fell due: how long the fast ones may still take

    @property
    def notices(self) -> int:
        return round(self.rate * self.seconds)


FULL_ISOLATION = IsolationProfile(fast_recipients=8, rate=1.0, seconds=120.0, slow_s=15.0)
QUICK_ISOLATION = IsolationProfile(
    fast_recipients=3, rate=4.0, seconds=4.0, slow_s=2.0, read_timeout_s=1.0, drain_s=30.0
)


@dataclass
class IsolationResult:
    profile: IsolationProfile
    settings: str
    fast_notices: int
    fast_received: int
    slow_notices: int
    slow_posts: int  # POSTs that reached the slow receiver
    slow_attempts: int  # attempts the worker recorded for its deliveries
    slow_timeouts: int  # of those, read timeouts
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    timed_out: bool
    worker_cpu: float  # share of one core over the flow
    elapsed_s: float = 0.0


async def run(profile: IsolationProfile, workdir: Path, log: Callable[[str], None]) -> IsolationResult:
    started = time.monotonic()
    slow = profile.fast_recipients  # the last recipient's endpoint is the slow one
    async with worker.open_rig(
        workdir,
        log,
        cases=profile.notices,
        recipients=profile.fast_recipients + 1,
        delays={slow: profile.slow_s},
        label="isolation",
    ) as rig:
        result = await _flow(rig, profile, slow)
    result.elapsed_s = time.monotonic() - started
    return result


async def _flow(rig: worker.Rig, profile: IsolationProfile, slow: int) -> IsolationResult:
    batch = rig.next_batch()
    settings = {"NOTIFY_WORKER_DISPATCH_INTERVAL_SECONDS": str(worker.INTERVAL_S)}
    if profile.read_timeout_s is not None:
        settings["NOTIFY_WORKER_DELIVERY_READ_TIMEOUT_SECONDS"] = str(profile.read_timeout_s)
    label = ", ".join(f"{key.removeprefix('NOTIFY_WORKER_')}={value}" for key, value in settings.items())
    rig.log(
        f"one slow receiver: {profile.notices:,} notices over {profile.seconds:g} s to "
        f"{profile.fast_recipients} fast receivers and one answering after {profile.slow_s:g} s ({label})"
    )
    process = api.start_notify_worker(
        rig.url,
        rig.workdir,
        name="notify-worker-isolation",
        agreement_api=rig.agreement,
        case_api=rig.case_api,
        settings=settings,
    )
    try:
        await api.wait_healthy(process)
        due = time.time() + worker.LEAD_S
        spacing = 1.0 / profile.rate
        conn = await asyncpg.connect(rig.url)
        try:
            ids = await bulk.due_notices(
                conn,
                rig.case_ids[: profile.notices],
                recipients=rig.recipients,
                due_at=datetime.fromtimestamp(due, UTC),
                batch=batch,
                spacing=timedelta(seconds=spacing),
            )
        finally:
            await conn.close()
        due_at = {str(notice_id): due + index * spacing for index, notice_id in enumerate(ids)}
        to_slow = {
            str(notice_id) for index, notice_id in enumerate(ids) if index % len(rig.recipients) == slow
        }
        fast = set(due_at) - to_slow
        cpu_before = process.cpu_seconds() or 0.0
        deadline = due + profile.seconds + profile.drain_s
        timed_out = True
        while time.time() < deadline:
            arrivals, _ = await worker.received(rig)
            if len({notice_id for notice_id, _, _ in arrivals if notice_id in fast}) == len(fast):
                timed_out = False
                break
            if process.process.poll() is not None:
                raise RuntimeError(f"{process.name} died:\n{process.tail()}")
            await asyncio.sleep(0.5)
        cpu = ((process.cpu_seconds() or 0.0) - cpu_before) / max(time.time() - due, 1e-9)
        rig.note_peak(process)
    finally:
        await asyncio.to_thread(process.stop)
    arrivals, _ = await worker.received(rig)
    first: dict[str, float] = {}
    slow_posts = 0
    for notice_id, _, arrived in arrivals:
        if notice_id in fast:
            first[notice_id] = min(arrived, first.get(notice_id, arrived))
        elif notice_id in to_slow:
            slow_posts += 1
    lags = [arrived - due_at[notice_id] for notice_id, arrived in first.items()]
    attempts, timeouts = await _slow_attempts(rig, batch, slow)
    result = IsolationResult(
        profile=profile,
        settings=label,
        fast_notices=len(fast),
        fast_received=len(first),
        slow_notices=len(to_slow),
        slow_posts=slow_posts,
        slow_attempts=attempts,
        slow_timeouts=timeouts,
        lag_p50_s=worker.percentile(lags, 0.50),
        lag_p99_s=worker.percentile(lags, 0.99),
        lag_max_s=max(lags) if lags else 0.0,
        timed_out=timed_out,
        worker_cpu=cpu,
    )
    rig.log(
        f"  fast receivers: {result.fast_received}/{result.fast_notices} arrived, lag p50 "
        f"{result.lag_p50_s:.2f} s p99 {result.lag_p99_s:.2f} s max {result.lag_max_s:.2f} s; slow receiver: "
        f"{result.slow_posts} POSTs, {result.slow_attempts} attempts ({result.slow_timeouts} read timeouts)"
        + (" (TIMED OUT)" if timed_out else "")
    )
    return result


async def _slow_attempts(rig: worker.Rig, batch: int, slow: int) -> tuple[int, int]:
    """Attempts recorded for the slow recipient's deliveries of this run, and how many timed out."""
    conn = await asyncpg.connect(rig.url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS attempts, count(*) FILTER (WHERE a.error_class = 'read_timeout') AS timeouts "
            "FROM notify_attempt a JOIN notify_delivery d ON d.id = a.delivery_id "
            "JOIN notify_notice n ON n.id = d.notice_id "
            "WHERE n.milestone_days = $1 AND n.recipient_organization_id = $2",
            batch,
            rig.recipients[slow],
        )
    finally:
        await conn.close()
    return int(row["attempts"]), int(row["timeouts"])
