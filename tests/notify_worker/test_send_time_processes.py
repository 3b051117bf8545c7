"""What a recipient is told, through real processes: case-api publishes its events through its
outbox and RabbitMQ, the worker consumes them and delivers to a local receiver. A release date that
moves while its notice is being retried reaches the receiver as the date that stands; a consent
withdrawn while a notice is being retried stops the retries once the worker consumed it; a receipt
and an escalation on an earlier notice never make a change notice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.models import CaseOutbox
from notify_worker.models import NotifyInbox
from notify_worker.notices.models import NoticeKind, NoticeState, NotifyNotice
from shared.contracts.events import CaseConsentWithdrawn
from tests.case_api.conftest import identity_number
from tests.conftest import auth
from tests.infra import RabbitMQ, unique_name
from tests.notify_worker.harness import ADMIN, Processes, ServiceProcess, common_settings, wait_until
from tests.notify_worker.test_reliability import Directory, seed_directory
from tests.webhook_receiver import Answer, Received, Receiver

PUBLIC_CASE_API = "https://tilbake.example.no"
FAILING = [Answer(500)] * 1000  # every attempt fails until the script is replaced


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Running:
    writer: ServiceProcess
    worker: ServiceProcess
    directory: Directory
    sessionmaker: async_sessionmaker[AsyncSession]


@pytest.fixture
async def running(
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    processes: Processes,
    receiver: Receiver,
) -> Running:
    return await _start(
        database_url, committed_sessionmaker, rabbitmq, exchange_name, amqp_queues, processes, receiver
    )


async def _start(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
    processes: Processes,
    receiver: Receiver,
) -> Running:
    broker = {"amqp_url": rabbitmq.url, "event_exchange": exchange_name}
    case_queue, worker_queue = unique_name("test.send.case"), unique_name("test.send.worker")
    amqp_queues.extend([case_queue, worker_queue])
    common = common_settings(database_url)
    agreement = processes.start(
        "agreement_api",
        "AGREEMENT_API_",
        {
            **common,
            "outbox_relay_enabled": "false",
            "allow_private_webhook_urls": "true",
            "allow_http_webhooks": "true",
        },
        "agreement-api",
    )
    await agreement.wait_ready()
    directory = await seed_directory(agreement.url, sessionmaker)
    async with httpx.AsyncClient(base_url=agreement.url, timeout=10.0, trust_env=False) as client:
        response = await client.post(
            f"/api/v1/organizations/{directory.oslo}/webhooks",
            json={"url": receiver.url_of("oslo"), "key_kind": "hmac", "rate_limit_per_minute": 6000},
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        receiver.secrets["oslo"] = str(response.json()["key"]["secret"])
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
        "case-api",
    )
    worker = processes.start(
        "notify_worker",
        "NOTIFY_WORKER_",
        {
            **common,
            **broker,
            "queue": worker_queue,
            "agreement_api_url": agreement.url,
            "case_api_url": writer.url,
            "case_api_public_url": PUBLIC_CASE_API,
            "dispatch_interval_seconds": "0.2",
            "retry_schedule_seconds": ",".join(["0.5"] * 10),
            "endpoint_cache_seconds": "0",
            "escalation_interval_seconds": "0.5",
            "allow_private_webhook_urls": "true",  # the receiver is http on 127.0.0.1
            "allow_http_webhooks": "true",
        },
        "notify-worker",
    )
    await writer.wait_ready()
    await worker.wait_ready()
    return Running(writer, worker, directory, sessionmaker)


async def _case(client: httpx.AsyncClient, directory: Directory, release: date) -> tuple[str, str]:
    """A case whose municipality is Oslo (confirmed) with consent for Oslo only and ``release``;
    returns the case and its consent."""
    person = await client.post(
        "/api/v1/persons",
        json={"identity_number": identity_number(), "given_name": "Kari", "family_name": "Nordmann"},
        headers=ADMIN,
    )
    assert person.status_code == 201, person.text
    opened = await client.post(
        "/api/v1/cases",
        json={
            "person_id": person.json()["id"],
            "current_unit_id": directory.prison,
            "planning_basis": "final_judgment",
        },
        headers=ADMIN,
    )
    assert opened.status_code == 201, opened.text
    case_id = str(opened.json()["id"])
    consent = await client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={"basis": "consent", "organization_ids": [directory.oslo], "domains": ["housing"]},
        headers=ADMIN,
    )
    assert consent.status_code == 201, consent.text
    changed = await client.put(
        f"/api/v1/cases/{case_id}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**ADMIN, "If-Match": opened.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    await _set_release(client, case_id, release)
    return case_id, str(consent.json()["id"])


async def _set_release(
    client: httpx.AsyncClient, case_id: str, day: date, certainty: str = "probable"
) -> None:
    etag = (await client.get(f"/api/v1/cases/{case_id}", headers=ADMIN)).headers["etag"]
    response = await client.post(
        f"/api/v1/cases/{case_id}/release-dates",
        json={"kind": "expected", "date": day.isoformat(), "certainty": certainty, "source": "judgment"},
        headers={**ADMIN, "If-Match": etag},
    )
    assert response.status_code in (200, 201), response.text


def _ninety(receiver: Receiver, case_id: str) -> list[tuple[float, int, bool, str]]:
    """Oslo's requests for the case's 90-day notice: (time, status, verified, release date)."""
    return [
        (item.at, item.status, item.verified, str(item.payload["release_date"]))
        for item in receiver.requests("oslo")
        if item.payload.get("case_id") == case_id and item.payload.get("milestone_days") == 90
    ]


async def test_a_date_moved_while_its_notice_fails_reaches_the_receiver_as_the_date_that_stands(
    running: Running, receiver: Receiver
) -> None:
    release = datetime.now(UTC).date() + timedelta(days=40)  # the 90-day notice is due at once
    receiver.script("oslo", *FAILING)
    async with httpx.AsyncClient(base_url=running.writer.url, timeout=30.0, trust_env=False) as client:
        case_id, _consent = await _case(client, running.directory, release)

        async def failing() -> bool:
            return len(_ninety(receiver, case_id)) >= 2

        await wait_until(failing, 30, lambda: f"never attempted:\n{running.worker.tail()}")
        moved = release - timedelta(days=1)
        await _set_release(client, case_id, moved)
        # The receiver works again a moment later: whatever reaches it now is what it keeps.
        await wait_until(_consumed_change(running.sessionmaker, case_id), 30, "the move was never consumed")
        receiver.script("oslo")

    async def delivered() -> bool:
        return any(status == 200 for _at, status, _v, _day in _ninety(receiver, case_id))

    await wait_until(delivered, 30, lambda: f"never delivered:\n{running.worker.tail()}")
    answered = [(day, verified) for _at, status, verified, day in _ninety(receiver, case_id) if status == 200]
    assert answered == [(moved.isoformat(), True)], "the receiver holds the date that stands, and only it"


async def _consumed(
    sessionmaker: async_sessionmaker[AsyncSession], case_id: str, event_type: str | None = None
) -> NotifyInbox | None:
    """The worker's inbox row of the case's newest event (of ``event_type``), once consumed."""
    query = select(col(CaseOutbox.id)).where(col(CaseOutbox.subject) == f"case/{case_id}")
    if event_type is not None:
        query = query.where(col(CaseOutbox.type) == event_type)
    async with sessionmaker() as session:
        newest = (await session.execute(query.order_by(col(CaseOutbox.occurred_at).desc()).limit(1))).scalar()
        return await session.get(NotifyInbox, newest) if newest is not None else None


def _consumed_change(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> object:
    async def consumed() -> bool:
        return await _consumed(sessionmaker, case_id) is not None

    return consumed


async def test_no_attempt_follows_a_consent_withdrawal_the_worker_consumed(
    running: Running, receiver: Receiver
) -> None:
    receiver.script("oslo", *FAILING)
    async with httpx.AsyncClient(base_url=running.writer.url, timeout=30.0, trust_env=False) as client:
        case_id, consent_id = await _case(
            client, running.directory, datetime.now(UTC).date() + timedelta(days=40)
        )

        async def retrying() -> bool:
            return len(_ninety(receiver, case_id)) >= 3

        await wait_until(retrying, 30, lambda: f"never retried:\n{running.worker.tail()}")
        response = await client.post(
            f"/api/v1/cases/{case_id}/consents/{consent_id}/withdraw", json={}, headers=ADMIN
        )
        assert response.status_code == 200, response.text

    async def consumed() -> bool:
        return await _consumed(running.sessionmaker, case_id, CaseConsentWithdrawn.TYPE) is not None

    await wait_until(consumed, 30, lambda: f"the withdrawal was never consumed:\n{running.worker.tail()}")
    row = await _consumed(running.sessionmaker, case_id, CaseConsentWithdrawn.TYPE)
    assert row is not None
    consumed_at = row.received_at.timestamp()
    before = [at for at, *_ in _ninety(receiver, case_id) if at <= consumed_at]
    await asyncio.sleep(4.0)  # eight retry pauses of 0.5 s: room for any attempt that should not happen
    # An attempt already on the wire when the event commits is not called back: one second's slack.
    after = [at for at, *_ in _ninety(receiver, case_id) if at > consumed_at + 1.0]
    assert len(before) >= 3, "the notice was being retried before the withdrawal"
    assert after == [], f"{len(after)} attempt(s) after the withdrawal was consumed"


async def test_a_receipt_and_an_escalation_on_an_earlier_notice_make_no_change_notice(
    running: Running, receiver: Receiver
) -> None:
    """Oslo gets the 90-day notice for D1, then the date moves to D2 and Oslo gets the change notice
    for D2. A receipt and an escalation on the 90-day notice, then D2 posted again as certain: Oslo
    already holds D2, so nothing more is sent."""
    first = datetime.now(UTC).date() + timedelta(days=60)
    moved = first + timedelta(days=5)
    async with httpx.AsyncClient(base_url=running.writer.url, timeout=30.0, trust_env=False) as client:
        case_id, _consent = await _case(client, running.directory, first)
        await wait_until(
            lambda: _sent(receiver, case_id, 1), 30, lambda: f"no notice:\n{running.worker.tail()}"
        )
        await _set_release(client, case_id, moved)
        await wait_until(
            lambda: _sent(receiver, case_id, 2), 30, lambda: f"no change notice:\n{running.worker.tail()}"
        )
        sent = [(item.payload["type"], item.payload["release_date"]) for item in _ok(receiver, case_id)]
        assert sent == [
            ("notice.release_upcoming.v1", first.isoformat()),
            ("notice.release_date_changed.v1", moved.isoformat()),
        ]
        ninety = str(_ok(receiver, case_id)[0].payload["notice_id"])
        oslo = {"Authorization": _token(running.directory.oslo)}
        async with httpx.AsyncClient(base_url=running.worker.url, timeout=10.0, trust_env=False) as worker:
            received = await worker.post(
                f"/api/v1/notices/{ninety}/receipts", json={"status": "received"}, headers=oslo
            )
            assert received.status_code == 201, received.text
        async with running.sessionmaker() as session:  # its answer is overdue: the worker escalates
            await session.execute(
                update(NotifyNotice)
                .where(col(NotifyNotice.id) == uuid.UUID(ninety))
                .values(receipt_due_at=datetime.now(UTC) - timedelta(minutes=1))
            )
            await session.commit()

        async def escalated() -> bool:
            async with running.sessionmaker() as session:
                notice = await session.get(NotifyNotice, uuid.UUID(ninety), populate_existing=True)
                return notice is not None and notice.escalated_at is not None

        await wait_until(escalated, 20, lambda: f"never escalated:\n{running.worker.tail()}")
        await _set_release(client, case_id, moved, "certain")  # the same date, surer: a recompute
        await wait_until(_consumed_change(running.sessionmaker, case_id), 30, "the post was never consumed")
    await asyncio.sleep(2.0)  # room for a change notice to be planned and sent, if one were made
    async with running.sessionmaker() as session:
        changes = (
            (
                await session.execute(
                    select(NotifyNotice).where(
                        col(NotifyNotice.case_id) == uuid.UUID(case_id),
                        col(NotifyNotice.kind) == NoticeKind.CHANGE,
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(_ok(receiver, case_id)) == 2, "nothing more sent"
    assert [(c.release_date, c.state) for c in changes] == [(moved, NoticeState.DELIVERED)]


def _ok(receiver: Receiver, case_id: str) -> list[Received]:
    return [
        item
        for item in receiver.requests("oslo")
        if item.status == 200 and item.payload.get("case_id") == case_id
    ]


async def _sent(receiver: Receiver, case_id: str, count: int) -> bool:
    return len(_ok(receiver, case_id)) >= count


def _token(organization_id: str) -> str:
    return auth("municipality", org=organization_id)["Authorization"]
