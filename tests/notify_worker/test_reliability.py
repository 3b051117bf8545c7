"""notify-worker's promises under failure, with real processes, real PostgreSQL and real RabbitMQ.

- A worker killed in the middle of a delivery: the notice is delivered after restart, none is lost,
  and every retry carries the same ``webhook-id``.
- RabbitMQ restarted while case events flow: no event lost, no notice scheduled twice.
- A receiver answering 500, timing out, 429 with ``Retry-After``, then 2xx; and one answering 410.
- Two worker processes over 1,000 due notices: each delivered exactly once to a receiver that counts.

The worker, agreement-api and case-api run as ``python -m`` processes (see harness.py); notices for
the delivery tests are written straight into ``notify_notice`` (scheduled, due a minute ago), as
test_delivery.py does. Timings are printed (``pytest -s``) for the record, never asserted.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.models import CaseOutbox
from case_api.organizations import service as case_organizations
from notify_worker.deliveries.models import DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.models import NotifyInbox
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from shared.db import unit_of_work
from tests.case_api.conftest import identity_number
from tests.infra import RabbitMQ, unique_name
from tests.notify_worker.harness import (
    ADMIN,
    ServiceProcess,
    common_settings,
    register_recipient,
    start_service,
    wait_until,
)
from tests.webhook_receiver import Answer, Receiver

PUBLIC_CASE_API = "https://tilbake.example.no"
MILESTONES = [0, 7, 30, 90]  # the default rule set


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability-logs")


@dataclass(frozen=True)
class Upstreams:
    agreement: ServiceProcess
    case: ServiceProcess


@pytest.fixture(scope="module")
async def upstreams(database_url: str, logs: Path) -> AsyncIterator[Upstreams]:
    """agreement-api (endpoints and signing keys) and case-api (notice facts) for the whole module,
    over HTTP as in production; started side by side."""
    agreement = start_service(
        "agreement_api",
        "AGREEMENT_API_",
        {
            **common_settings(database_url),
            "outbox_relay_enabled": "false",
            "allow_private_webhook_urls": "true",
            "allow_http_webhooks": "true",
        },
        log_dir=logs,
    )
    case = start_service(
        "case_api",
        "CASE_API_",
        {
            **common_settings(database_url),
            "outbox_relay_enabled": "false",
            "agreement_api_url": agreement.url,
        },
        log_dir=logs,
    )
    try:
        await asyncio.gather(agreement.wait_ready(), case.wait_ready())
        yield Upstreams(agreement, case)
    finally:
        case.stop()
        agreement.stop()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@dataclass
class Stack:
    """The running services of one test, and a way to start workers (stopped after the test)."""

    database_url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    agreement: ServiceProcess
    case: ServiceProcess
    receiver: Receiver
    logs: Path
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(self, module: str, prefix: str, settings: Mapping[str, str], name: str) -> ServiceProcess:
        service = start_service(module, prefix, settings, log_dir=self.logs, name=name)
        self.processes.append(service)
        return service

    def worker(self, name: str, **overrides: str) -> ServiceProcess:
        """``python -m notify_worker`` with a quick dispatch loop and no broker unless told."""
        settings = {
            **common_settings(self.database_url),
            "agreement_api_url": self.agreement.url,
            "case_api_url": self.case.url,
            "case_api_public_url": PUBLIC_CASE_API,
            "queue": unique_name("test.reliability"),
            "dispatch_interval_seconds": "0.2",
            "shutdown_grace_seconds": "5",
            "allow_private_webhook_urls": "true",  # the receiver is http on 127.0.0.1
            "allow_http_webhooks": "true",
            **overrides,
        }
        return self.start("notify_worker", "NOTIFY_WORKER_", settings, name)


@pytest.fixture
async def stack(
    committed_sessionmaker: async_sessionmaker[AsyncSession],  # first in, last out: truncates after
    database_url: str,
    upstreams: Upstreams,
    receiver_server: Receiver,
    logs: Path,
) -> AsyncIterator[Stack]:
    receiver_server.reset()
    ready = Stack(
        database_url, committed_sessionmaker, upstreams.agreement, upstreams.case, receiver_server, logs
    )
    try:
        yield ready
    finally:
        for process in reversed(ready.processes):
            process.stop()
        receiver_server.reset()


# --- notices and what became of them ------------------------------------------------------------


async def insert_notices(
    sessionmaker: async_sessionmaker[AsyncSession], organization_id: str, count: int
) -> list[uuid.UUID]:
    """``count`` scheduled milestone notices to one recipient, due a minute ago, one case each."""
    due = datetime.now(UTC) - timedelta(minutes=1)
    notices = [
        NotifyNotice(
            case_id=uuid.uuid4(),
            recipient_organization_id=uuid.UUID(organization_id),
            recipient_kind=RecipientKind.OTHER,
            agreement_source=AgreementSource.DEFAULT,
            kind=NoticeKind.MILESTONE,
            milestone_days=30,
            release_date=date(2027, 3, 1),
            due_at=due,
            state=NoticeState.SCHEDULED,
            receipt_deadline_days=5,
        )
        for _ in range(count)
    ]
    async with unit_of_work(sessionmaker) as session:
        session.add_all(notices)
    return [notice.id for notice in notices]


async def states(sessionmaker: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(col(NotifyNotice.state), func.count())
            .where(col(NotifyNotice.id).in_(ids))
            .group_by(col(NotifyNotice.state))
        )
        return {state.value: int(count) for state, count in rows.all()}


async def delivery_of(
    sessionmaker: async_sessionmaker[AsyncSession], notice_id: uuid.UUID
) -> tuple[NotifyNotice, NotifyDelivery, list[NotifyAttempt]]:
    async with sessionmaker() as session:
        notice = await session.get(NotifyNotice, notice_id, populate_existing=True)
        assert notice is not None
        delivery = (
            await session.execute(
                select(NotifyDelivery)
                .where(col(NotifyDelivery.notice_id) == notice_id)
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        attempts = (
            await session.execute(
                select(NotifyAttempt)
                .where(col(NotifyAttempt.delivery_id) == delivery.id)
                .order_by(col(NotifyAttempt.at))
            )
        ).scalars()
        return notice, delivery, list(attempts)


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def all_in(wanted: str, ids: list[uuid.UUID], sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    async def check() -> bool:
        return (await states(sessionmaker, ids)).get(wanted, 0) == len(ids)

    return check


# --- 1. a worker killed mid-delivery ------------------------------------------------------------


async def test_a_worker_killed_mid_delivery_loses_nothing_and_keeps_the_webhook_id(stack: Stack) -> None:
    began = time.monotonic()
    recipient = await register_recipient(stack.agreement.url, stack.receiver, "kill")
    # Short timeouts and margin give a short lease: 1 + 0.5 + 2 * 2 + 2 = 7.5 s.
    timeouts = {
        "http_timeout_seconds": "1",
        "delivery_connect_timeout_seconds": "0.5",
        "delivery_read_timeout_seconds": "2",
        "lease_margin_seconds": "2",
    }
    first = stack.worker("worker-killed", **timeouts)
    await first.wait_ready()
    # The first POST is held open and its sender gets SIGKILL the moment it arrives: the worker
    # dies mid-delivery, before any answer or timeout, and nothing of the attempt is recorded.
    stack.receiver.script("kill", Answer(hold=True, on_arrival=first.kill_now))
    notice_ids = await insert_notices(stack.sessionmaker, recipient.organization_id, 10)
    await wait_until(
        lambda: _has_requests(stack.receiver, "kill", 1), 20, lambda: f"no delivery arrived:\n{first.tail()}"
    )
    first.kill()
    killed_at = time.time()
    held = stack.receiver.requests("kill")[0]
    assert held.notice_id is not None
    held_notice = uuid.UUID(held.notice_id)
    _, delivery, attempts = await delivery_of(stack.sessionmaker, held_notice)
    assert delivery.state is DeliveryState.PENDING
    assert attempts == [], "the killed attempt left no record"
    assert delivery.next_attempt_at > datetime.now(UTC) + timedelta(seconds=3), "leased, not due"

    second = stack.worker("worker-restarted", claim_timeout_seconds="2", **timeouts)
    await second.wait_ready()
    waited = await wait_until(
        all_in(NoticeState.DELIVERED.value, notice_ids, stack.sessionmaker),
        70,
        lambda: f"not all delivered: {stack.receiver.per_notice()}\n{second.tail()}",
    )

    requests = stack.receiver.requests("kill")
    per_notice = collections.Counter(item.notice_id for item in requests)
    assert set(per_notice) == {str(notice_id) for notice_id in notice_ids}, "no notice lost"
    assert per_notice[held.notice_id] == 2, "the interrupted delivery was sent again, once"
    # Attempts run side by side: others of the killed worker's batch may have reached the receiver
    # without being recorded. They are sent again too, at most once more, each with its own id.
    assert set(per_notice.values()) <= {1, 2}
    for notice_id in per_notice:
        ids = {item.webhook_id for item in requests if item.notice_id == notice_id}
        assert len(ids) == 1, f"every retry of {notice_id} carries the same webhook-id"
    again = [item for item in requests if item.notice_id == held.notice_id]
    assert [item.webhook_id for item in again] == [delivery.webhook_id] * 2, "the same webhook-id"
    assert all(item.verified for item in requests), "every POST verifies with standardwebhooks"
    assert again[1].at - killed_at > 3, "sent again only when the dead worker's lease ran out"

    notice, delivery, attempts = await delivery_of(stack.sessionmaker, held_notice)
    assert notice.state is NoticeState.DELIVERED
    assert delivery.state is DeliveryState.SUCCEEDED
    assert [(a.status_code, a.error_class) for a in attempts] == [(200, None)]
    assert await count(stack.sessionmaker, NotifyAttempt) == 10
    print(
        f"\nkill mid-delivery: redelivered {again[1].at - held.at:.1f} s after the first POST; "
        f"all 10 delivered {waited:.1f} s after the restart; test {time.monotonic() - began:.1f} s"
    )


async def _has_requests(receiver: Receiver, endpoint: str, n: int) -> bool:
    return len(receiver.requests(endpoint)) >= n


# --- 3. a receiver's answers, step by step -------------------------------------------------------


async def test_500_timeout_429_then_success_and_410_step_by_step(stack: Stack) -> None:
    began = time.monotonic()
    steps = await register_recipient(stack.agreement.url, stack.receiver, "steps")
    gone = await register_recipient(stack.agreement.url, stack.receiver, "gone")
    stack.receiver.script(
        "steps",
        Answer(500),
        Answer(200, delay=3.0),  # answers only after the worker's read timeout (1 s)
        Answer(429, retry_after="1"),
        Answer(200),
    )
    stack.receiver.script("gone", Answer(410))
    [steps_notice] = await insert_notices(stack.sessionmaker, steps.organization_id, 1)
    [gone_notice] = await insert_notices(stack.sessionmaker, gone.organization_id, 1)
    worker = stack.worker(
        "worker-steps",
        retry_schedule_seconds="0.5,0.5,0.5",
        delivery_connect_timeout_seconds="1",
        delivery_read_timeout_seconds="1",
    )
    await worker.wait_ready()
    await wait_until(
        all_in(NoticeState.DELIVERED.value, [steps_notice], stack.sessionmaker),
        30,
        lambda: f"not delivered: {stack.receiver.requests('steps')}\n{worker.tail()}",
    )
    await wait_until(
        all_in(NoticeState.DEAD.value, [gone_notice], stack.sessionmaker),
        10,
        lambda: f"the 410 notice did not end: {stack.receiver.requests('gone')}\n{worker.tail()}",
    )
    await asyncio.sleep(1.5)  # three retry pauses: room for any wrongful attempt to show up

    notice, delivery, attempts = await delivery_of(stack.sessionmaker, steps_notice)
    assert [(a.status_code, a.error_class) for a in attempts] == [
        (500, "server_error"),
        (None, "read_timeout"),
        (429, "rate_limited"),
        (200, None),
    ]
    assert delivery.state is DeliveryState.SUCCEEDED
    assert delivery.attempts == 4
    assert notice.state is NoticeState.DELIVERED
    assert 900 <= attempts[1].duration_ms < 3000, "the read timeout (1 s) cut the slow answer short"
    received = stack.receiver.requests("steps")
    assert len(received) == 4
    assert {item.webhook_id for item in received} == {delivery.webhook_id}, "one webhook-id throughout"
    assert all(item.verified for item in received)
    at = [attempt.at.timestamp() for attempt in attempts]
    # The POST after a failure waits for the retry pause (0.5 s, ±20 %) counted from the record...
    assert received[1].at - at[0] >= 0.4
    assert received[2].at - at[1] >= 0.4
    # ...but after the 429 for the Retry-After (1 s), not for the shorter pause.
    assert received[3].at - at[2] >= 1.0
    assert at[3] - at[2] >= 1.0

    notice, delivery, attempts = await delivery_of(stack.sessionmaker, gone_notice)
    assert len(stack.receiver.requests("gone")) == 1, "never tried again after 410"
    assert [(a.status_code, a.error_class) for a in attempts] == [(410, "gone")]
    assert delivery.state is DeliveryState.FAILED_PERMANENTLY
    assert notice.state is NoticeState.DEAD, "its only endpoint is gone"
    # ...and the worker disabled the endpoint in agreement-api (after the attempt's commit).
    endpoint: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=stack.agreement.url, trust_env=False) as client:

        async def disabled() -> bool:
            answer = await client.get(f"/api/v1/webhooks/{gone.endpoint_id}", headers=ADMIN)
            endpoint.update(answer.json())
            return endpoint["state"] == "disabled"

        await wait_until(disabled, 10, lambda: f"the endpoint answering 410 is still {endpoint}")
    assert endpoint["disabled_reason"] == "gone"
    print(
        f"\nstep by step: gaps {[round(b - a, 2) for a, b in itertools.pairwise(at)]} s; "
        f"endpoint after 410: {endpoint['state']}; test {time.monotonic() - began:.1f} s"
    )


# --- 4. two workers, 1,000 notices --------------------------------------------------------------


async def test_two_workers_deliver_a_thousand_notices_exactly_once(stack: Stack) -> None:
    total = 1000
    recipient = await register_recipient(stack.agreement.url, stack.receiver, "count")
    workers = [stack.worker(f"worker-{n}", dispatch_batch_size="50") for n in (1, 2)]
    await asyncio.gather(*(worker.wait_ready() for worker in workers))
    began = time.monotonic()
    notice_ids = await insert_notices(stack.sessionmaker, recipient.organization_id, total)
    took = await wait_until(
        all_in(NoticeState.DELIVERED.value, notice_ids, stack.sessionmaker),
        200,
        lambda: f"{len(stack.receiver.per_notice())} of {total} arrived\n{workers[0].tail()}",
    )

    received = stack.receiver.requests("count")
    per_notice = collections.Counter(item.notice_id for item in received)
    assert len(per_notice) == total, "1,000 distinct notices"
    assert len(received) == total, "1,000 POSTs: none sent twice"
    assert set(per_notice) == {str(notice_id) for notice_id in notice_ids}
    assert max(stack.receiver.per_webhook_id().values()) == 1
    assert all(item.verified for item in received)
    assert await count(stack.sessionmaker, NotifyAttempt) == total, "no attempt recorded twice"
    assert await count(stack.sessionmaker, NotifyDelivery) == total
    async with stack.sessionmaker() as session:
        claimers = (
            await session.execute(
                select(col(NotifyNotice.claimed_by), func.count()).group_by(col(NotifyNotice.claimed_by))
            )
        ).all()
        succeeded_once = await session.scalar(
            select(func.count()).where(
                col(NotifyDelivery.state) == DeliveryState.SUCCEEDED, col(NotifyDelivery.attempts) == 1
            )
        )
    assert succeeded_once == total
    assert len(claimers) == 2, f"both workers took a share, or the race proved nothing: {claimers}"
    print(
        f"\ntwo workers: {total} notices delivered in {took:.1f} s ({total / took:.0f}/s); "
        f"claimed per worker {sorted(n for _, n in claimers)}; "
        f"test {time.monotonic() - began:.1f} s after the notices fell due"
    )


# --- 2. RabbitMQ restarted while case events flow -----------------------------------------------

CASES = 200
BEFORE_RESTART = 60  # cases written before the restart begins; the rest while it goes on


@dataclass(frozen=True)
class Directory:
    prison: str
    oslo: str
    nav: str


async def seed_directory(agreement_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> Directory:
    """The organizations the default rules name, in agreement-api (through its API) and in
    case-api's own copy of the directory."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("region", {"type": "region", "name": "Region øst"}),
        ("prison", {"type": "prison", "name": "Oslo fengsel", "parent": "region"}),
        ("oslo", {"type": "municipality", "name": "Oslo kommune", "kommunenummer": "0301"}),
        (
            "nav",
            {
                "type": "nav_office",
                "name": "NAV Grünerløkka",
                "kommunenummer": "0301",
                "enhetsnummer": "9301",
            },
        ),
    ]
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=agreement_url, timeout=10.0, trust_env=False) as client:
        for key, spec in specs:
            body = {k: v for k, v in spec.items() if k != "parent"}
            if "parent" in spec:
                body["parent_id"] = ids[spec["parent"]]
            response = await client.post("/api/v1/organizations", json=body, headers=ADMIN)
            assert response.status_code == 201, response.text
            ids[key] = str(response.json()["id"])
    async with unit_of_work(sessionmaker) as session:
        for key, spec in specs:
            await case_organizations.upsert(
                session,
                organization_id=uuid.UUID(ids[key]),
                type=spec["type"],
                name=spec["name"],
                parent_id=uuid.UUID(ids[spec["parent"]]) if "parent" in spec else None,
                kommunenummer=spec.get("kommunenummer"),
                enhetsnummer=spec.get("enhetsnummer"),
            )
    return Directory(prison=ids["prison"], oslo=ids["oslo"], nav=ids["nav"])


