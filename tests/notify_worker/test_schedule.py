"""The notice schedule and its consent gate, fed with the events case-api really emits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.models import NotifyOutbox
from notify_worker.notices import told
from notify_worker.notices.models import HoldReason, NoticeKind, NoticeState, NotifyCase, NotifyNotice
from notify_worker.notices.service import due_at_for, milestone_due_at, recompute, record_case
from shared.contracts.events import CaseFacts
from shared.contracts.recipients import RecipientKind
from shared.db import unit_of_work
from tests.agreement_api.agreements.helpers import activate, agreement_body
from tests.conftest import auth
from tests.notify_worker.conftest import World, days, today

MILESTONES = [0, 7, 30, 90]


def _by(notices: list[NotifyNotice], kind: str) -> list[NotifyNotice]:
    return sorted(
        (n for n in notices if n.recipient_kind.value == kind and n.kind is NoticeKind.MILESTONE),
        key=lambda n: n.milestone_days or 0,
    )


async def _events(world: World, event_type: str) -> list[dict[str, object]]:
    async with world.sessionmaker() as session:
        rows = await session.execute(
            select(NotifyOutbox)
            .where(col(NotifyOutbox.type) == event_type)
            .order_by(col(NotifyOutbox.occurred_at))
        )
        return [row.data for row in rows.scalars()]


async def _all_events(world: World) -> list[object]:
    async with world.sessionmaker() as session:
        return list((await session.execute(select(col(NotifyOutbox.id)))).scalars())


async def _ready_case(world: World, release_in: int = 120, *, kommunenummer: str = "0301") -> str:
    case_id = await world.open_case()
    await world.set_municipality(case_id, kommunenummer, "confirmed")
    await world.set_release(case_id, today() + days(release_in))
    return case_id


async def test_default_rules_hold_without_consent_and_release_after_consent(world: World) -> None:
    case_id = await _ready_case(world)
    assert await world.feed() >= 3
    release = today() + days(120)

    notices = await world.notices(case_id)
    assert len(notices) == 8, "municipality and NAV, four milestones each, nothing duplicated"
    for kind, recipient in (("municipality", world.ids["oslo"]), ("nav", world.ids["nav"])):
        mine = _by(notices, kind)
        assert [n.milestone_days for n in mine] == MILESTONES
        for notice in mine:
            assert notice.recipient_organization_id == recipient
            assert notice.agreement_source.value == "default"
            assert notice.release_date == release
            assert notice.due_at == due_at_for(release - days(notice.milestone_days or 0))
            assert notice.state is NoticeState.HELD
            assert notice.hold_reason is HoldReason.NO_CONSENT
            assert notice.receipt_deadline_days == 5
            assert "housing" in notice.profile["domains"]
    held = await _events(world, "notice.held.v1")
    assert len(held) == 8
    assert set(held[0]) == {
        "notice_id",
        "case_id",
        "recipient_organization_id",
        "kind",
        "milestone_days",
        "reason",
    }, "no personal data in the event"

    consent_id = await world.give_consent(case_id, "oslo")
    await world.feed()
    notices = await world.notices(case_id)
    assert {n.state for n in _by(notices, "municipality")} == {NoticeState.SCHEDULED}
    assert {n.hold_reason for n in _by(notices, "nav")} == {HoldReason.NO_CONSENT}, "consent names Oslo only"
    assert len(await _events(world, "notice.released.v1")) == 4

    await world.withdraw(case_id, consent_id)
    await world.feed()
    notices = await world.notices(case_id)
    assert {n.hold_reason for n in notices} == {HoldReason.NO_CONSENT}
    assert len(await _events(world, "notice.held.v1")) == 12


async def test_a_consent_by_organization_type_or_for_another_domain(world: World) -> None:
    case_id = await _ready_case(world)
    await world.give_consent(case_id, "nav", domains=["mental_health"])  # not in the default profile
    await world.feed()
    assert {n.state for n in await world.notices(case_id)} == {NoticeState.HELD}
    await world.give_consent(case_id, "nav", domains=["work"])
    await world.feed()
    notices = await world.notices(case_id)
    assert {n.state for n in _by(notices, "nav")} == {NoticeState.SCHEDULED}
    assert {n.state for n in _by(notices, "municipality")} == {NoticeState.HELD}


async def test_a_moved_release_date_reschedules_pending_notices_in_place(world: World) -> None:
    case_id = await _ready_case(world)
    await world.give_consent(case_id, "oslo", "nav")
    await world.feed()
    before = {n.id: n for n in await world.notices(case_id)}

    await world.set_release(case_id, today() + days(150))
    await world.feed()
    after = await world.notices(case_id)
    assert {n.id for n in after} == set(before), "rescheduled, not duplicated"
    for notice in after:
        assert notice.release_date == today() + days(150)
        assert notice.due_at == due_at_for(today() + days(150 - (notice.milestone_days or 0)))
        assert notice.state is NoticeState.SCHEDULED


async def test_a_delivered_notice_is_followed_by_a_change_notice_due_now(world: World) -> None:
    case_id = await _ready_case(world)
    await world.give_consent(case_id, "oslo", "nav")
    await world.feed()
    async with unit_of_work(world.sessionmaker) as session:
        notice = (
            await session.execute(
                select(NotifyNotice).where(
                    col(NotifyNotice.case_id) == uuid.UUID(case_id),
                    col(NotifyNotice.recipient_organization_id) == world.ids["oslo"],
                    col(NotifyNotice.milestone_days) == 90,
                )
            )
        ).scalar_one()
        notice.state = NoticeState.DELIVERED
        notice.delivered_at = datetime.now(UTC)
        await told.record(session, notice, delivered_event=uuid.uuid4())  # what delivering it records

    began = datetime.now(UTC)
    await world.set_release(case_id, today() + days(100))
    await world.feed()
    notices = await world.notices(case_id)
    changes = [n for n in notices if n.kind is NoticeKind.CHANGE]
    assert len(changes) == 1
    assert changes[0].recipient_organization_id == world.ids["oslo"]
    assert changes[0].release_date == today() + days(100)
    assert changes[0].state is NoticeState.SCHEDULED
    assert changes[0].due_at <= datetime.now(UTC)
    assert changes[0].due_at >= began - timedelta(seconds=1)
    delivered = next(n for n in notices if n.state is NoticeState.DELIVERED)
    assert delivered.release_date == today() + days(120), "a delivered notice is never rewritten"

    await world.set_release(case_id, today() + days(110))
    await world.feed()
    changes = [n for n in await world.notices(case_id) if n.kind is NoticeKind.CHANGE]
    assert len(changes) == 1, "one pending change notice"
    assert changes[0].release_date == today() + days(110)


async def test_closing_the_case_cancels_every_pending_notice(world: World) -> None:
    case_id = await _ready_case(world)
    await world.feed()
    await world.set_status(case_id, "closed")
    await world.feed()
    notices = await world.notices(case_id)
    assert len(notices) == 8
    assert {n.state for n in notices} == {NoticeState.CANCELLED}
    cancelled = await _events(world, "notice.cancelled.v1")
    assert len(cancelled) == 8
    assert {e["reason"] for e in cancelled} == {"case_closed"}


async def test_release_abroad_cancels_municipal_notices_only(world: World) -> None:
    case_id = await _ready_case(world)
    await world.give_consent(case_id, "oslo", "nav")
    await world.feed()
    await world.patch(case_id, release_destination="abroad")
    await world.feed()
    notices = await world.notices(case_id)
    assert {n.state for n in _by(notices, "municipality")} == {NoticeState.CANCELLED}
    assert {n.state for n in _by(notices, "nav")} == {NoticeState.SCHEDULED}

    await world.patch(case_id, release_destination="municipality")
    await world.feed()
    assert {n.state for n in await world.notices(case_id)} == {NoticeState.SCHEDULED}
    assert len(await world.notices(case_id)) == 8


async def test_a_municipality_named_by_id_is_told_nothing_of_a_deportation(world: World) -> None:
    """A rule naming Oslo kommune by id makes it a municipal recipient like a rule naming the type:
    classified ``municipality``, and dropped when the person is deported."""
    agreement = (
        await world.agreement.post(
            "/api/v1/agreements",
            json=agreement_body(str(world.ids["region"]), str(world.ids["oslo"]), domains=["housing"]),
            headers=auth("coordinator", org=str(world.ids["region"])),
        )
    ).json()
    rule = {
        "recipient_organization_id": str(world.ids["oslo"]),
        "milestones": [{"days_before_release": 30}],
        "receipt_deadline_days": 5,
        "data_sharing_profile": {"domains": ["housing"], "fields": ["release_date"]},
    }
    response = await world.agreement.post(
        f"/api/v1/agreements/{agreement['id']}/rules", json=rule, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    await activate(world.agreement, agreement["id"])
    at_home = await _ready_case(world, release_in=10)
    deported = await _ready_case(world, release_in=10)
    await world.patch(deported, release_destination="deportation")
    for case_id in (at_home, deported):
        await world.give_consent(case_id, "oslo")
    await world.feed()

    told = [n for n in await world.notices(at_home) if n.recipient_organization_id == world.ids["oslo"]]
    assert [(n.recipient_kind, n.milestone_days) for n in told] == [(RecipientKind.MUNICIPALITY, 30)]
    # Planned while the case was still going home, cancelled when the deportation was recorded.
    gone = [n for n in await world.notices(deported) if n.recipient_organization_id == world.ids["oslo"]]
    assert {n.state for n in gone} <= {NoticeState.CANCELLED}


async def test_a_lead_time_already_passed_is_due_now(world: World) -> None:
    began = datetime.now(UTC)
    case_id = await _ready_case(world, release_in=10)
    await world.give_consent(case_id, "oslo", "nav")
    await world.feed()
    notices = _by(await world.notices(case_id), "municipality")
    by_days = {n.milestone_days: n for n in notices}
    for passed in (30, 90):
        assert began - timedelta(seconds=1) <= by_days[passed].due_at <= datetime.now(UTC)
    assert by_days[7].due_at == due_at_for(today() + days(3))
    assert by_days[0].due_at == due_at_for(today() + days(10))


async def test_an_unsettled_municipality_holds_notices_with_its_reason(world: World) -> None:
    case_id = await world.open_case()  # NAV office, no municipality yet
    await world.set_release(case_id, today() + days(60))
    await world.give_consent(case_id, "oslo", "nav")
    await world.feed()
    notices = await world.notices(case_id)
    assert [n.recipient_kind.value for n in notices] == ["nav"] * 4, "no municipality to tell"
    assert {n.hold_reason for n in notices} == {HoldReason.MUNICIPALITY_UNKNOWN}

    await world.set_municipality(case_id, "0301", "disputed")
    await world.feed()
    notices = await world.notices(case_id)
    assert len(notices) == 8
    assert {n.hold_reason for n in notices} == {HoldReason.MUNICIPALITY_DISPUTED}

    await world.set_municipality(case_id, "0301", "confirmed")
    await world.feed()
    assert {n.state for n in await world.notices(case_id)} == {NoticeState.SCHEDULED}


async def test_a_new_municipality_cancels_the_old_recipients_notices(world: World) -> None:
    case_id = await _ready_case(world)
    await world.give_consent(case_id, "oslo", "halden", "nav")
    await world.feed()
    await world.set_municipality(case_id, "3101", "confirmed")
    await world.feed()
    notices = await world.notices(case_id)
    oslo = [n for n in notices if n.recipient_organization_id == world.ids["oslo"]]
    halden = [n for n in notices if n.recipient_organization_id == world.ids["halden"]]
    assert {n.state for n in oslo} == {NoticeState.CANCELLED}
    assert len(halden) == 4
    assert {n.state for n in halden} == {NoticeState.SCHEDULED}


async def test_no_release_date_schedules_nothing_and_recompute_is_idempotent(world: World) -> None:
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.feed()
    assert await world.notices(case_id) == []
    await world.set_release(case_id, today() + days(40))
    await world.feed()
    first = {(n.id, n.version, n.state, n.due_at) for n in await world.notices(case_id)}
    assert len(first) == 8
    world.seen.clear()  # redeliver the whole history: the inbox absorbs it
    assert await world.feed() > 0
    assert {(n.id, n.version, n.state, n.due_at) for n in await world.notices(case_id)} == first
    events = len(await _all_events(world))
    for _ in range(2):  # recomputing without a change rewrites nothing and tells nobody anything
        async with unit_of_work(world.sessionmaker) as session:
            await recompute(session, uuid.UUID(case_id), ports=world.ports)
    assert {(n.id, n.version, n.state, n.due_at) for n in await world.notices(case_id)} == first
    assert len(await _all_events(world)) == events


async def test_an_older_event_never_overwrites_newer_facts(world: World) -> None:
    case_id = uuid.uuid4()
    now = datetime.now(UTC)
    facts = {
        "case_id": str(case_id),
        "status": "planning",
        "current_unit_id": str(world.ids["prison"]),
        "release_destination": "municipality",
        "responsible_kommunenummer": "0301",
        "municipality_status": "confirmed",
        "nav_office_id": None,
        "effective_release_date": "2027-01-01",
        "region_id": None,
    }
    async with unit_of_work(world.sessionmaker) as session:
        assert await record_case(session, CaseFacts.model_validate(facts), now)
        assert not await record_case(
            session, CaseFacts.model_validate({**facts, "status": "closed"}), now - timedelta(minutes=1)
        )
        row = await session.get(NotifyCase, case_id)
        assert row is not None
        assert row.status == "planning"


async def test_two_first_events_of_a_new_case_at_once_both_commit(
    committed_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Both transactions insert the case row; the second waits, then compares times: no
    duplicate-key error, and the newer facts win whichever commits first."""
    case_id = uuid.uuid4()
    now = datetime.now(UTC)
    facts = {
        "case_id": str(case_id),
        "status": "planning",
        "current_unit_id": str(uuid.uuid4()),
        "region_id": None,
        "release_destination": "municipality",
        "municipality_status": "confirmed",
        "responsible_kommunenummer": "0301",
        "nav_office_id": None,
        "effective_release_date": "2027-01-01",
    }
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def older() -> bool:
        async with unit_of_work(committed_sessionmaker) as session:
            recorded = await record_case(
                session, CaseFacts.model_validate({**facts, "status": "planning"}), now - timedelta(seconds=1)
            )
            first_in.set()
            await release_first.wait()  # hold the transaction open while the newer event inserts
            return recorded

    async def newer() -> bool:
        await first_in.wait()
        async with unit_of_work(committed_sessionmaker) as session:
            return await record_case(
                session, CaseFacts.model_validate({**facts, "status": "release_ready"}), now
            )

    older_task = asyncio.create_task(older())
    newer_task = asyncio.create_task(newer())
    await asyncio.sleep(0.3)
    assert not newer_task.done(), "the second insert waits for the first transaction"
    release_first.set()
    assert await older_task is True
    assert await newer_task is True
    async with committed_sessionmaker() as session:
        row = await session.get(NotifyCase, case_id)
    assert row is not None
    assert row.status == "release_ready"


def test_milestones_in_business_days_skip_weekends_and_holidays() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    release = datetime(2026, 5, 18).date()  # Monday after 17 May (a Sunday)
    assert milestone_due_at(release, 1, True, now=now) == due_at_for(datetime(2026, 5, 15).date())
    assert milestone_due_at(release, 1, False, now=now) == due_at_for(datetime(2026, 5, 17).date())
    assert due_at_for(datetime(2026, 1, 15).date()) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)  # CET
    assert due_at_for(datetime(2026, 7, 15).date()) == datetime(2026, 7, 15, 6, 0, tzinfo=UTC)  # CEST
