"""A peer down for a minute while coordinators go on working: nothing the worker consumed meanwhile
is lost, and every schedule ends up announcing the date that stands. Real processes, PostgreSQL and
RabbitMQ.

case-api (the replica coordinators use) publishes its case events through its outbox; the worker
consumes them and asks agreement-api for the rules and a case-api replica for consents. One of the
two peers is stopped for ``OUTAGE`` seconds while release dates move and new cases are opened with
consents; then it comes back on the same port. Timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notify_worker.notices.models import NoticeKind, NoticeState, NotifyNotice
from shared.bus import RabbitMQBus
from shared.settings import REPO_ROOT
from tests.events import case_event
from tests.infra import RabbitMQ, unique_name
from tests.notify_worker.harness import ADMIN, Processes, common_settings, wait_until
from tests.notify_worker.test_reliability import ready_cases, seed_directory

OUTAGE = 60.0  # seconds a peer is away
BEFORE, DURING = 6, 6  # cases ready before the outage; cases opened while the peer is away
# Waits between a failed event's attempts: about 100 s in all, so a one-minute outage is outlived.
RETRY_DELAYS = "1,2,4,8,15,30,40"


async def _notices(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, list[NotifyNotice]]:
    async with sessionmaker() as session:
        rows = (await session.execute(select(NotifyNotice))).scalars().all()
    per_case: dict[str, list[NotifyNotice]] = collections.defaultdict(list)
    for notice in rows:
        per_case[str(notice.case_id)].append(notice)
    return per_case


def _announces(notices: list[NotifyNotice], day: date) -> bool:
    """Two recipients, four milestones each, every one scheduled for ``day``."""
    pending = [n for n in notices if n.kind is NoticeKind.MILESTONE and n.state is NoticeState.SCHEDULED]
    return len(pending) == 8 and {n.release_date for n in pending} == {day}


@pytest.mark.parametrize("peer", ["agreement-api", "case-api"])
async def test_a_peer_down_for_a_minute_loses_no_event_and_leaves_no_wrong_date(
    peer: str,
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    processes: Processes,
) -> None:
    began = time.monotonic()
    broker = {"amqp_url": rabbitmq.url, "event_exchange": exchange_name}
    case_queue, worker_queue = unique_name("test.outage.case"), unique_name("test.outage.worker")
    amqp_queues.extend([case_queue, worker_queue])
    common = common_settings(database_url)
    agreement_settings = {**common, "outbox_relay_enabled": "false"}
    agreement = processes.start("agreement_api", "AGREEMENT_API_", agreement_settings, "agreement-api")
    await agreement.wait_ready()
    writer = processes.start(
        "case_api",
        "CASE_API_",
        {
            **common,
            **broker,
            "queue": case_queue,
            "outbox_poll_seconds": "0.1",
            "agreement_api_url": agreement.url,
        },
        "case-api-writer",
    )
    asked = processes.start(
        "case_api", "CASE_API_", {**common, "outbox_relay_enabled": "false"}, "case-api-asked"
    )
    worker = processes.start(
        "notify_worker",
        "NOTIFY_WORKER_",
        {
            **common,
            **broker,
            "queue": worker_queue,
            "agreement_api_url": agreement.url,
            "case_api_url": asked.url,
            "dispatch_enabled": "false",
            "event_retry_delays": RETRY_DELAYS,
            "endpoint_cache_seconds": "0",
        },
        "notify-worker",
    )
    await asyncio.gather(writer.wait_ready(), asked.wait_ready(), worker.wait_ready())
    directory = await seed_directory(agreement.url, committed_sessionmaker)

    async with httpx.AsyncClient(base_url=writer.url, timeout=30.0, trust_env=False) as client:
        cases = {
            case_id: day
            for case_id, (day, _number) in (await ready_cases(client, directory, range(BEFORE))).items()
        }

        async def scheduled() -> bool:
            per_case = await _notices(committed_sessionmaker)
            return all(_announces(per_case.get(case_id, []), day) for case_id, day in cases.items())

        await wait_until(scheduled, 60, lambda: f"schedules never made before the outage:\n{worker.tail()}")

        down = agreement if peer == "agreement-api" else asked
        down.stop()
        outage_began = time.monotonic()
        # Coordinators go on: every release date moves a week, and new cases get consents and dates.
        for case_id, day in list(cases.items()):
            moved = day + timedelta(days=7)
            etag = (await client.get(f"/api/v1/cases/{case_id}", headers=ADMIN)).headers["etag"]
            response = await client.post(
                f"/api/v1/cases/{case_id}/release-dates",
                json={
                    "kind": "expected",
                    "date": moved.isoformat(),
                    "certainty": "probable",
                    "source": "judgment",
                },
                headers={**ADMIN, "If-Match": etag},
            )
            assert response.status_code in (200, 201), response.text
            cases[case_id] = moved
        opened = await ready_cases(client, directory, range(BEFORE, BEFORE + DURING))
        cases |= {case_id: day for case_id, (day, _number) in opened.items()}
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_began)))
        settings = agreement_settings if down is agreement else {**common, "outbox_relay_enabled": "false"}
        back = processes.start(
            down.module, f"{down.module.upper()}_", {**settings, "port": str(down.port)}, f"{peer}-back"
        )
        await back.wait_ready()
        outage = time.monotonic() - outage_began

    consumer = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    try:

        async def settled() -> bool:
            return await scheduled() and (await consumer.dead_letters(worker_queue)).count == 0

        took = await wait_until(
            settled, 150, lambda: f"schedules never caught up after the outage:\n{worker.tail(60)}"
        )
        async with httpx.AsyncClient(base_url=worker.url, trust_env=False) as ops:
            metrics = (await ops.get("/metrics")).text
        retried = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("tilbake_events_retried_total{") and 'reason="transient"' in line
        )
        assert retried > 0, "no handler failed during the outage: the test proved nothing"
        per_case = await _notices(committed_sessionmaker)
        for case_id, day in cases.items():
            assert _announces(per_case[case_id], day), f"case {case_id} does not announce {day}"

        # A poison message still ends in the dead-letter queue, and the operator command sends it back.
        poison = case_event(uuid.uuid4())
        poison = poison.model_copy(update={"data": {k: v for k, v in poison.data.items() if k != "status"}})
        await consumer.publish(poison)
        await wait_until(
            lambda: _dead_count(consumer, worker_queue, 1),
            20,
            lambda: f"the poison message never reached .dead alone:\n{worker.tail(80)}",
        )
        redriven = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "tilbake.cli",
                "dead-letters",
                worker_queue,
                "--redrive",
                "--amqp-url",
                rabbitmq.url,
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert redriven.returncode == 0, redriven.stderr
        assert "1 dead letter(s) sent back" in redriven.stdout
        # Still poison: back in the dead-letter queue, listed by its id.
        listed: list[str | None] = []

        async def listed_again() -> bool:
            dead = await consumer.dead_letters(worker_queue)
            listed[:] = [item.event_id for item in dead.items]
            return dead.count == 1 and listed == [str(poison.id)]

        await wait_until(listed_again, 20, lambda: f"the redriven message is not listed alone: {listed}")
    finally:
        await consumer.close()
    print(
        f"\n{peer} down {outage:.0f} s: {len(cases)} cases ({BEFORE} moved, {DURING} opened while down); "
        f"{retried:.0f} transient retries; every schedule right {took:.1f} s after it came back; "
        f"test {time.monotonic() - began:.0f} s"
    )


async def _dead_count(bus: RabbitMQBus, queue: str, wanted: int) -> bool:
    return (await bus.dead_letters(queue)).count == wanted
