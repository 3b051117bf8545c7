"""What each recipient was last told, and when a change notice is needed (docs/notices.md, "What a
recipient holds" and "One notice, not two").

``notify_told`` holds, per case and recipient, the release date of the notice delivered to it last
(by the moment of that notice's first 2xx), that notice and that moment. :func:`record` writes it in
the transaction that marks a notice delivered, and nothing else does: receipts, escalation and every
other change to a notice row leave it alone.

A recipient whose told date differs from the date that stands needs one change notice, unless the
new date reaches it anyway: another notice announcing that date is being delivered (``claimed``),
or a milestone notice announcing it is due now (:func:`carries`). The schedule applies the rule when
it recomputes a case; the claim applies it again to a due change notice (:func:`needless_change`),
so a change notice and a milestone notice that fall due together for the same date send one notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.notices.events import NoticeRef, emit
from notify_worker.notices.models import (
    PENDING_STATES,
    NoticeKind,
    NoticeState,
    NotifyCase,
    NotifyNotice,
    NotifyTold,
)
from shared.contracts import events as contracts
from shared.db import table_of

# notice.cancelled.v1 reasons of a change notice that need not be sent
Needless = Literal["release_date_restored", "no_longer_applies"]
HOLDS_DATE: Needless = "release_date_restored"  # the recipient already holds the date
CARRIED: Needless = "no_longer_applies"  # another notice tells it the date now


class Told(NamedTuple):
    """A notice marked delivered: what it told its recipient, at its first 2xx."""

    notice: NoticeDate
    delivered_at: datetime
    delivered_event: uuid.UUID  # its notice.delivered.v1


class NoticeDate(NoticeRef, Protocol):
    """A notice's references and the release date it announces (an ORM row or a Core row)."""

    @property
    def release_date(self) -> date: ...


async def record(session: AsyncSession, notice: NotifyNotice, *, delivered_event: uuid.UUID) -> None:
    """:func:`record_many` for one notice marked delivered in this transaction."""
    assert notice.delivered_at is not None
    await record_many(session, [Told(notice, notice.delivered_at, delivered_event)])


async def record_many(session: AsyncSession, delivered: Sequence[Told]) -> None:
    """Notices marked delivered in this transaction told their recipients their dates at their
    ``delivered_at``: make each the recipient's record unless a notice delivered later holds it
    (one upsert for all).

    When a notice's date no longer stands (the case moved on while it was on its way), a recompute
    of the case is requested in the same transaction, so the recipient gets its change notice
    without waiting for the next case event (caused by the notice's ``notice.delivered.v1``)."""
    if not delivered:
        return
    # One row per recipient and case in the upsert: the latest moment wins, as it would one by one.
    latest: dict[tuple[uuid.UUID, uuid.UUID], Told] = {}
    for one in delivered:
        key = (one.notice.case_id, one.notice.recipient_organization_id)
        if key not in latest or latest[key].delivered_at <= one.delivered_at:
            latest[key] = one
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table_of(NotifyTold))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["case_id", "recipient_organization_id"],
            set_={key: statement.excluded[key] for key in ("release_date", "notice_id", "told_at")},
            # Deliveries may end out of order: the record follows the moment of the first 2xx.
            where=statement.table.c.told_at <= statement.excluded["told_at"],
        ),
        [
            {
                "case_id": one.notice.case_id,
                "recipient_organization_id": one.notice.recipient_organization_id,
                "release_date": one.notice.release_date,
                "notice_id": one.notice.id,
                "told_at": one.delivered_at,
            }
            for one in latest.values()
        ],
    )
    standing = dict(
        (
            await session.execute(
                select(col(NotifyCase.case_id), col(NotifyCase.effective_release_date)).where(
                    col(NotifyCase.case_id).in_({one.notice.case_id for one in delivered})
                )
            )
        ).all()
    )
    for one in delivered:
        if standing.get(one.notice.case_id) not in (None, one.notice.release_date):
            request = contracts.NotifyRecomputeRequested(
                case_id=one.notice.case_id,
                reason=contracts.NoticeDelivered.TYPE,
                caused_by=one.delivered_event,
            )
            emit(session, request, subject=f"case/{one.notice.case_id}")


async def told_of(session: AsyncSession, case_id: uuid.UUID) -> dict[uuid.UUID, NotifyTold]:
    """Each recipient's record for the case, by recipient."""
    rows = await session.execute(select(NotifyTold).where(col(NotifyTold.case_id) == case_id))
    return {told.recipient_organization_id: told for told in rows.scalars()}


def carries(notice: NotifyNotice, release_date: date, now: datetime) -> bool:
    """Whether ``notice`` tells its recipient ``release_date`` now: it is being delivered, or it is
    a milestone notice that is due. The same rule as :func:`_carried_by_another` in SQL."""
    if notice.release_date != release_date:
        return False
    if notice.state is NoticeState.CLAIMED:
        return True
    return notice.kind is NoticeKind.MILESTONE and notice.state in PENDING_STATES and notice.due_at <= now


def _carried_by_another(change: NoticeDate, now: datetime) -> Any:
    """:func:`carries` for every notice of the change notice's recipient but itself, in SQL."""
    return and_(
        col(NotifyNotice.case_id) == change.case_id,
        col(NotifyNotice.recipient_organization_id) == change.recipient_organization_id,
        col(NotifyNotice.release_date) == change.release_date,
        col(NotifyNotice.id) != change.id,
        or_(
            col(NotifyNotice.state) == NoticeState.CLAIMED,
            and_(
                col(NotifyNotice.kind) == NoticeKind.MILESTONE,
                col(NotifyNotice.state).in_(PENDING_STATES),
                col(NotifyNotice.due_at) <= now,
            ),
        ),
    )


async def needless_change(session: AsyncSession, change: NoticeDate, *, now: datetime) -> Needless | None:
    """Why the due change notice ``change`` need not be sent (its ``notice.cancelled.v1`` reason),
    or None when it must: its recipient already holds its date, or another notice tells it that
    date now."""
    told = await session.get(NotifyTold, (change.case_id, change.recipient_organization_id))
    if told is not None and told.release_date == change.release_date:
        return HOLDS_DATE
    other = await session.scalar(
        select(col(NotifyNotice.id)).where(_carried_by_another(change, now)).limit(1)
    )
    return CARRIED if other is not None else None
