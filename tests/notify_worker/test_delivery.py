"""Delivering claimed notices: signed POSTs to a real local receiver, retries, Retry-After, 410,
timeouts, the facts a payload carries, and the notice marked (with its event) only when its
deliveries have ended."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.clients import NoticeFacts
from notify_worker.deliveries.dispatcher import Dispatcher
from notify_worker.deliveries.models import DeliveryState, NotifyDelivery
from notify_worker.deliveries.sender import WebhookSender
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from shared.db import unit_of_work
from tests.conftest import auth, running, test_settings
from tests.notify_worker.conftest import World, days, today
from tests.notify_worker.webhook_setup import (
    LEASE,
    LOCAL,
    PUBLIC_CASE_API,
    FixedFacts,
    Setup,
    UnreachableFacts,
)
from tests.webhook_receiver import Answer, Receiver

# A UUID's last group can be twelve digits by chance: look for identity numbers outside them.
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def test_a_due_notice_is_delivered_signed_and_thin(setup: Setup) -> None:
    notice_id = await setup.notice()
    await setup.dispatcher().run_once()

    received = setup.receiver
    assert received.verified == [True], "standardwebhooks verifies the v1 signature"
    assert received.headers[0]["webhook-id"].startswith("msg_")
    assert received.headers[0]["webhook-signature"].startswith("v1,")
    body: dict[str, Any] = json.loads(received.bodies[0])
    notice, delivery, attempts = await setup.state(notice_id)
    assert body == {
        "type": "notice.release_upcoming.v1",
        "notice_id": str(notice_id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(setup.organization_id),
        "milestone_days": 30,
        "release_date": "2027-03-01",
        "release_date_certainty": "probable",
        "coordinator": {
            "name": "Kari Koordinator",
            "phone": "+4790000000",
            "email": "kari@kriminalomsorgen.example",
            "organization_id": None,
        },
        "detail_url": f"{PUBLIC_CASE_API}/api/v1/cases/{notice.case_id}/notice-detail",
    }
    # Thin: ids, dates and the coordinator's work contact; no inmate's name and no identity number
    # (11 digits) anywhere.
    assert not re.search(rb"\d{11}", UUID.sub(b"", received.bodies[0]))
    assert not {"name", "person", "fodselsnummer", "national_id"} & set(body)
    assert notice.state is NoticeState.DELIVERED
    assert delivery.state is DeliveryState.SUCCEEDED
    assert delivery.endpoint_id == setup.endpoint_id
    assert delivery.webhook_id == received.headers[0]["webhook-id"]
    assert [(a.status_code, a.error_class) for a in attempts] == [(200, None)]
    # The notice ends when its delivery did, and the receipt clock starts then.
    assert delivery.ended_at == attempts[0].at
    assert notice.delivered_at == attempts[0].at
    assert notice.receipt_due_at == attempts[0].at + timedelta(days=5)
    assert notice.dead_at is None
    assert await setup.events("notice.delivered.v1") == [
        {
            "notice_id": str(notice_id),
            "case_id": str(notice.case_id),
            "recipient_organization_id": str(setup.organization_id),
            "kind": "milestone",
            "milestone_days": 30,
            "delivered_at": attempts[0].at.isoformat(),
            "receipt_due_at": (attempts[0].at + timedelta(days=5)).isoformat(),
        }
    ]


async def test_a_change_notice_has_its_own_type(setup: Setup) -> None:
    await setup.notice(kind=NoticeKind.CHANGE)
    await setup.dispatcher().run_once()
    body = json.loads(setup.receiver.bodies[0])
    assert body["type"] == "notice.release_date_changed.v1"
    assert body["milestone_days"] is None


async def test_a_server_error_is_retried_with_the_same_webhook_id(setup: Setup) -> None:
    setup.receiver.answers = [Answer(500)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    notice, delivery, attempts = await setup.state(notice_id)
    assert notice.state is NoticeState.CLAIMED, "not delivered while a delivery is pending"
    assert delivery.state is DeliveryState.PENDING
    assert delivery.last_status == 500
    assert delivery.last_error_class == "server_error"
    assert now + timedelta(seconds=24) <= delivery.next_attempt_at <= now + timedelta(seconds=37)

    await dispatcher.run_once(now + timedelta(seconds=10))  # not due yet
    assert len(setup.receiver.bodies) == 1
    await dispatcher.run_once(now + timedelta(seconds=40))

    notice, delivery, attempts = await setup.state(notice_id)
    assert [a.status_code for a in attempts] == [500, 200]
    assert delivery.attempts == 2
    ids = {headers["webhook-id"] for headers in setup.receiver.headers}
    assert ids == {delivery.webhook_id}, "every retry carries the same webhook-id"
    assert setup.receiver.verified == [True, True]
    assert notice.state is NoticeState.DELIVERED


async def test_retry_after_is_honoured(setup: Setup) -> None:
    setup.receiver.answers = [Answer(429, retry_after="120")]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    _, delivery, attempts = await setup.state(notice_id)
    assert attempts[0].error_class == "rate_limited"
    assert now + timedelta(seconds=120) <= delivery.next_attempt_at <= now + timedelta(seconds=125)

    await dispatcher.run_once(now + timedelta(seconds=60))  # the backoff (30 s) would have sent it
    assert len(setup.receiver.bodies) == 1
    await dispatcher.run_once(now + timedelta(seconds=126))
    notice, delivery, _ = await setup.state(notice_id)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert notice.state is NoticeState.DELIVERED


async def test_gone_fails_the_delivery_for_good(setup: Setup) -> None:
    setup.receiver.answers = [Answer(410)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    await dispatcher.run_once(now + timedelta(days=4))

    notice, delivery, attempts = await setup.state(notice_id)
    assert len(setup.receiver.bodies) == 1, "no further attempts"
    assert delivery.state is DeliveryState.FAILED_PERMANENTLY
    assert [(a.status_code, a.error_class) for a in attempts] == [(410, "gone")]
    assert notice.state is NoticeState.DEAD, "its only endpoint is gone"


async def test_a_timeout_is_recorded_and_retried(setup: Setup) -> None:
    setup.receiver.answers = [Answer(200, delay=1.0)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(read_timeout=0.3)
    now = datetime.now(UTC)
    await dispatcher.run_once(now)

    notice, delivery, attempts = await setup.state(notice_id)
    assert [(a.status_code, a.error_class) for a in attempts] == [(None, "read_timeout")]
    assert 250 <= attempts[0].duration_ms < 1000
    assert delivery.state is DeliveryState.PENDING
    assert delivery.next_attempt_at > now
    assert notice.state is NoticeState.CLAIMED


async def test_the_delivery_dies_when_the_schedule_runs_out(setup: Setup) -> None:
    setup.receiver.answers = [Answer(503), Answer(503), Answer(503)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[1, 1])
    now = datetime.now(UTC)
    for step in range(4):
        await dispatcher.run_once(now + timedelta(seconds=10 * step))

    notice, delivery, attempts = await setup.state(notice_id)
    assert len(attempts) == 3
    assert delivery.state is DeliveryState.DEAD
    assert delivery.ended_at == attempts[-1].at
    assert notice.state is NoticeState.DEAD
    assert notice.dead_at == attempts[-1].at
    assert notice.delivered_at is None
    assert notice.receipt_due_at is None
    [dead] = await setup.events("notice.dead.v1")
    assert (dead["notice_id"], dead["reason"], dead["error_classes"]) == (
        str(notice_id),
        "delivery_failed",
        ["server_error"],
    )
    assert await setup.events("notice.delivered.v1") == []


async def test_a_crash_mid_delivery_is_retried_with_the_same_webhook_id(setup: Setup) -> None:
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.plan(now)
    [leased] = await dispatcher._lease(now, 1)  # the worker dies after taking the delivery

    await dispatcher.run_once(now + LEASE / 2)
    assert setup.receiver.bodies == [], "the lease still holds"
    await dispatcher.run_once(now + LEASE + timedelta(seconds=1))

    notice, delivery, _ = await setup.state(notice_id)
    assert setup.receiver.headers[0]["webhook-id"] == leased.webhook_id == delivery.webhook_id
    assert notice.state is NoticeState.DELIVERED


async def test_a_recipient_without_endpoints_is_dead(
    setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=uuid.uuid4(),  # unknown to agreement-api
        recipient_kind=RecipientKind.OTHER,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=7,
        release_date=date(2027, 3, 1),
        due_at=datetime.now(UTC) - timedelta(minutes=1),
        receipt_deadline_days=5,
    )
    async with unit_of_work(sessionmaker) as session:
        session.add(notice)
    await setup.dispatcher().run_once()
    async with sessionmaker() as session:
        row = await session.get(NotifyNotice, notice.id, populate_existing=True)
    assert row is not None
    assert row.state is NoticeState.DEAD
    assert row.dead_at is not None
    assert setup.receiver.bodies == []
    [dead] = await setup.events("notice.dead.v1")
    assert (dead["notice_id"], dead["reason"], dead["error_classes"]) == (str(notice.id), "no_endpoint", [])
    assert setup.facts.asked == [], "no facts are needed for a notice nobody can receive"


async def test_the_round_escalates_dead_notices_once_per_interval(
    setup: Setup, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    def doomed() -> NotifyNotice:
        return NotifyNotice(
            case_id=uuid.uuid4(),
            recipient_organization_id=uuid.uuid4(),  # unknown to agreement-api: no endpoint
            recipient_kind=RecipientKind.OTHER,
            agreement_source=AgreementSource.DEFAULT,
            kind=NoticeKind.MILESTONE,
            milestone_days=7,
            release_date=date(2027, 3, 1),
            due_at=datetime.now(UTC) - timedelta(minutes=1),
            receipt_deadline_days=5,
        )

    first, second = doomed(), doomed()
    async with unit_of_work(sessionmaker) as session:
        session.add(first)
    dispatcher = setup.dispatcher(escalation_interval=timedelta(minutes=1))
    await dispatcher.run_once()  # dies, and the round's escalation tells the coordinator at once
    assert [e["notice_id"] for e in await setup.events("notice.escalated.v1")] == [str(first.id)]

    async with unit_of_work(sessionmaker) as session:
        session.add(second)
    await dispatcher.run_once()  # dies too, but escalation already ran less than a minute ago
    assert len(await setup.events("notice.escalated.v1")) == 1
    await dispatcher.run_once(datetime.now(UTC) + timedelta(minutes=2))
    escalated = await setup.events("notice.escalated.v1")
    assert [e["notice_id"] for e in escalated] == [str(first.id), str(second.id)], "each once"
    assert {e["reason"] for e in escalated} == {"not_delivered"}


async def test_stop_finishes_the_attempt_in_flight(setup: Setup) -> None:
    setup.receiver.answers = [Answer(200, delay=0.5)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    task = asyncio.create_task(dispatcher.run(interval=0.05))
    for _ in range(100):
        if setup.receiver.bodies:
            break
        await asyncio.sleep(0.02)
    assert setup.receiver.bodies, "the attempt is in flight when the stop comes"
    dispatcher.stop()
    await asyncio.wait_for(task, timeout=5)

    notice, delivery, attempts = await setup.state(notice_id)
    assert [a.status_code for a in attempts] == [200]
    assert delivery.state is DeliveryState.SUCCEEDED
    assert notice.state is NoticeState.DELIVERED


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("", None), ("soon", None)])
def test_retry_after_values(value: str, seconds: float | None) -> None:
    from notify_worker.deliveries.sender import retry_after_seconds

    assert retry_after_seconds(value) == seconds


def test_retry_after_as_a_date() -> None:
    from notify_worker.deliveries.sender import retry_after_seconds

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 23 Nov 2026 12:02:00 GMT", now=now) == 120.0


class ChangingFacts(FixedFacts):
    """case-api whose answer changes after the first question (the coordinator is replaced)."""

    async def notice_facts(self, case_id: uuid.UUID) -> NoticeFacts | None:
        facts = await super().notice_facts(case_id)
        assert facts is not None
        if len(self.asked) > 1:
            return facts.model_copy(update={"release_date_certainty": "certain", "coordinator": None})
        return facts


async def test_facts_are_asked_once_and_every_retry_sends_the_same_bytes(setup: Setup) -> None:
    setup.facts = ChangingFacts()
    setup.receiver.answers = [Answer(500), Answer(500)]
    case_id = uuid.uuid4()
    first = await setup.notice(case_id=case_id)
    second = await setup.notice(case_id=case_id, milestone_days=90)
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    assert setup.facts.asked == [case_id], "one question for the case's notices in a round"
    setup.facts.asked.append(case_id)  # from now on case-api would answer differently
    await dispatcher.run_once(now + timedelta(seconds=40))

    by_notice: dict[str, list[bytes]] = {}
    for body in setup.receiver.bodies:
        by_notice.setdefault(json.loads(body)["notice_id"], []).append(body)
    assert set(by_notice) == {str(first), str(second)}
    for bodies in by_notice.values():
        assert len(bodies) == 2
        assert bodies[0] == bodies[1], "a retry sends identical bytes"
        assert json.loads(bodies[0])["release_date_certainty"] == "probable"
    notice, _, _ = await setup.state(first)
    assert notice.release_date_certainty == "probable"
    assert notice.coordinator_contact == {
        "name": "Kari Koordinator",
        "phone": "+4790000000",
        "email": "kari@kriminalomsorgen.example",
        "organization_id": None,
    }


async def test_the_certainty_is_left_out_when_case_api_knows_another_date(setup: Setup) -> None:
    class MovedDate(FixedFacts):
        async def notice_facts(self, case_id: uuid.UUID) -> NoticeFacts | None:
            facts = await super().notice_facts(case_id)
            assert facts is not None
            return facts.model_copy(update={"effective_release_date": "2027-04-01"})

    setup.facts = MovedDate()
    await setup.notice()
    await setup.dispatcher().run_once()
    body = json.loads(setup.receiver.bodies[0])
    assert body["release_date"] == "2027-03-01"
    assert body["release_date_certainty"] is None, "the certainty belongs to another date"
    assert body["coordinator"]["name"] == "Kari Koordinator"


async def test_an_unreachable_case_api_leaves_the_claim(setup: Setup) -> None:
    setup.facts = UnreachableFacts()
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    async with setup.sessionmaker() as session:
        notice = await session.get(NotifyNotice, notice_id)
        deliveries = (
            await session.execute(select(NotifyDelivery).where(col(NotifyDelivery.notice_id) == notice_id))
        ).all()
    assert notice is not None
    assert notice.state is NoticeState.CLAIMED
    assert deliveries == []
    assert setup.receiver.bodies == []

    setup.facts = FixedFacts()
    dispatcher.facts = setup.facts
    await dispatcher.run_once(now + timedelta(minutes=6))  # past the claim timeout: claimed again
    notice, delivery, _ = await setup.state(notice_id)
    assert notice.state is NoticeState.DELIVERED
    assert delivery.state is DeliveryState.SUCCEEDED
    assert json.loads(setup.receiver.bodies[0])["release_date_certainty"] == "probable"


async def test_a_round_of_many_cases_asks_case_api_once(setup: Setup) -> None:
    case_ids = [uuid.uuid4() for _ in range(5)]
    notice_ids = [await setup.notice(case_id=case_id) for case_id in case_ids]
    notice_ids.append(await setup.notice(case_id=case_ids[0], milestone_days=90))
    await setup.dispatcher().run_once()
    assert len(setup.facts.calls) == 1, "one facts question for the round"
    assert sorted(setup.facts.calls[0]) == sorted(case_ids), "each case once"
    for notice_id in notice_ids:
        notice, _, _ = await setup.state(notice_id)
        assert notice.state is NoticeState.DELIVERED
        assert notice.release_date_certainty == "probable"


async def test_a_case_missing_from_the_answer_is_delivered_without_its_facts(setup: Setup) -> None:
    class Unknown(FixedFacts):
        async def notice_facts(self, case_id: uuid.UUID) -> NoticeFacts | None:
            self.asked.append(case_id)
            return None if case_id == missing else await super().notice_facts(case_id)

    missing = uuid.uuid4()
    setup.facts = Unknown()
    unknown_id = await setup.notice(case_id=missing)
    known_id = await setup.notice()
    await setup.dispatcher().run_once()
    unknown, delivery, _ = await setup.state(unknown_id)
    assert unknown.state is NoticeState.DELIVERED
    assert delivery.state is DeliveryState.SUCCEEDED
    assert (unknown.release_date_certainty, unknown.coordinator_contact) == (None, None)
    known, _, _ = await setup.state(known_id)
    assert known.release_date_certainty == "probable"
    bodies = {json.loads(body)["notice_id"]: json.loads(body) for body in setup.receiver.bodies}
    assert bodies[str(unknown_id)]["coordinator"] is None
    assert bodies[str(known_id)]["coordinator"]["name"] == "Kari Koordinator"


async def test_the_payload_carries_case_api_s_facts(
    database_url: str, world: World, receiver: Receiver
) -> None:
    """Against the real case-api: the release date's certainty and the case's coordinator."""
    from agreement_api.main import create_app

    settings = test_settings(
        "agreement_api.config", database_url, allow_private_webhook_urls=True, allow_http_webhooks=True
    )
    async with running(create_app(settings), sessionmaker=world.sessionmaker) as agreement:
        created = await agreement.post(
            f"/api/v1/organizations/{world.ids['oslo']}/webhooks",
            json={"url": receiver.url, "key_kind": "hmac"},
            headers=auth("admin"),
        )
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["key"]["secret"]
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, today() + days(5))  # certainty "probable"
    await world.give_consent(case_id, "oslo", "nav")
    member = await world.case.post(
        f"/api/v1/cases/{case_id}/group/members",
        json={
            "person_name": "Kari Koordinator",
            "role": "coordinator",
            "organization_id": str(world.ids["prison"]),
            "contact_phone": "+47 22 00 00 00",
            "contact_email": "kari@kriminalomsorgen.example",
        },
        headers=auth("admin"),
    )
    assert member.status_code == 201, member.text
    await world.feed()

    sender = WebhookSender(connect_timeout=2.0, read_timeout=5.0, policy=LOCAL)
    dispatcher = Dispatcher(
        world.sessionmaker,
        world.ports.agreements,
        sender,
        facts=world.ports.cases,
        case_api_public_url=PUBLIC_CASE_API,
        retry_schedule=[30],
        claim_timeout=timedelta(minutes=5),
        lease=LEASE,
        concurrency=1,  # the in-process services and the worker share the test's one connection
    )
    try:
        await dispatcher.run_once()
    finally:
        await sender.aclose()

    bodies = [json.loads(body) for body in receiver.bodies]
    # 90, 30 and 7 days before a release in 5 days are all due now; the NAV office has no endpoint.
    assert sorted(body["milestone_days"] for body in bodies) == [7, 30, 90]
    assert receiver.verified == [True] * 3
    for body in bodies:
        assert body["case_id"] == case_id
        assert body["release_date"] == (today() + days(5)).isoformat()
        assert body["release_date_certainty"] == "probable"
        assert body["coordinator"] == {
            "name": "Kari Koordinator",
            "phone": "+47 22 00 00 00",
            "email": "kari@kriminalomsorgen.example",
            "organization_id": str(world.ids["prison"]),
        }
        assert body["detail_url"] == f"{PUBLIC_CASE_API}/api/v1/cases/{case_id}/notice-detail"
        assert not re.search(rb"\d{11}", UUID.sub(b"", json.dumps(body).encode()))
