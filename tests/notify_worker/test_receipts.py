"""Receipts: the recipient answers a delivered notice with its own token; events in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.main import create_app
from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from notify_worker.receipts.models import NotifyReceipt, ReceiptStatus
from shared.auth import RECIPIENT_ROLES, Role
from shared.db import unit_of_work
from shared.identifiers import make_identity_number
from shared.settings import REPO_ROOT
from tests.conftest import auth, running, test_settings

RECIPIENT = uuid.uuid4()
OTHER = uuid.uuid4()
CONTACT = {"name": "Ola Hansen", "phone": "+47 22 00 00 00", "email": "ola.hansen@halden.kommune.no"}
SUBSTITUTE = {"name": "Eva Berg", "email": "eva.berg@halden.kommune.no"}
ACCEPTED = {"status": "accepted", "contact": CONTACT, "substitute": SUBSTITUTE}


def recipient(org: uuid.UUID = RECIPIENT, role: str = "municipality") -> dict[str, str]:
    return auth(role, org=str(org), subject="halden-fagsystem")


async def add_notice(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    state: NoticeState = NoticeState.DELIVERED,
    organization_id: uuid.UUID = RECIPIENT,
) -> NotifyNotice:
    now = datetime.now(UTC)
    delivered = state is NoticeState.DELIVERED
    notice = NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=organization_id,
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=30,
        release_date=date(2027, 3, 1),
        due_at=now - timedelta(days=1),
        state=state,
        receipt_deadline_days=5,
        delivered_at=now - timedelta(hours=1) if delivered else None,
        receipt_due_at=now + timedelta(days=5) if delivered else None,
    )
    async with unit_of_work(sessionmaker) as session:
        session.add(notice)
    return notice


async def staged(sessionmaker: async_sessionmaker[AsyncSession], notice: NotifyNotice) -> list[NotifyOutbox]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(NotifyOutbox)
            .where(col(NotifyOutbox.subject) == f"case/{notice.case_id}")
            .order_by(col(NotifyOutbox.occurred_at))
        )
        return list(rows.scalars().all())


async def reload(sessionmaker: async_sessionmaker[AsyncSession], notice_id: uuid.UUID) -> NotifyNotice:
    async with sessionmaker() as session:
        found = await session.get(NotifyNotice, notice_id, populate_existing=True)
        assert found is not None
        return found


def documented_fields(event_type: str) -> tuple[set[str], set[str]]:
    """(properties, required) of an event's `data` in docs/asyncapi.yaml."""
    spec = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
    for message in spec["components"]["messages"].values():
        if message["name"] == event_type:
            data = message["payload"]["allOf"][1]["properties"]["data"]
            return set(data["properties"]), set(data["required"])
    raise AssertionError(f"{event_type} is not documented")


def assert_documented(event: NotifyOutbox) -> None:
    properties, required = documented_fields(event.type)
    assert set(event.data) == properties, f"{event.type}: undocumented or missing fields"
    assert required <= set(event.data)


@pytest.fixture
async def client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(test_settings("notify_worker.config", database_url, dispatch_enabled=False))
    async with running(app, sessionmaker=sessionmaker) as http:
        yield http


def url(notice: NotifyNotice) -> str:
    return f"/api/v1/notices/{notice.id}/receipts"


