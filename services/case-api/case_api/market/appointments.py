"""Service market appointments: booking a place (capacity and double booking under row locks),
finding and listing them, moving them along their states and rescheduling. Flush, never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.cases.errors import NotInCustody
from case_api.cases.lifecycle import IN_CUSTODY
from case_api.cases.models import Case
from case_api.market import access, inmates, providers, sessions
from case_api.market.checkins import checkins_by_appointment
from case_api.market.errors import (
    AppointmentNotFound,
    CaseNotInUnit,
    InmateDoubleBooked,
    InvalidMarketChange,
    SessionCancelled,
    SessionFull,
    SessionNotFound,
)
from case_api.market.lifecycle import OCCUPIES_INMATE
from case_api.market.models import (
    AppointmentState,
    MarketAppointment,
    MarketCheckin,
    MarketProvider,
    MarketRequest,
    MarketSession,
    TriageState,
)
from case_api.market.schemas import AppointmentCreate, AppointmentTransition
from case_api.market.state_changes import check_transition, set_state
from case_api.persons.models import Person
from shared.db import utcnow
from shared.pagination import as_uuid, aware_datetime, decode_cursor, encode_cursor

APPOINTMENT_FIELDS = (
    "session_id",
    "request_id",
    "escort_officers",
    "needs_lift",
    "high_security",
    "state",
)


@dataclass(frozen=True)
class AppointmentView:
    appointment: MarketAppointment
    market_session: MarketSession
    provider: MarketProvider
    person: Person
    checkin: MarketCheckin | None


async def _check_place(
    session: AsyncSession, market_session: MarketSession, case: Case, *, ignore: uuid.UUID | None = None
) -> None:
    """Capacity and double booking, with the session and the case rows locked by the caller."""
    if market_session.cancelled_at is not None:
        raise SessionCancelled("The session is cancelled")
    booked = (await sessions.booked_counts(session, [market_session.id]))[market_session.id]
    if booked >= market_session.capacity:
        raise SessionFull(
            f"All {market_session.capacity} places in the session are taken",
            capacity=market_session.capacity,
            booked=booked,
        )
    clash_conditions: list[ColumnElement[bool]] = [
        col(MarketAppointment.case_id) == case.id,
        col(MarketAppointment.state).in_(OCCUPIES_INMATE),
        col(MarketSession.starts_at) < market_session.ends_at,
        col(MarketSession.ends_at) > market_session.starts_at,
    ]
    if ignore is not None:
        clash_conditions.append(col(MarketAppointment.id) != ignore)
    clash = (
        await session.execute(
            select(col(MarketAppointment.id))
            .join(MarketSession, col(MarketSession.id) == col(MarketAppointment.session_id))
            .where(*clash_conditions)
            .limit(1)
        )
    ).scalar_one_or_none()
    if clash is not None:
        raise InmateDoubleBooked(
            "The inmate already has an appointment at an overlapping time",
            existing_appointment_id=str(clash),
        )


async def _lock_place(
    session: AsyncSession, viewer: Viewer, session_id: uuid.UUID, case_id: uuid.UUID
) -> tuple[MarketSession, Case]:
    """Lock the session row, then the case row, always in that order: two staff taking the last
    place (or one inmate's two bookings) queue here instead of both passing the count."""
    market_session = await sessions.load_session(
        session, viewer=viewer, session_id=session_id, for_update=True
    )
    case = await inmates.load_case(session, viewer=viewer, case_id=case_id, for_update=True)
    if case.status not in IN_CUSTODY:
        raise NotInCustody("The inmate is no longer in custody", current_status=case.status.value)
    if case.current_unit_id != market_session.unit_id:
        raise CaseNotInUnit("The case is in another unit than the session")
    return market_session, case


def _record_booking(
    session: AsyncSession,
    viewer: Viewer,
    appointment: MarketAppointment,
    market_session: MarketSession,
    **extra: str,
) -> None:
    """The new appointment on the case's timeline, with its session's time and provider."""
    audit.record_change(
        session,
        viewer,
        case_id=appointment.case_id,
        action="market.appointment_booked",
        entity="market_appointment",
        entity_id=appointment.id,
        after={
            **audit.snapshot(appointment, APPOINTMENT_FIELDS),
            "starts_at": market_session.starts_at.isoformat(),
            "provider_id": str(market_session.provider_id),
            **extra,
        },
    )


async def book(session: AsyncSession, *, viewer: Viewer, data: AppointmentCreate) -> MarketAppointment:
    """Give an inmate a place in a session: no place past capacity, no overlapping bookings."""
    access.require_market_writer(viewer)
    market_session, case = await _lock_place(session, viewer, data.session_id, data.case_id)
    request = None
    if data.request_id is not None:
        request = await session.get(MarketRequest, data.request_id)
        if request is None or request.case_id != case.id:
            raise InvalidMarketChange("The request is not one of this case's", field="request_id")
    await _check_place(session, market_session, case)
    appointment = MarketAppointment(
        session_id=market_session.id,
        case_id=case.id,
        request_id=data.request_id,
        escort_officers=data.escort_officers,
        needs_lift=data.needs_lift,
        high_security=data.high_security,
        state=data.state,
        created_by=viewer.subject,
    )
    session.add(appointment)
    if request is not None and request.triage_state is not TriageState.SCHEDULED:
        request.triage_state = TriageState.SCHEDULED
        request.updated_at = utcnow()
    await session.flush()
    _record_booking(session, viewer, appointment, market_session)
    await session.flush()
    return appointment


async def views(session: AsyncSession, appointments: list[MarketAppointment]) -> list[AppointmentView]:
    """Each appointment with its session, provider, person and check-in, in four queries."""
    if not appointments:
        return []
    market_sessions = {
        s.id: s
        for s in (
            await session.execute(
                select(MarketSession).where(col(MarketSession.id).in_({a.session_id for a in appointments}))
            )
        ).scalars()
    }
    by_id = await providers.providers_by_id(session, (s.provider_id for s in market_sessions.values()))
    persons = await inmates.person_names(session, (a.case_id for a in appointments))
    checkins = await checkins_by_appointment(session, (a.id for a in appointments))
    out = []
    for appointment in appointments:
        market_session = market_sessions[appointment.session_id]
        out.append(
            AppointmentView(
                appointment=appointment,
                market_session=market_session,
                provider=by_id[market_session.provider_id],
                person=persons[appointment.case_id],
                checkin=checkins.get(appointment.id),
            )
        )
    return out


async def load_appointment(
    session: AsyncSession, *, viewer: Viewer, appointment_id: uuid.UUID
) -> MarketAppointment:
    """The appointment if the viewer may see its session's unit; 404 otherwise."""
    access.require_market_reader(viewer)
    appointment = await session.get(MarketAppointment, appointment_id)
    if appointment is None:
        raise AppointmentNotFound(f"No appointment {appointment_id} that you may see")
    market_session = await session.get(MarketSession, appointment.session_id)
    assert market_session is not None
    if not await access.in_scope(session, viewer, market_session.unit_id):
        raise AppointmentNotFound(f"No appointment {appointment_id} that you may see")
    return appointment


async def list_appointments_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    states: list[AppointmentState] | None = None,
    from_date: date | None = None,
    to_date: date | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MarketAppointment], str | None]:
    """A unit's appointments in session time order, keyset-paginated on (starts_at, id)."""
    await access.require_unit(session, viewer, unit_id)
    conditions: list[ColumnElement[bool]] = [col(MarketSession.unit_id) == unit_id]
    if session_id is not None:
        conditions.append(col(MarketAppointment.session_id) == session_id)
    if case_id is not None:
        conditions.append(col(MarketAppointment.case_id) == case_id)
    if states:
        conditions.append(col(MarketAppointment.state).in_(states))
    conditions.extend(sessions.starts_within(from_date, to_date))
    if cursor is not None:
        starts_at, last = decode_cursor(cursor, aware_datetime, as_uuid)
        conditions.append(
            or_(
                col(MarketSession.starts_at) > starts_at,
                and_(col(MarketSession.starts_at) == starts_at, col(MarketAppointment.id) > last),
            )
        )
    rows = await session.execute(
        select(MarketAppointment, col(MarketSession.starts_at))
        .join(MarketSession, col(MarketSession.id) == col(MarketAppointment.session_id))
        .where(*conditions)
        .order_by(col(MarketSession.starts_at), col(MarketAppointment.id))
        .limit(limit + 1)
    )
    found = [(row[0], row[1]) for row in rows.all()]
    next_cursor = None
    if len(found) > limit:
        last_appointment, last_start = found[limit - 1]
        next_cursor = encode_cursor([last_start.isoformat(), str(last_appointment.id)])
    return [appointment for appointment, _ in found[:limit]], next_cursor


