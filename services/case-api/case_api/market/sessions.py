"""Service market sessions: planning (single or a weekly or monthly series), finding, counting the
places taken, cancelling. Times are kept in UTC and shown in local days. Flush, never commit."""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.market import access, providers
from case_api.market.errors import InvalidMarketChange, SessionCancelled, SessionNotFound
from case_api.market.lifecycle import ACTIVE, OPEN
from case_api.market.models import (
    AppointmentState,
    MarketAppointment,
    MarketProvider,
    MarketSession,
    PrisonCancelCause,
    Recurrence,
)
from case_api.market.schemas import CancelSide, SessionCancel, SessionCreate
from case_api.market.state_changes import set_state
from shared.clock import OSLO
from shared.db import utcnow
from shared.pagination import keyset_page

LOCAL_TZ = OSLO
MAX_OCCURRENCES = 104


class SessionBooking(NamedTuple):
    """A session with its provider and the places taken in it."""

    market_session: MarketSession
    provider: MarketProvider
    booked: int


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=LOCAL_TZ)
    return start, end


def starts_within(from_date: date | None, to_date: date | None) -> list[ColumnElement[bool]]:
    """Conditions on a session's start: from one local day to another, both included, either open."""
    conditions: list[ColumnElement[bool]] = []
    if from_date is not None:
        conditions.append(col(MarketSession.starts_at) >= local_day_bounds(from_date)[0])
    if to_date is not None:
        conditions.append(col(MarketSession.starts_at) < local_day_bounds(to_date)[1])
    return conditions


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def occurrences(starts_at: datetime, recurrence: Recurrence, repeat_until: date | None) -> list[datetime]:
    """Start times of a series, keeping the local wall-clock time across daylight saving."""
    first = starts_at.astimezone(LOCAL_TZ)
    if repeat_until is None or recurrence is Recurrence.AD_HOC:
        return [first.astimezone(UTC)]
    if repeat_until < first.date():
        raise InvalidMarketChange("repeat_until is before the first session", field="repeat_until")
    out: list[datetime] = []
    index = 0
    while True:
        if recurrence is Recurrence.WEEKLY:
            naive = first.replace(tzinfo=None) + timedelta(weeks=index)
        else:
            naive = _add_months(first.replace(tzinfo=None), index)
        if naive.date() > repeat_until:
            return out
        out.append(naive.replace(tzinfo=LOCAL_TZ).astimezone(UTC))
        index += 1
        if len(out) > MAX_OCCURRENCES:
            raise InvalidMarketChange(
                f"A series has at most {MAX_OCCURRENCES} sessions", field="repeat_until"
            )


async def create_sessions(
    session: AsyncSession, *, viewer: Viewer, data: SessionCreate
) -> list[MarketSession]:
    """One session, or with `repeat_until` every occurrence of a weekly or monthly series."""
    await access.require_unit_for_change(session, viewer, data.unit_id, field="unit_id")
    await providers.require_provider_for_change(
        session, provider_id=data.provider_id, field="provider_id", active=True
    )
    duration = data.ends_at - data.starts_at
    starts = occurrences(data.starts_at, data.recurrence, data.repeat_until)
    group = uuid.uuid4() if len(starts) > 1 or data.repeat_until is not None else None
    created = [
        MarketSession(
            unit_id=data.unit_id,
            provider_id=data.provider_id,
            format=data.format,
            location_type=data.location_type,
            location_note=data.location_note,
            starts_at=start,
            ends_at=start + duration,
            capacity=data.capacity,
            recurrence=data.recurrence,
            recurrence_group=group,
            announcement=data.announcement,
            domains=[domain.value for domain in data.domains],
            created_by=viewer.subject,
        )
        for start in starts
    ]
    session.add_all(created)
    await session.flush()
    return created


async def load_session(
    session: AsyncSession, *, viewer: Viewer, session_id: uuid.UUID, for_update: bool = False
) -> MarketSession:
    """The session if the viewer may see its unit; 404 otherwise."""
    access.require_market_reader(viewer)
    query = select(MarketSession).where(col(MarketSession.id) == session_id)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalars().first()
    if found is None or not await access.in_scope(session, viewer, found.unit_id):
        raise SessionNotFound(f"No session {session_id} that you may see")
    return found


async def booked_counts(session: AsyncSession, session_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Places taken per session: active appointments not moved to a cell or video."""
    ids = list(set(session_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(col(MarketAppointment.session_id), func.count())
        .where(
            col(MarketAppointment.session_id).in_(ids),
            col(MarketAppointment.state).in_(ACTIVE),
            col(MarketAppointment.moved_to).is_(None),
        )
        .group_by(col(MarketAppointment.session_id))
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row[0]: int(row[1]) for row in rows.all()})
    return counts


async def with_bookings(session: AsyncSession, market_sessions: list[MarketSession]) -> list[SessionBooking]:
    """Each session with its provider and places taken, in the given order (two queries)."""
    by_id = await providers.providers_by_id(session, (s.provider_id for s in market_sessions))
    counts = await booked_counts(session, (s.id for s in market_sessions))
    return [SessionBooking(s, by_id[s.provider_id], counts[s.id]) for s in market_sessions]


async def list_sessions_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID,
    from_date: date | None = None,
    to_date: date | None = None,
    provider_id: uuid.UUID | None = None,
    include_cancelled: bool = True,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MarketSession], str | None]:
    """A unit's sessions in time order, keyset-paginated on (starts_at, id)."""
    await access.require_unit(session, viewer, unit_id)
    conditions: list[ColumnElement[bool]] = [
        col(MarketSession.unit_id) == unit_id,
        *starts_within(from_date, to_date),
    ]
    if provider_id is not None:
        conditions.append(col(MarketSession.provider_id) == provider_id)
    if not include_cancelled:
        conditions.append(col(MarketSession.cancelled_at).is_(None))
    return await keyset_page(
        session,
        select(MarketSession).where(*conditions),
        time_column=col(MarketSession.starts_at),
        id_column=col(MarketSession.id),
        limit=limit,
        cursor=cursor,
    )


def _cancel_target(side: CancelSide) -> tuple[AppointmentState, PrisonCancelCause | None]:
    if side is CancelSide.PROVIDER:
        return AppointmentState.CANCELLED_BY_PROVIDER, None
    return AppointmentState.CANCELLED_BY_PRISON, PrisonCancelCause(side.value)


async def cancel_session(
    session: AsyncSession, *, viewer: Viewer, market_session: MarketSession, data: SessionCancel
) -> MarketSession:
    """Cancel a session and, with it, every appointment in it that has not happened yet."""
    access.require_market_writer(viewer)
    if market_session.cancelled_at is not None:
        raise SessionCancelled("The session is already cancelled")
    now = utcnow()
    market_session.cancelled_at = now
    market_session.cancel_reason = data.reason
    market_session.updated_at = now
    state, cause = _cancel_target(data.cause)
    rows = await session.execute(
        select(MarketAppointment).where(
            col(MarketAppointment.session_id) == market_session.id, col(MarketAppointment.state).in_(OPEN)
        )
    )
    for appointment in rows.scalars():
        set_state(session, viewer, appointment, state, cause=cause, reason=data.reason)
    await session.flush()
    return market_session
