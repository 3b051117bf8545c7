"""The day list: who goes where and when in one unit on one local day, and the escorts each hour
needs against those available."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.market import access, capacity, providers, sessions
from case_api.market.appointments import AppointmentView, views
from case_api.market.lifecycle import OCCUPIES_INMATE
from case_api.market.models import (
    AppointmentState,
    LocationType,
    MarketAppointment,
    MarketProvider,
    MarketSession,
)


@dataclass(frozen=True)
class DayPlan:
    unit_id: uuid.UUID
    day: date
    escorts_available: int
    sessions: list[tuple[MarketSession, MarketProvider, int]]
    entries: list[AppointmentView]
    hours: list[tuple[datetime, int]]
    double_booked: list[tuple[AppointmentView, AppointmentView]]


_ESCORTED = frozenset(
    {
        AppointmentState.REQUESTED,
        AppointmentState.SCHEDULED,
        AppointmentState.ESCORT_CONFIRMED,
        AppointmentState.CHECKED_IN,
        AppointmentState.MOVED_TO_VIDEO,
    }
)


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
    by_id = await providers.providers_by_id(session, (s.provider_id for s in market_sessions))
    counts = await sessions.booked_counts(session, (s.id for s in market_sessions))
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
    # Escorts needed per local hour: every appointment that needs officers, for each hour its
    # session touches.
    load: dict[datetime, int] = defaultdict(int)
    hours: list[datetime] = []
    hour = start.astimezone(UTC)
    while hour < end:  # absolute hours, so a daylight saving day has 23 or 25 of them
        hours.append(hour)
        hour += timedelta(hours=1)
    for view in entries:
        if not needs_escort(view.appointment):
            continue
        for h in hours:
            h_end = h + timedelta(hours=1)
            if view.market_session.starts_at < h_end and view.market_session.ends_at > h:
                load[h] += view.appointment.escort_officers
    double: list[tuple[AppointmentView, AppointmentView]] = []
    busy = [v for v in entries if v.appointment.state in OCCUPIES_INMATE]
    for index, a in enumerate(busy):
        for b in busy[index + 1 :]:
            if (
                a.appointment.case_id == b.appointment.case_id
                and a.market_session.starts_at < b.market_session.ends_at
                and b.market_session.starts_at < a.market_session.ends_at
            ):
                double.append((a, b))
    return DayPlan(
        unit_id=unit_id,
        day=day,
        escorts_available=escorts_available,
        sessions=[(s, by_id[s.provider_id], counts[s.id]) for s in market_sessions],
        entries=entries,
        hours=[(h, load[h]) for h in hours if load[h]],
        double_booked=double,
    )