async def transition(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: AppointmentTransition
) -> MarketAppointment:
    """Move an appointment along its states; `rescheduled` books the new session in the same call."""
    access.require_market_writer(viewer)
    check_transition(appointment, data.to)
    if data.to is not AppointmentState.RESCHEDULED:
        set_state(session, viewer, appointment, data.to, cause=data.cause, reason=data.reason)
        await session.flush()
        return appointment
    assert data.reschedule_to_session_id is not None
    old_session = await session.get(MarketSession, appointment.session_id)
    assert old_session is not None
    if data.reschedule_to_session_id == appointment.session_id:
        raise InvalidMarketChange("Reschedule to another session", field="reschedule_to_session_id")
    try:
        target, case = await _lock_place(session, viewer, data.reschedule_to_session_id, appointment.case_id)
    except SessionNotFound as exc:
        raise InvalidMarketChange(
            f"No session {data.reschedule_to_session_id} that you may see", field="reschedule_to_session_id"
        ) from exc
    if target.unit_id != old_session.unit_id:
        raise InvalidMarketChange("Reschedule within the same unit", field="reschedule_to_session_id")
    await _check_place(session, target, case, ignore=appointment.id)
    new = MarketAppointment(
        session_id=target.id,
        case_id=appointment.case_id,
        request_id=appointment.request_id,
        escort_officers=appointment.escort_officers,
        needs_lift=appointment.needs_lift,
        high_security=appointment.high_security,
        state=AppointmentState.SCHEDULED,
        created_by=viewer.subject,
    )
    session.add(new)
    await session.flush()
    appointment.rescheduled_to_id = new.id
    set_state(
        session,
        viewer,
        appointment,
        AppointmentState.RESCHEDULED,
        reason=data.reason,
        extra={"rescheduled_to_id": str(new.id), "to_session_id": str(target.id)},
    )
    _record_booking(session, viewer, new, target, rescheduled_from_id=str(appointment.id))
    await session.flush()
    return appointment
