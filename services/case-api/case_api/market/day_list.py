"""The day list: who goes where and when in one unit on one local day, the escorts each hour needs
against those available, and the conflicts to resolve. The API and the staff page show the same
`DayList`, built here."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.market import access, capacity, sessions
from case_api.market.appointments import AppointmentView, views
from case_api.market.inmates import display_name
from case_api.market.lifecycle import OCCUPIES_INMATE
from case_api.market.models import AppointmentState, LocationType, MarketAppointment, MarketSession
from case_api.market.schemas import (
    ConflictKind,
    DayList,
    DayListConflict,
    DayListEntry,
    DayListSession,
    HourLoad,
)
from case_api.market.sessions import LOCAL_TZ, SessionBooking

_ESCORTED = frozenset(
    {
        AppointmentState.REQUESTED,
        AppointmentState.SCHEDULED,
        AppointmentState.ESCORT_CONFIRMED,
        AppointmentState.CHECKED_IN,
        AppointmentState.MOVED_TO_VIDEO,
    }
)


@dataclass(frozen=True)
class DayPlan:
    """One unit's local day: sessions, appointments in time order, escorts per hour, conflicts."""

    unit_id: uuid.UUID
    day: date
    escorts_available: int
    sessions: list[SessionBooking]
    entries: list[AppointmentView]
    hours: list[tuple[datetime, int]]
    conflicts: list[DayListConflict]

    @property
    def reads(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(person, case) of every entry: what the access log records for showing the plan."""
        return [(v.person.id, v.appointment.case_id) for v in self.entries]


def needs_escort(appointment: MarketAppointment) -> bool:
    """Officers walk the inmate there unless the talk moved to the cell or is over."""
    return appointment.state in _ESCORTED and appointment.moved_to is not LocationType.CELL


async def day_plan(
    session: AsyncSession, *, viewer: Viewer, unit_id: uuid.UUID, day: date, escorts_available: int | None
) -> DayPlan:
    """Everything the day list shows, for one unit and one local day."""
    await access.require_unit(session, viewer, unit_id)
    if escorts_available is None:
        row = await capacity.get_capacity(session, unit_id)
        escorts_available = row.escorts_available if row else capacity.DEFAULT_ESCORTS_AVAILABLE
    start, end = sessions.local_day_bounds(day)
    market_sessions = list(
        (
            await session.execute(
                select(MarketSession)
                .where(
                    col(MarketSession.unit_id) == unit_id,
                    col(MarketSession.starts_at) < end,
                    col(MarketSession.ends_at) > start,
                )
                .order_by(col(MarketSession.starts_at), col(MarketSession.id))
            )
        ).scalars()
    )
    booked = await sessions.with_bookings(session, market_sessions)
    appointments = list(
        (
            await session.execute(
                select(MarketAppointment)
                .where(col(MarketAppointment.session_id).in_([s.id for s in market_sessions]))
                .order_by(col(MarketAppointment.created_at), col(MarketAppointment.id))
            )
        ).scalars()
    )
    entries = await views(session, appointments)
    entries.sort(key=lambda v: (v.market_session.starts_at, v.person.given_name, v.appointment.id))
    hours = _escort_load(entries, start.astimezone(UTC), end.astimezone(UTC))
    return DayPlan(
        unit_id=unit_id,
        day=day,
        escorts_available=escorts_available,
        sessions=booked,
        entries=entries,
        hours=hours,
        conflicts=[
            *_double_bookings(entries),
            *_hours_over_capacity(hours, escorts_available),
            *_sessions_over_capacity(booked),
        ],
    )


def _escort_load(
    entries: list[AppointmentView], start: datetime, end: datetime
) -> list[tuple[datetime, int]]:
    """Escorts needed per hour that needs any: every appointment that needs officers, for each
    hour its session touches. Absolute hours, so a daylight saving day has 23 or 25 of them."""
    load: dict[datetime, int] = defaultdict(int)
    hours: list[datetime] = []
    hour = start
    while hour < end:
        hours.append(hour)
        hour += timedelta(hours=1)
    for view in entries:
        if not needs_escort(view.appointment):
            continue
        for h in hours:
            h_end = h + timedelta(hours=1)
            if view.market_session.starts_at < h_end and view.market_session.ends_at > h:
                load[h] += view.appointment.escort_officers
    return [(h, load[h]) for h in hours if load[h]]


def _double_bookings(entries: list[AppointmentView]) -> list[DayListConflict]:
    """One inmate busy in two sessions that overlap in time."""
    conflicts: list[DayListConflict] = []
    busy = [v for v in entries if v.appointment.state in OCCUPIES_INMATE]
    for index, a in enumerate(busy):
        for b in busy[index + 1 :]:
            if (
                a.appointment.case_id == b.appointment.case_id
                and a.market_session.starts_at < b.market_session.ends_at
                and b.market_session.starts_at < a.market_session.ends_at
            ):
                conflicts.append(
                    DayListConflict(
                        kind=ConflictKind.INMATE_DOUBLE_BOOKED,
                        detail=f"{display_name(a.person)} is booked in two overlapping sessions",
                        session_ids=[a.market_session.id, b.market_session.id],
                        appointment_ids=[a.appointment.id, b.appointment.id],
                    )
                )
    return conflicts


def _hours_over_capacity(hours: list[tuple[datetime, int]], escorts_available: int) -> list[DayListConflict]:
    return [
        DayListConflict(
            kind=ConflictKind.HOUR_OVER_ESCORT_CAPACITY,
            detail=f"{needed} escorts needed, {escorts_available} available",
            hour=hour.astimezone(LOCAL_TZ),
        )
        for hour, needed in hours
        if needed > escorts_available
    ]


def _sessions_over_capacity(booked: list[SessionBooking]) -> list[DayListConflict]:
    """A session with more places taken than it has."""
    return [
        DayListConflict(
            kind=ConflictKind.SESSION_OVER_CAPACITY,
            detail=f"{provider.name}: {count} booked, capacity {market_session.capacity}",
            session_ids=[market_session.id],
        )
        for market_session, provider, count in booked
        if count > market_session.capacity
    ]


def to_day_list(plan: DayPlan) -> DayList:
    """The plan as the API answers it and the staff page shows it."""
    return DayList(
        unit_id=plan.unit_id,
        date=plan.day,
        escorts_available=plan.escorts_available,
        sessions=[
            DayListSession(
                session_id=s.id,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                provider_name=p.name,
                format=s.format,
                location_type=s.location_type,
                capacity=s.capacity,
                booked=booked,
                cancelled=s.cancelled_at is not None,
            )
            for s, p, booked in plan.sessions
        ],
        entries=[
            DayListEntry(
                appointment_id=v.appointment.id,
                case_id=v.appointment.case_id,
                person_name=display_name(v.person),
                session_id=v.market_session.id,
                starts_at=v.market_session.starts_at,
                ends_at=v.market_session.ends_at,
                provider_name=v.provider.name,
                format=v.market_session.format,
                location_type=v.appointment.moved_to or v.market_session.location_type,
                location_note=v.market_session.location_note,
                escort_officers=v.appointment.escort_officers,
                needs_lift=v.appointment.needs_lift,
                high_security=v.appointment.high_security,
                state=v.appointment.state,
                version=v.appointment.version,
            )
            for v in plan.entries
        ],
        hours=[
            HourLoad(
                hour=hour.astimezone(LOCAL_TZ),
                escorts_needed=needed,
                escorts_available=plan.escorts_available,
                over_capacity=needed > plan.escorts_available,
            )
            for hour, needed in plan.hours
        ],
        conflicts=plan.conflicts,
    )
