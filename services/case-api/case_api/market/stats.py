"""Service market statistics for one unit and period (definitions in docs/servicetorg.md)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.market import access
from case_api.market.checkins import checkins_by_appointment
from case_api.market.errors import InvalidMarketChange
from case_api.market.lifecycle import ATTENDED
from case_api.market.models import (
    AppointmentState,
    MarketAppointment,
    MarketCheckin,
    MarketRequest,
    MarketSession,
    OutcomeCode,
    PrisonCancelCause,
    ProviderKind,
)
from case_api.market.providers import providers_by_id
from case_api.market.schemas import Statistics, StatisticsGroupBy, StatisticsRow
from case_api.market.sessions import LOCAL_TZ, local_day_bounds

NOT_HELD = frozenset(
    {
        OutcomeCode.NOT_HELD_INMATE_DECLINED,
        OutcomeCode.NOT_HELD_PROVIDER_ABSENT,
        OutcomeCode.NOT_HELD_NO_ESCORT,
    }
)
MAX_DAYS = 366 * 2
NONE_KEY = "none"


@dataclass
class _Bucket:
    label: str
    sessions: set[uuid.UUID] = field(default_factory=set)
    held_sessions: set[uuid.UUID] = field(default_factory=set)
    cancelled_sessions: set[uuid.UUID] = field(default_factory=set)
    inmates: set[uuid.UUID] = field(default_factory=set)
    requests: int = 0
    appointments: int = 0
    held: int = 0
    no_shows: int = 0
    prison: dict[PrisonCancelCause, int] = field(default_factory=lambda: defaultdict(int))
    by_provider: int = 0
    nav_weeks: set[tuple[int, int]] = field(default_factory=set)

    def row(self, key: str) -> StatisticsRow:
        return StatisticsRow(
            key=key,
            label=self.label,
            sessions=len(self.sessions),
            sessions_held=len(self.held_sessions),
            sessions_cancelled=len(self.cancelled_sessions),
            unique_inmates_served=len(self.inmates),
            requests=self.requests,
            appointments=self.appointments,
            appointments_held=self.held,
            no_shows=self.no_shows,
            cancelled_by_prison_no_escort=self.prison[PrisonCancelCause.NO_ESCORT],
            cancelled_by_prison_lockdown=self.prison[PrisonCancelCause.LOCKDOWN],
            cancelled_by_prison_other=self.prison[PrisonCancelCause.OTHER],
            cancelled_by_provider=self.by_provider,
            weeks_with_nav_present=len(self.nav_weeks),
        )


def is_held(appointment: MarketAppointment, checkin: MarketCheckin | None) -> bool:
    """Checked in or completed, and not recorded as not held."""
    if appointment.state not in ATTENDED:
        return False
    return checkin is None or checkin.outcome_code not in NOT_HELD


def weeks_between(from_date: date, to_date: date) -> int:
    weeks = set()
    day = from_date
    while day <= to_date:
        weeks.add(day.isocalendar()[:2])
        day += timedelta(days=1)
    return len(weeks)


async def compute(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID,
    from_date: date,
    to_date: date,
    group_by: StatisticsGroupBy,
) -> Statistics:
    await access.require_unit(session, viewer, unit_id)
    if to_date < from_date:
        raise InvalidMarketChange("to is before from", field="to")
    if (to_date - from_date).days > MAX_DAYS:
        raise InvalidMarketChange(f"At most {MAX_DAYS} days at a time", field="to")
    start, end = local_day_bounds(from_date)[0], local_day_bounds(to_date)[1]
    sessions = list(
        (
            await session.execute(
                select(MarketSession).where(
                    col(MarketSession.unit_id) == unit_id,
                    col(MarketSession.starts_at) >= start,
                    col(MarketSession.starts_at) < end,
                )
            )
        ).scalars()
    )
    providers = await providers_by_id(session, (s.provider_id for s in sessions))
    appointments = list(
        (
            await session.execute(
                select(MarketAppointment).where(
                    col(MarketAppointment.session_id).in_([s.id for s in sessions])
                )
            )
        ).scalars()
    )
    checkins = await checkins_by_appointment(session, (a.id for a in appointments))
    requests = list(
        (
            await session.execute(
                select(MarketRequest).where(
                    col(MarketRequest.unit_id) == unit_id,
                    col(MarketRequest.created_at) >= start,
                    col(MarketRequest.created_at) < end,
                )
            )
        ).scalars()
    )
    request_provider_names = await providers_by_id(
        session, (r.wanted_provider_id for r in requests if r.wanted_provider_id)
    )

    buckets: dict[str, _Bucket] = {}
    total = _Bucket(label="total")

    def bucket(key: str, label: str) -> _Bucket:
        return buckets.setdefault(key, _Bucket(label=label))

    def session_keys(market_session: MarketSession) -> list[tuple[str, str]]:
        if group_by is StatisticsGroupBy.MONTH:
            month = market_session.starts_at.astimezone(LOCAL_TZ).strftime("%Y-%m")
            return [(month, month)]
        if group_by is StatisticsGroupBy.PROVIDER:
            provider = providers[market_session.provider_id]
            return [(str(provider.id), provider.name)]
        return [(d, d) for d in market_session.domains] or [(NONE_KEY, NONE_KEY)]

    by_session: dict[uuid.UUID, list[MarketAppointment]] = defaultdict(list)
    for appointment in appointments:
        by_session[appointment.session_id].append(appointment)

    for market_session in sessions:
        targets = [bucket(k, label) for k, label in session_keys(market_session)] + [total]
        booked = by_session[market_session.id]
        # A rescheduled appointment lives on as the new one in its new session: count it there only.
        counted = [a for a in booked if a.state is not AppointmentState.RESCHEDULED]
        held = [a for a in booked if is_held(a, checkins.get(a.id))]
        cancelled = market_session.cancelled_at is not None
        # NAV was there only if a talk was held: inmates checked in to find NAV absent
        # (`not_held_provider_absent`) do not make a week with NAV present.
        nav_present = (
            not cancelled and providers[market_session.provider_id].kind is ProviderKind.NAV and bool(held)
        )
        week = market_session.starts_at.astimezone(LOCAL_TZ).isocalendar()[:2]
        for target in targets:
            target.sessions.add(market_session.id)
            if cancelled:
                target.cancelled_sessions.add(market_session.id)
            elif held:
                target.held_sessions.add(market_session.id)
            if nav_present:
                target.nav_weeks.add(week)
            target.inmates.update(a.case_id for a in held)
            target.appointments += len(counted)
            target.held += len(held)
            for appointment in booked:
                if appointment.state is AppointmentState.NO_SHOW:
                    target.no_shows += 1
                elif appointment.state is AppointmentState.CANCELLED_BY_PROVIDER:
                    target.by_provider += 1
                elif appointment.state is AppointmentState.CANCELLED_BY_PRISON and appointment.cancel_cause:
                    target.prison[appointment.cancel_cause] += 1

    for request in requests:
        if group_by is StatisticsGroupBy.MONTH:
            key = request.created_at.astimezone(LOCAL_TZ).strftime("%Y-%m")
            label = key
        elif group_by is StatisticsGroupBy.PROVIDER:
            provider = (
                request_provider_names.get(request.wanted_provider_id) if request.wanted_provider_id else None
            )
            key, label = (str(provider.id), provider.name) if provider else (NONE_KEY, NONE_KEY)
        else:
            key = label = request.wanted_domain.value if request.wanted_domain else NONE_KEY
        bucket(key, label).requests += 1
        total.requests += 1

    return Statistics(
        unit_id=unit_id,
        from_date=from_date,
        to_date=to_date,
        group_by=group_by,
        weeks_in_period=weeks_between(from_date, to_date),
        rows=[buckets[key].row(key) for key in sorted(buckets)],
        total=total.row("total"),
    )


# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A text cell that a spreadsheet would take for a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(result: Statistics) -> str:
    out = io.StringIO()
    names = list(StatisticsRow.model_fields)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([result.group_by.value if name == "key" else name for name in names])
    for row in [*result.rows, result.total]:
        writer.writerow([_cell(getattr(row, name)) for name in names])
    return out.getvalue()