async def ready_case(client: httpx.AsyncClient, directory: Directory, n: int) -> tuple[str, date, str]:
    """A case as a coordinator builds it: opened, consent for both recipients, municipality
    confirmed, a release date (moved once for every other case). Returns the case, its date and
    the person's identity number (to look for where it must never be)."""
    number = identity_number(date(1970, 1, 1) + timedelta(days=n))
    response = await client.post(
        "/api/v1/persons",
        json={"identity_number": number, "given_name": "Kari", "family_name": "Nordmann"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        "/api/v1/cases",
        json={
            "person_id": response.json()["id"],
            "current_unit_id": directory.prison,
            "planning_basis": "final_judgment",
            "nav_office_id": directory.nav,
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    case_id = str(response.json()["id"])
    etag = response.headers["etag"]  # a consent does not change the case itself
    response = await client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={
            "basis": "consent",
            "organization_ids": [directory.oslo, directory.nav],
            "domains": ["housing"],
        },
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    response = await client.put(
        f"/api/v1/cases/{case_id}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**ADMIN, "If-Match": etag},
    )
    assert response.status_code == 200, response.text
    release = datetime.now(UTC).date() + timedelta(days=150 + n % 30)
    dates = [release] if n % 2 else [release + timedelta(days=14), release]
    for day in dates:
        response = await client.post(
            f"/api/v1/cases/{case_id}/release-dates",
            json={"kind": "expected", "date": day.isoformat(), "certainty": "probable", "source": "judgment"},
            headers={**ADMIN, "If-Match": response.headers["etag"]},
        )
        assert response.status_code in (200, 201), response.text
    return case_id, release, number


async def ready_cases(
    client: httpx.AsyncClient, directory: Directory, numbers: range, concurrency: int = 6
) -> dict[str, tuple[date, str]]:
    """Case id -> (release date, identity number), several cases at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> tuple[str, date, str]:
        async with gate:
            return await ready_case(client, directory, n)

    return {case_id: (day, number) for case_id, day, number in await asyncio.gather(*map(one, numbers))}


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.broker_restart
async def test_rabbitmq_restarted_while_case_events_flow(
    stack: Stack, rabbitmq: RabbitMQ, exchange_name: str, amqp_queues: list[str]
) -> None:
    began = time.monotonic()
    directory = await seed_directory(stack.agreement.url, stack.sessionmaker)
    broker = {"amqp_url": rabbitmq.url, "event_exchange": exchange_name}
    case_queue, worker_queue = unique_name("test.reliability.case"), unique_name("test.reliability.worker")
    amqp_queues.extend([case_queue, worker_queue])
    # case-api publishes its case events through its own outbox relay, as in production.
    case_api = stack.start(
        "case_api",
        "CASE_API_",
        {
            **common_settings(stack.database_url),
            **broker,
            "queue": case_queue,
            "outbox_poll_seconds": "0.1",
            "agreement_api_url": stack.agreement.url,
        },
        "case-api-relay",
    )
    worker = stack.worker(
        "worker-consumer", **broker, queue=worker_queue, case_api_url=case_api.url, dispatch_enabled="false"
    )
    await asyncio.gather(case_api.wait_ready(), worker.wait_ready())

    async def consumed() -> int:
        return await count(stack.sessionmaker, NotifyInbox)

    async with httpx.AsyncClient(base_url=case_api.url, timeout=30.0, trust_env=False) as client:
        cases = await ready_cases(client, directory, range(BEFORE_RESTART))
        backlog_at_restart = await count(stack.sessionmaker, CaseOutbox) - await consumed()
        restart = asyncio.create_task(asyncio.to_thread(rabbitmq.restart))
        restart_began = time.monotonic()
        # Coordinators go on working while the broker is away: the events wait in the outbox.
        cases |= await ready_cases(client, directory, range(BEFORE_RESTART, CASES))
        await restart
        restart_took = time.monotonic() - restart_began
        case_metrics = (await client.get("/metrics")).text

    async with stack.sessionmaker() as session:
        case_events = {
            row.id: row.type
            for row in (await session.execute(select(CaseOutbox))).scalars()
            if row.type.startswith("case.")
        }

    async def all_consumed() -> bool:
        """Every case event in the worker's inbox, and the relay done: a publish whose confirm was
        lost in the restart is sent again (the copy must then be absorbed by the inbox)."""
        async with stack.sessionmaker() as session:
            inbox = set((await session.execute(select(col(NotifyInbox.event_id)))).scalars())
            unpublished = await session.scalar(
                select(func.count()).select_from(CaseOutbox).where(col(CaseOutbox.published_at).is_(None))
            )
        return set(case_events) <= inbox and unpublished == 0

    settled = await wait_until(
        all_consumed,
        90,
        lambda: f"events never consumed; worker:\n{worker.tail()}\ncase-api:\n{case_api.tail()}",
    )
    await asyncio.sleep(1.0)  # room for a redelivery to land twice, if it could
    async with httpx.AsyncClient(base_url=worker.url, trust_env=False) as client:
        worker_metrics = (await client.get("/metrics")).text

    async with stack.sessionmaker() as session:
        inbox = list((await session.execute(select(col(NotifyInbox.event_id)))).scalars())
        notices = list((await session.execute(select(NotifyNotice))).scalars())
    assert len(inbox) == len(set(inbox)) == len(case_events), "each case event consumed exactly once"
    assert set(inbox) == set(case_events)

    assert len(cases) == CASES
    per_case: dict[uuid.UUID, list[NotifyNotice]] = collections.defaultdict(list)
    for notice in notices:
        per_case[notice.case_id].append(notice)
    assert {str(case_id) for case_id in per_case} == set(cases), "no case is missing"
    recipients = {uuid.UUID(directory.oslo), uuid.UUID(directory.nav)}
    for case_id, mine in per_case.items():
        milestones = collections.Counter((n.recipient_organization_id, n.milestone_days) for n in mine)
        assert milestones == {(r, m): 1 for r in recipients for m in MILESTONES}, (
            f"case {case_id}: {milestones}"
        )
        assert {n.kind for n in mine} == {NoticeKind.MILESTONE}, "no change notice: nothing was delivered yet"
        assert {n.state for n in mine} == {NoticeState.SCHEDULED}, "consented and settled: none held"
        assert {n.release_date for n in mine} == {cases[str(case_id)][0]}, "the date that stands"
    assert len(notices) == CASES * 8

    failures = metric(case_metrics, "tilbake_outbox_publish_failures_total", table="case_outbox")
    duplicates = metric(worker_metrics, "tilbake_events_consumed_total", outcome="duplicate")
    assert failures > 0, "the restart did not interrupt publishing: the test proved nothing"
    kinds = collections.Counter(case_events.values())
    print(
        f"\nbroker restart: {len(case_events)} case events {dict(kinds)}; backlog at restart "
        f"{backlog_at_restart}; restart took {restart_took:.1f} s; case-api publish failures {failures:.0f}; "
        f"redeliveries absorbed by the inbox {duplicates:.0f}; all consumed {settled:.1f} s after the "
        f"last case was written; test {time.monotonic() - began:.1f} s"
    )
    numbers = [number for _, number in cases.values()]
    for service in (worker, case_api):
        output = service.output()
        assert not [number for number in numbers if number in output], (
            f"an identity number in {service.module}'s log"
        )