async def test_a_delivered_notice_is_received_then_accepted(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)

    received = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    assert received.status_code == 201, received.text
    assert (await reload(sessionmaker, notice.id)).receipt_status is ReceiptStatus.RECEIVED

    accepted = await client.post(url(notice), json=ACCEPTED, headers=recipient())
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    assert body["status"] == "accepted"
    assert body["notice_id"] == str(notice.id)
    assert body["organization_id"] == str(RECIPIENT)
    assert body["contact"] == CONTACT
    assert body["substitute"] == {**SUBSTITUTE, "phone": None}
    assert body["reason"] is None
    assert body["submitted_by"] == "halden-fagsystem"
    assert (await reload(sessionmaker, notice.id)).receipt_status is ReceiptStatus.ACCEPTED

    listed = await client.get(url(notice), headers=recipient())
    assert listed.status_code == 200, listed.text
    assert [item["status"] for item in listed.json()["items"]] == ["received", "accepted"]
    assert listed.json()["items"][1] == body
    for reader in (auth("admin"), auth("auditor")):
        assert (await client.get(url(notice), headers=reader)).json() == listed.json()

    events = await staged(sessionmaker, notice)
    assert [event.type for event in events] == ["notice.receipt_received.v1", "notice.receipt_accepted.v1"]
    refs = {
        "notice_id": str(notice.id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(RECIPIENT),
        "recipient_kind": "municipality",
        "kind": "milestone",
        "milestone_days": 30,
    }
    assert events[0].data == {**refs, "receipt_id": received.json()["id"]}
    assert events[1].data == {
        **refs,
        "receipt_id": body["id"],
        "contact": CONTACT,
        "substitute": {**SUBSTITUTE, "phone": None},
    }
    for event in events:
        assert event.source == "notify-worker"
        assert_documented(event)


async def test_a_rejection_carries_its_reason(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)
    response = await client.post(
        url(notice),
        json={"status": "rejected", "reason": "  Registered in another municipality. "},
        headers=recipient(),
    )
    assert response.status_code == 201, response.text
    assert response.json()["reason"] == "Registered in another municipality."
    assert response.json()["contact"] is None
    assert (await reload(sessionmaker, notice.id)).receipt_status is ReceiptStatus.REJECTED
    (event,) = await staged(sessionmaker, notice)
    assert event.type == "notice.receipt_rejected.v1"
    assert event.data["receipt_id"] == response.json()["id"]
    assert event.data["reason"] == "Registered in another municipality."
    assert "contact" not in event.data
    assert_documented(event)


async def test_only_the_recipient_answers_and_others_do_not_learn_the_notice_exists(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)
    other = await client.post(url(notice), json={"status": "received"}, headers=recipient(OTHER))
    unknown = await client.post(
        f"/api/v1/notices/{uuid.uuid4()}/receipts", json={"status": "received"}, headers=recipient()
    )
    assert other.status_code == unknown.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["title"] == unknown.json()["title"] == "Notice not found"
    assert (await client.get(url(notice), headers=recipient(OTHER))).status_code == 404

    no_organization = await client.post(url(notice), json={"status": "received"}, headers=auth("coordinator"))
    assert no_organization.status_code == 403
    admin = await client.post(url(notice), json={"status": "received"}, headers=auth("admin"))
    assert admin.status_code == 403, "an admin does not answer for a recipient"
    auditor = await client.post(url(notice), json={"status": "received"}, headers=recipient(role="auditor"))
    assert auditor.status_code == 403, "an auditor reads, never answers"
    assert (await client.get(url(notice), headers=auth("coordinator"))).status_code == 403
    assert (await client.post(url(notice), json={"status": "received"})).status_code == 401
    assert (await client.get(url(notice))).status_code == 401

    assert await staged(sessionmaker, notice) == []
    assert (await client.get(url(notice), headers=recipient())).json() == {"items": []}


# The recipient's organization answers in these roles only: the ones case-api's notice detail
# view serves (tests/case_api/notices/test_notice_detail.py asks the same of it).
RECIPIENT_ROLE_NAMES = {"municipality", "nav", "health"}


@pytest.mark.parametrize("role", sorted(Role))
async def test_only_the_recipient_roles_of_the_organization_answer_and_read(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], role: Role
) -> None:
    """Every role with a token of the recipient organization: the recipient roles answer and read
    their receipts; admin and auditor read; the organization's other roles (a coordinator, the
    service market, the integration admin) get 403 and change nothing."""
    notice = await add_notice(sessionmaker)
    answered = await client.post(url(notice), json={"status": "received"}, headers=recipient(role=role))
    read = await client.get(url(notice), headers=recipient(role=role))
    if role.value in RECIPIENT_ROLE_NAMES:
        assert answered.status_code == 201, answered.text
        assert read.status_code == 200, read.text
        return
    assert answered.status_code == 403, f"{role}: {answered.status_code} {answered.text}"
    assert answered.headers["content-type"] == "application/problem+json"
    assert await staged(sessionmaker, notice) == []
    assert (await reload(sessionmaker, notice.id)).receipt_status is None
    assert read.status_code == (200 if role in (Role.ADMIN, Role.AUDITOR) else 403), read.text


def test_receipts_and_the_notice_detail_view_use_one_table_of_recipient_roles() -> None:
    from case_api.notices import router as notice_detail
    from notify_worker.receipts import service as receipts

    assert {role.value for role in RECIPIENT_ROLES} == RECIPIENT_ROLE_NAMES
    assert receipts.RECIPIENT_ROLES is RECIPIENT_ROLES
    assert notice_detail.RECIPIENT_ROLES is RECIPIENT_ROLES


@pytest.mark.parametrize(
    "state", [NoticeState.SCHEDULED, NoticeState.HELD, NoticeState.CLAIMED, NoticeState.DEAD]
)
async def test_only_a_delivered_notice_takes_a_receipt(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], state: NoticeState
) -> None:
    notice = await add_notice(sessionmaker, state=state)
    response = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Notice not delivered"
    assert response.json()["state"] == state.value
    assert (await reload(sessionmaker, notice.id)).receipt_status is None
    assert await staged(sessionmaker, notice) == []


