"""The notice schedule of a case and its consent gate (docs/notices.md).

:func:`record_case` keeps ``notify_case`` up to date from ``case.*`` events; :func:`recompute`
derives the case's notices from the rules agreement-api resolves (the default rule set when no
agreement applies) and the consents case-api answers for. It is idempotent: running it twice in a
row changes nothing the second time, so every case event may simply trigger it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.clients import AgreementPort, CasePort
from notify_worker.deliveries.models import DeliveryState, NotifyDelivery
from notify_worker.notices.events import emit_notice
from notify_worker.notices.models import (
    PENDING_STATES,
    AgreementSource,
    HoldReason,
    NoticeKind,
    NoticeState,
    NotifyCase,
    NotifyNotice,
    NotifyTold,
)
from notify_worker.notices.told import CARRIED, HOLDS_DATE, carries, told_of
from shared.business_days import milestone_due_date
from shared.clock import OSLO
from shared.contracts import events as contracts
from shared.contracts.answers import ResolvedRule
from shared.contracts.events import EventPayload
from shared.contracts.recipients import RecipientKind, is_told, recipient_kind
from shared.db import insert_ignoring_conflicts, utcnow

log = structlog.get_logger("notify_worker.schedule")

NOTICE_TIME = time(8, 0)  # notices fall due at 08:00 Oslo time on their due date


CLOSED = "closed"


@dataclass(frozen=True)
class Ports:
    """What the schedule asks the other services."""

    agreements: AgreementPort
    cases: CasePort


def due_at_for(day: date) -> datetime:
    """08:00 Europe/Oslo on ``day``, in UTC."""
    return datetime.combine(day, NOTICE_TIME, tzinfo=OSLO).astimezone(UTC)


def milestone_due_at(release_date: date, days: int, business_days: bool, *, now: datetime) -> datetime:
    """When a milestone notice falls due; a lead time that has already passed makes it due now."""
    due = due_at_for(milestone_due_date(release_date, days, business_days))
    return due if due > now else now


# --- the case read model ------------------------------------------------------------------------


async def record_case(session: AsyncSession, facts: contracts.CaseFacts, occurred_at: datetime) -> bool:
    """Upsert ``notify_case`` from a case event's facts; False (and no change) when the event is
    older than the facts already recorded."""
    case_id = facts.case_id
    row = await session.get(NotifyCase, case_id, with_for_update=True)
    if row is not None and row.last_event_at > occurred_at:
        return False
    values: dict[str, Any] = {
        "status": facts.status,
        "current_unit_id": facts.current_unit_id,
        "release_destination": facts.release_destination,
        "responsible_kommunenummer": facts.responsible_kommunenummer,
        "municipality_status": facts.municipality_status,
        "nav_office_id": facts.nav_office_id,
        "effective_release_date": facts.effective_release_date,
        "last_event_at": occurred_at,
    }
    if row is None:
        # Two first events of a new case may arrive at once: the loser of the insert waits for the
        # winner's commit, then reads its row and compares times like any later event.
        inserted = await session.execute(
            insert_ignoring_conflicts(
                session, NotifyCase, {"case_id": case_id, **values}, key=["case_id"]
            ).returning(col(NotifyCase.case_id))
        )
        if inserted.first() is not None:
            return True
        row = await session.get(NotifyCase, case_id, with_for_update=True, populate_existing=True)
        if row is None or row.last_event_at > occurred_at:
            return False
    for key, value in values.items():
        setattr(row, key, value)
    await session.flush()
    return True


# --- events -------------------------------------------------------------------------------------


def _emit(session: AsyncSession, contract: type[EventPayload], notice: NotifyNotice, **extra: Any) -> None:
    """A notice event: ids and the milestone only, never personal data."""
    emit_notice(session, contract, notice, **extra)


def _assign(notice: NotifyNotice, now: datetime, **values: Any) -> bool:
    """Set only what differs (so an unchanged notice is not rewritten); True when something did."""
    changed = {key: value for key, value in values.items() if getattr(notice, key) != value}
    for key, value in changed.items():
        setattr(notice, key, value)
    if changed:
        notice.updated_at = now
    return bool(changed)


def _set_gate(session: AsyncSession, notice: NotifyNotice, reason: HoldReason | None, now: datetime) -> None:
    """Put a pending (or new) notice into scheduled or held and tell the coordinator of changes."""
    was_held = notice.state is NoticeState.HELD
    previous = notice.hold_reason
    if reason is None:
        _assign(notice, now, state=NoticeState.SCHEDULED, hold_reason=None)
        if was_held:
            _emit(session, contracts.NoticeReleased, notice)
    else:
        _assign(notice, now, state=NoticeState.HELD, hold_reason=reason)
        if not was_held or previous is not reason:
            _emit(session, contracts.NoticeHeld, notice, reason=reason.value)


def _cancel(session: AsyncSession, notice: NotifyNotice, why: str, now: datetime) -> None:
    _assign(notice, now, state=NoticeState.CANCELLED, hold_reason=None)
    _emit(session, contracts.NoticeCancelled, notice, reason=why)


# --- the gate -----------------------------------------------------------------------------------


def municipality_hold(case: NotifyCase) -> HoldReason | None:
    """Why nobody may be told yet because the responsible municipality is not settled."""
    if case.municipality_status == "disputed":
        return HoldReason.MUNICIPALITY_DISPUTED
    if case.municipality_status == "kommunelos":
        return HoldReason.KOMMUNELOS
    if not case.responsible_kommunenummer or case.municipality_status == "unresolved":
        return HoldReason.MUNICIPALITY_UNKNOWN
    return None


async def _consent_hold(
    ports: Ports, case: NotifyCase, recipient: uuid.UUID, domains: Sequence[str], cache: dict[Any, bool]
) -> HoldReason | None:
    for domain in domains:
        key = (recipient, domain)
        if key not in cache:
            cache[key] = await ports.cases.may_receive(case.case_id, recipient, domain)
        if cache[key]:
            return None
    return HoldReason.NO_CONSENT


def kind_of(rule: ResolvedRule, case: NotifyCase) -> RecipientKind:
    """The recipient's kind by the rule case-api's detail view applies too."""
    return recipient_kind(
        rule.recipient_organization_type, rule.recipient_organization_id, nav_office_id=case.nav_office_id
    )


# --- recompute ----------------------------------------------------------------------------------


@dataclass
class _Wanted:
    rule: ResolvedRule
    kind: RecipientKind
    days: int
    business_days: bool


async def _unsent_claims(session: AsyncSession, notices: Sequence[NotifyNotice]) -> list[NotifyNotice]:
    """The claimed notices none of whose deliveries has succeeded yet."""
    claimed = [notice for notice in notices if notice.state is NoticeState.CLAIMED]
    if not claimed:
        return []
    told = set(
        (
            await session.execute(
                select(col(NotifyDelivery.notice_id)).where(
                    col(NotifyDelivery.notice_id).in_([notice.id for notice in claimed]),
                    col(NotifyDelivery.state) == DeliveryState.SUCCEEDED,
                )
            )
        ).scalars()
    )
    return [notice for notice in claimed if notice.id not in told]


async def _supersede(session: AsyncSession, notice: NotifyNotice, why: str, now: datetime) -> None:
    """End the unfinished deliveries of a notice whose content no longer holds (``superseded``, the
    reason kept as the delivery's last error) and make it pending again: the rest of the recompute
    reschedules, holds or cancels it, and a new claim plans new deliveries with new webhook-ids.
    An attempt already on the wire is not called back."""
    await session.execute(
        update(NotifyDelivery)
        .where(
            col(NotifyDelivery.notice_id) == notice.id,
            col(NotifyDelivery.state) != DeliveryState.SUCCEEDED,
            col(NotifyDelivery.state) != DeliveryState.SUPERSEDED,
        )
        .values(state=DeliveryState.SUPERSEDED, last_error_class=why, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    _assign(notice, now, state=NoticeState.SCHEDULED, claimed_by=None, claimed_at=None)
    log.info("schedule.superseded", notice_id=str(notice.id), reason=why)


async def recompute(
    session: AsyncSession, case_id: uuid.UUID, *, ports: Ports, now: datetime | None = None
) -> None:
    """Bring the case's notices in line with its facts, its rules and its consents."""
    now = now or utcnow()
    case = await session.get(NotifyCase, case_id, with_for_update=True)
    if case is None:
        return
    notices = list(
        (
            await session.execute(
                select(NotifyNotice)
                .where(col(NotifyNotice.case_id) == case_id)
                .order_by(col(NotifyNotice.created_at), col(NotifyNotice.id))
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    pending = [notice for notice in notices if notice.state in PENDING_STATES]
    # Claimed notices nothing was delivered of yet: what they are about to say is checked again,
    # and one that no longer holds is superseded and treated like a pending one.
    unsent = await _unsent_claims(session, notices)
    if case.status == CLOSED or case.effective_release_date is None:
        ended = "case_closed" if case.status == CLOSED else "no_release_date"
        for notice in unsent:
            await _supersede(session, notice, ended, now)
            pending.append(notice)

    if case.status == CLOSED:
        for notice in pending:
            _cancel(session, notice, "case_closed", now)
        await session.flush()
        return
    release = case.effective_release_date
    if release is None:
        for notice in pending:  # the date they announce no longer stands
            _cancel(session, notice, "no_release_date", now)
        await session.flush()
        return

    resolution = await ports.agreements.resolve(
        case.current_unit_id, case.responsible_kommunenummer, case.nav_office_id, ()
    )
    rules = resolution.rules if resolution.source != "none" else []
    source = AgreementSource.AGREEMENT if resolution.source == "agreement" else AgreementSource.DEFAULT

    wanted: dict[tuple[uuid.UUID, int], _Wanted] = {}
    rule_of: dict[uuid.UUID, ResolvedRule] = {}
    for rule in rules:
        kind = kind_of(rule, case)
        if not is_told(kind, case.release_destination):
            continue
        rule_of.setdefault(rule.recipient_organization_id, rule)
        for milestone in rule.milestones:
            key = (rule.recipient_organization_id, milestone.days_before_release)
            wanted.setdefault(
                key, _Wanted(rule, kind, milestone.days_before_release, milestone.business_days)
            )

    municipal = municipality_hold(case)
    consent_cache: dict[Any, bool] = {}
    gates: dict[uuid.UUID, HoldReason | None] = {}
    for recipient, rule in rule_of.items():
        gates[recipient] = municipal or await _consent_hold(
            ports, case, recipient, rule.data_sharing_profile.domains, consent_cache
        )

    for notice in unsent:
        recipient = notice.recipient_organization_id
        if notice.release_date != release:
            why: str | None = "release_date_moved"
        elif recipient not in rule_of or (
            notice.kind is NoticeKind.MILESTONE and (recipient, notice.milestone_days or 0) not in wanted
        ):
            why = "no_longer_applies"
        else:
            why = "held" if gates.get(recipient) is not None else None
        if why is not None:
            await _supersede(session, notice, why, now)
            pending.append(notice)

    def fill(notice: NotifyNotice, rule: ResolvedRule) -> None:
        _assign(
            notice,
            now,
            agreement_source=source,
            agreement_id=rule.agreement_id,
            agreement_version=resolution.agreement_version(rule.agreement_id),
            receipt_deadline_days=rule.receipt_deadline_days,
            profile=rule.data_sharing_profile.model_dump(),
        )

    milestones = {
        (notice.recipient_organization_id, notice.milestone_days): notice
        for notice in notices
        if notice.kind is NoticeKind.MILESTONE
    }
    for key, want in wanted.items():
        recipient = key[0]
        due = milestone_due_at(release, want.days, want.business_days, now=now)
        found = milestones.get(key)
        if found is None:
            item = NotifyNotice(
                case_id=case.case_id,
                recipient_organization_id=recipient,
                recipient_kind=want.kind,
                agreement_source=source,
                kind=NoticeKind.MILESTONE,
                milestone_days=want.days,
                business_days=want.business_days,
                release_date=release,
                due_at=due,
                state=NoticeState.SCHEDULED,
                receipt_deadline_days=want.rule.receipt_deadline_days,
                created_at=now,
                updated_at=now,
            )
            fill(item, want.rule)
            session.add(item)
            await session.flush()
            _set_gate(session, item, gates[recipient], now)
            notices.append(item)  # a new milestone due now carries a change too
            continue
        item = found
        if item.state is NoticeState.CANCELLED:
            # Wanted again (destination changed back, reopened): revive it in place.
            _assign(item, now, state=NoticeState.SCHEDULED, claimed_by=None, claimed_at=None, due_at=due)
        if item.state in PENDING_STATES:
            if item.release_date != release or item.business_days != want.business_days:
                _assign(item, now, release_date=release, business_days=want.business_days, due_at=due)
            _assign(item, now, recipient_kind=want.kind)
            fill(item, want.rule)
            _set_gate(session, item, gates[recipient], now)

    # Pending notices nobody wants any more: the recipient left the rules, the milestone was
    # dropped, or the case goes abroad.
    for notice in pending:
        if notice.kind is NoticeKind.MILESTONE:
            if (notice.recipient_organization_id, notice.milestone_days or 0) not in wanted:
                _cancel(session, notice, "no_longer_applies", now)
        elif notice.recipient_organization_id not in rule_of:
            _cancel(session, notice, "no_longer_applies", now)

    # Recipients told a release date that has since moved get a change notice, due now. The record
    # is read after the case's notices are locked: a delivery that ends meanwhile has committed.
    told = await told_of(session, case.case_id)
    for recipient, rule in rule_of.items():
        await _change_notice(
            session, case, recipient, rule, notices, told.get(recipient), gates[recipient], now, fill
        )
    await session.flush()


async def _change_notice(
    session: AsyncSession,
    case: NotifyCase,
    recipient: uuid.UUID,
    rule: ResolvedRule,
    notices: list[NotifyNotice],
    told: NotifyTold | None,
    gate: HoldReason | None,
    now: datetime,
    fill: Any,
) -> None:
    """One pending change notice when the recipient was last told (``told``, notify_worker.notices.told)
    another date than the one that stands and no other notice tells it that date now."""
    release = case.effective_release_date
    assert release is not None
    if told is None:
        return  # never told anything: its milestone notices will tell it
    mine = [notice for notice in notices if notice.recipient_organization_id == recipient]
    change = next((n for n in mine if n.kind is NoticeKind.CHANGE and n.state in PENDING_STATES), None)
    needless = None
    if told.release_date == release:
        needless = HOLDS_DATE
    elif any(carries(n, release, now) for n in mine if n is not change):
        needless = CARRIED
    if needless is not None:
        if change is not None:
            _cancel(session, change, needless, now)
        return
    if change is not None:
        if change.release_date != release:
            _assign(change, now, release_date=release, due_at=now)
        _set_gate(session, change, gate, now)
        return
    new = NotifyNotice(
        case_id=case.case_id,
        recipient_organization_id=recipient,
        recipient_kind=kind_of(rule, case),
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.CHANGE,
        milestone_days=None,
        business_days=False,
        release_date=release,
        due_at=now,
        state=NoticeState.SCHEDULED,
        receipt_deadline_days=rule.receipt_deadline_days,
        created_at=now,
        updated_at=now,
    )
    fill(new, rule)
    session.add(new)
    await session.flush()
    _set_gate(session, new, gate, now)