_LONG = "x" * 2001
_NIN = next(n for i in range(100) if (n := make_identity_number(date(1990, 1, 1), i)) is not None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "rejected"}, "body.rejected.reason"),
        ({"status": "rejected", "reason": "   "}, "body.rejected.reason"),
        ({"status": "rejected", "reason": _LONG}, "body.rejected.reason"),
        ({"status": "rejected", "reason": f"Person {_NIN} is not ours"}, "body.rejected.reason"),
        ({"status": "accepted", "contact": CONTACT}, "body.accepted.substitute"),
        ({"status": "accepted", "substitute": SUBSTITUTE}, "body.accepted.contact"),
        ({**ACCEPTED, "contact": {"name": "Ola Hansen"}}, "body.accepted.contact"),
        ({**ACCEPTED, "contact": {**CONTACT, "email": "ola.hansen"}}, "body.accepted.contact.email"),
        ({**ACCEPTED, "contact": {**CONTACT, "phone": "call me"}}, "body.accepted.contact.phone"),
        ({**ACCEPTED, "contact": {**CONTACT, "name": " "}}, "body.accepted.contact.name"),
        (
            {**ACCEPTED, "substitute": {**SUBSTITUTE, "national_id": "x"}},
            "body.accepted.substitute.national_id",
        ),
        ({"status": "received", "reason": "extra"}, "body.received.reason"),
        ({"status": "maybe"}, "body"),
        ({}, "body"),
    ],
)
async def test_invalid_answers_are_refused(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    field: str,
) -> None:
    notice = await add_notice(sessionmaker)
    response = await client.post(url(notice), json=body, headers=recipient())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert _NIN not in response.text, "an identity number is never echoed"
    assert await staged(sessionmaker, notice) == []


async def test_a_final_answer_is_final_but_a_repeat_is_answered_again(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)
    received = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    again = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    assert (received.status_code, again.status_code) == (201, 200)
    assert again.json() == received.json()

    first = await client.post(url(notice), json=ACCEPTED, headers=recipient())
    repeat = await client.post(url(notice), json=ACCEPTED, headers=recipient())
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json() == first.json()

    changed = {**ACCEPTED, "contact": {**CONTACT, "name": "Kari Olsen"}}
    for body in (changed, {"status": "rejected", "reason": "Changed our mind"}):
        refused = await client.post(url(notice), json=body, headers=recipient())
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["receipt_status"] == "accepted"
        assert refused.json()["receipt_id"] == first.json()["id"]
    late_received = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    assert late_received.status_code == 200, "a late retry of the stored received answer"
    assert late_received.json() == received.json()

    assert (await reload(sessionmaker, notice.id)).receipt_status is ReceiptStatus.ACCEPTED
    types = [event.type for event in await staged(sessionmaker, notice)]
    assert types == ["notice.receipt_received.v1", "notice.receipt_accepted.v1"], "repeats emit nothing"
    async with sessionmaker() as session:
        rows = (
            await session.execute(select(NotifyReceipt).where(col(NotifyReceipt.notice_id) == notice.id))
        ).scalars()
        assert len(list(rows)) == 2


async def test_received_after_a_final_answer_without_an_earlier_received_is_a_conflict(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)
    rejected = {"status": "rejected", "reason": "Not ours"}
    assert (await client.post(url(notice), json=rejected, headers=recipient())).status_code == 201
    late = await client.post(url(notice), json={"status": "received"}, headers=recipient())
    assert late.status_code == 409, late.text
    assert late.json()["receipt_status"] == "rejected"
    assert (await client.post(url(notice), json=rejected, headers=recipient())).status_code == 200


async def test_an_escalated_notice_still_takes_its_answer(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notice = await add_notice(sessionmaker)
    async with unit_of_work(sessionmaker) as session:
        row = await session.get(NotifyNotice, notice.id)
        assert row is not None
        row.receipt_due_at = row.escalated_at = datetime.now(UTC) - timedelta(days=1)
    response = await client.post(url(notice), json=ACCEPTED, headers=recipient())
    assert response.status_code == 201, response.text
    assert [event.type for event in await staged(sessionmaker, notice)] == ["notice.receipt_accepted.v1"]


async def test_two_different_answers_at_once_one_wins(
    database_url: str, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    notices = [await add_notice(committed_sessionmaker) for _ in range(10)]
    app = create_app(test_settings("notify_worker.config", database_url, dispatch_enabled=False))
    rejected = {"status": "rejected", "reason": "Not ours"}
    async with running(app, sessionmaker=committed_sessionmaker) as http:
        results = await asyncio.gather(
            *(
                http.post(url(notice), json=body, headers=recipient())
                for notice in notices
                for body in (ACCEPTED, rejected)
            )
        )
    for index, notice in enumerate(notices):
        pair = sorted(r.status_code for r in results[2 * index : 2 * index + 2])
        assert pair == [201, 409], [r.text for r in results[2 * index : 2 * index + 2]]
        winner = next(r for r in results[2 * index : 2 * index + 2] if r.status_code == 201)
        stored = await reload(committed_sessionmaker, notice.id)
        assert stored.receipt_status == winner.json()["status"]
        assert len(await staged(committed_sessionmaker, notice)) == 1
