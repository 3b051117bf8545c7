"""Service market rules: providers, sessions, requests, appointments, check-in, day list.
Flush, never commit."""

from __future__ import annotations

import calendar
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import CaseNotFound, Viewer
from case_api.audit import service as audit
from case_api.cases.errors import NotInCustody
from case_api.cases.lifecycle import IN_CUSTODY
from case_api.cases.models import Case
from case_api.domains import service as domains
from case_api.domains.models import CaseDomain, Domain
from case_api.domains.schemas import ActionCreate
from case_api.market import access
from case_api.market.errors import (
    AppointmentNotFound,
    CaseNotInUnit,
    IllegalAppointmentTransition,
    InmateDoubleBooked,
    InvalidMarketChange,
    ProviderNotFound,
    RequestNotFound,
    SessionCancelled,
    SessionFull,
    SessionNotFound,
)
from case_api.market.lifecycle import ACTIVE, OCCUPIES_INMATE, OPEN, TRANSITIONS, allowed_next
from case_api.market.models import (
    AppointmentState,
    LocationType,
    MarketAppointment,
    MarketCheckin,
    MarketProvider,
    MarketRequest,
    MarketSession,
    MarketUnitCapacity,
    PrisonCancelCause,
    Recurrence,
    TriageState,
)
from case_api.market.schemas import (
    AppointmentCreate,
    AppointmentTransition,
    CancelSide,
    CheckIn,
    Completion,
    ProviderCreate,
    ProviderUpdate,
    RequestCreate,
    SessionCancel,
    SessionCreate,
)
from case_api.organizations import service as organizations
from case_api.persons.models import Person
from shared.clock import OSLO
from shared.db import utcnow
from shared.errors import Forbidden
from shared.pagination import as_uuid, aware_datetime, decode_cursor, encode_cursor, keyset_page

LOCAL_TZ = OSLO
MAX_OCCURRENCES = 104
DEFAULT_ESCORTS_AVAILABLE = 2

APPOINTMENT_FIELDS = (
    "session_id",
    "request_id",
    "escort_officers",
    "needs_lift",
    "high_security",
    "state",
)


def display_name(person: Person) -> str:
    """Given name and the family name's initial: "Kari N."."""
    initial = person.family_name.strip()[:1].upper()
    return f"{person.given_name} {initial}." if initial else person.given_name


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=LOCAL_TZ)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=LOCAL_TZ)
    return start, end


# --- providers ----------------------------------------------------------------------------------


async def create_provider(session: AsyncSession, *, viewer: Viewer, data: ProviderCreate) -> MarketProvider:
    access.require_market_writer(viewer)
    if await organizations.get(session, data.organization_id) is None:
        raise organizations.UnknownOrganization(
            f"No organization {data.organization_id} in the directory", field="organization_id"
        )
    provider = MarketProvider(
        organization_id=data.organization_id,
        name=data.name,
        kind=data.kind,
        active=data.active,
        created_by=viewer.subject,
    )
    session.add(provider)
    await session.flush()
    return provider


async def get_provider(session: AsyncSession, *, viewer: Viewer, provider_id: uuid.UUID) -> MarketProvider:
    access.require_market_reader(viewer)
    provider = await session.get(MarketProvider, provider_id)
    if provider is None:
        raise ProviderNotFound(f"No provider {provider_id}")
    return provider


async def update_provider(
    session: AsyncSession, *, viewer: Viewer, provider: MarketProvider, data: ProviderUpdate
) -> MarketProvider:
    access.require_market_writer(viewer)
    changes = data.model_dump(exclude_unset=True)
    if not any(getattr(provider, name) != value for name, value in changes.items()):
        return provider
    for name, value in changes.items():
        setattr(provider, name, value)
    provider.updated_at = utcnow()
    await session.flush()
    return provider


async def list_providers(
    session: AsyncSession, *, viewer: Viewer, active: bool | None = None
) -> list[MarketProvider]:
    access.require_market_reader(viewer)
    query = select(MarketProvider).order_by(col(MarketProvider.name), col(MarketProvider.id))
    if active is not None:
        query = query.where(col(MarketProvider.active) == active)
    return list((await session.execute(query)).scalars())


# --- sessions -----------------------------------------------------------------------------------


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


async def _active_provider(session: AsyncSession, provider_id: uuid.UUID) -> MarketProvider:
    provider = await session.get(MarketProvider, provider_id)
    if provider is None:
        raise InvalidMarketChange(f"No provider {provider_id}", field="provider_id")
    if not provider.active:
        raise InvalidMarketChange("The provider is not active", field="provider_id")
    return provider


async def create_sessions(
    session: AsyncSession, *, viewer: Viewer, data: SessionCreate
) -> list[MarketSession]:
    """One session, or with `repeat_until` every occurrence of a weekly or monthly series."""
    await access.require_unit_for_change(session, viewer, data.unit_id, field="unit_id")
    await _active_provider(session, data.provider_id)
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


async def providers_by_id(
    session: AsyncSession, provider_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, MarketProvider]:
    ids = set(provider_ids)
    if not ids:
        return {}
    rows = await session.execute(select(MarketProvider).where(col(MarketProvider.id).in_(ids)))
    return {provider.id: provider for provider in rows.scalars()}


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
    conditions: list[ColumnElement[bool]] = [col(MarketSession.unit_id) == unit_id]
    if from_date is not None:
        conditions.append(col(MarketSession.starts_at) >= local_day_bounds(from_date)[0])
    if to_date is not None:
        conditions.append(col(MarketSession.starts_at) < local_day_bounds(to_date)[1])
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
        _set_state(session, viewer, appointment, state, cause=cause, reason=data.reason)
    await session.flush()
    return market_session


# --- cases at the market ------------------------------------------------------------------------


async def _load_case(
    session: AsyncSession, viewer: Viewer, case_id: uuid.UUID, *, for_update: bool = False
) -> Case:
    """The case if its current unit is in the viewer's market scope; 404 otherwise."""
    query = select(Case).where(col(Case.id) == case_id)
    if for_update:
        query = query.with_for_update()
    case = (await session.execute(query)).scalars().first()
    if case is None or not await access.in_scope(session, viewer, case.current_unit_id):
        raise CaseNotFound(f"No case {case_id} that you may see")
    return case


async def person_names(session: AsyncSession, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
    """The person behind each case."""
    ids = set(case_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(col(Case.id), Person)
        .join(Person, col(Person.id) == col(Case.person_id))
        .where(col(Case.id).in_(ids))
    )
    return {row[0]: row[1] for row in rows.all()}


# --- requests -----------------------------------------------------------------------------------


async def create_request(session: AsyncSession, *, viewer: Viewer, data: RequestCreate) -> MarketRequest:
    access.require_request_writer(viewer)
    case = await _load_case(session, viewer, data.case_id)
    if (
        data.wanted_provider_id is not None
        and await session.get(MarketProvider, data.wanted_provider_id) is None
    ):
        raise InvalidMarketChange(f"No provider {data.wanted_provider_id}", field="wanted_provider_id")
    request = MarketRequest(
        case_id=case.id,
        unit_id=case.current_unit_id,
        channel=data.channel,
        wanted_provider_id=data.wanted_provider_id,
        wanted_domain=data.wanted_domain,
        note=data.note,
        created_by=viewer.subject,
    )
    session.add(request)
    await session.flush()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="market.request_received",
        entity="market_request",
        entity_id=request.id,
        after=audit.snapshot(request, ("channel", "wanted_provider_id", "wanted_domain")),
    )
    await session.flush()
    return request


async def load_request(session: AsyncSession, *, viewer: Viewer, request_id: uuid.UUID) -> MarketRequest:
    access.require_request_reader(viewer)
    request = await session.get(MarketRequest, request_id)
    if request is None or not await access.in_scope(session, viewer, request.unit_id):
        raise RequestNotFound(f"No request {request_id} that you may see")
    return request


async def triage_request(
    session: AsyncSession, *, viewer: Viewer, request: MarketRequest, state: TriageState
) -> MarketRequest:
    access.require_request_writer(viewer)
    if request.triage_state is state:
        return request
    before = request.triage_state
    request.triage_state = state
    request.updated_at = utcnow()
    audit.record_change(
        session,
        viewer,
        case_id=request.case_id,
        action="market.request_triaged",
        entity="market_request",
        entity_id=request.id,
        before={"triage_state": before.value},
        after={"triage_state": state.value},
    )
    await session.flush()
    return request


async def list_requests_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID,
    triage_state: TriageState | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MarketRequest], str | None]:
    """A unit's requests, oldest first (the queue to triage)."""
    access.require_request_reader(viewer)
    await access.require_unit(session, viewer, unit_id)
    conditions: list[ColumnElement[bool]] = [col(MarketRequest.unit_id) == unit_id]
    if triage_state is not None:
        conditions.append(col(MarketRequest.triage_state) == triage_state)
    return await keyset_page(
        session,
        select(MarketRequest).where(*conditions),
        time_column=col(MarketRequest.created_at),
        id_column=col(MarketRequest.id),
        limit=limit,
        cursor=cursor,
    )


# --- appointments -------------------------------------------------------------------------------


async def _check_place(
    session: AsyncSession, market_session: MarketSession, case: Case, *, ignore: uuid.UUID | None = None
) -> None:
    """Capacity and double booking, with the session and the case rows locked by the caller."""
    if market_session.cancelled_at is not None:
        raise SessionCancelled("The session is cancelled")
    booked = (await booked_counts(session, [market_session.id]))[market_session.id]
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
    market_session = await load_session(session, viewer=viewer, session_id=session_id, for_update=True)
    case = await _load_case(session, viewer, case_id, for_update=True)
    if case.status not in IN_CUSTODY:
        raise NotInCustody("The inmate is no longer in custody", current_status=case.status.value)
    if case.current_unit_id != market_session.unit_id:
        raise CaseNotInUnit("The case is in another unit than the session")
    return market_session, case


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
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="market.appointment_booked",
        entity="market_appointment",
        entity_id=appointment.id,
        after={
            **audit.snapshot(appointment, APPOINTMENT_FIELDS),
            "starts_at": market_session.starts_at.isoformat(),
            "provider_id": str(market_session.provider_id),
        },
    )
    await session.flush()
    return appointment


@dataclass(frozen=True)
class AppointmentView:
    appointment: MarketAppointment
    market_session: MarketSession
    provider: MarketProvider
    person: Person
    checkin: MarketCheckin | None


async def views(session: AsyncSession, appointments: list[MarketAppointment]) -> list[AppointmentView]:
    """Each appointment with its session, provider, person and check-in, in four queries."""
    if not appointments:
        return []
    sessions = {
        s.id: s
        for s in (
            await session.execute(
                select(MarketSession).where(col(MarketSession.id).in_({a.session_id for a in appointments}))
            )
        ).scalars()
    }
    providers = await providers_by_id(session, (s.provider_id for s in sessions.values()))
    persons = await person_names(session, (a.case_id for a in appointments))
    checkins = {
        c.appointment_id: c
        for c in (
            await session.execute(
                select(MarketCheckin).where(
                    col(MarketCheckin.appointment_id).in_([a.id for a in appointments])
                )
            )
        ).scalars()
    }
    out = []
    for appointment in appointments:
        market_session = sessions[appointment.session_id]
        out.append(
            AppointmentView(
                appointment=appointment,
                market_session=market_session,
                provider=providers[market_session.provider_id],
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
    if from_date is not None:
        conditions.append(col(MarketSession.starts_at) >= local_day_bounds(from_date)[0])
    if to_date is not None:
        conditions.append(col(MarketSession.starts_at) < local_day_bounds(to_date)[1])
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


def _check_transition(appointment: MarketAppointment, to: AppointmentState) -> None:
    if to not in TRANSITIONS[appointment.state]:
        raise IllegalAppointmentTransition(
            f"An appointment in {appointment.state.value!r} cannot become {to.value!r}",
            current_state=appointment.state.value,
            allowed_next=[state.value for state in allowed_next(appointment.state)],
        )


def _set_state(
    session: AsyncSession,
    viewer: Viewer,
    appointment: MarketAppointment,
    to: AppointmentState,
    *,
    cause: PrisonCancelCause | None = None,
    reason: str | None = None,
    extra: dict[str, object] | None = None,
) -> None:
    """Move the appointment (the transition was checked) and write it on the case's timeline."""
    _check_transition(appointment, to)
    before = appointment.state
    now = utcnow()
    appointment.state = to
    appointment.state_changed_at = now
    appointment.updated_at = now
    appointment.cancel_cause = cause
    appointment.state_reason = reason
    if to is AppointmentState.MOVED_TO_CELL_VISIT:
        appointment.moved_to = LocationType.CELL
    elif to is AppointmentState.MOVED_TO_VIDEO:
        appointment.moved_to = LocationType.VIDEO
    audit.record_change(
        session,
        viewer,
        case_id=appointment.case_id,
        action=f"market.appointment_{to.value}",
        entity="market_appointment",
        entity_id=appointment.id,
        before={"state": before.value},
        after={
            "state": to.value,
            "cause": cause.value if cause else None,
            "reason": reason,
            **(extra or {}),
        },
    )


async def transition(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: AppointmentTransition
) -> MarketAppointment:
    """Move an appointment along its states; `rescheduled` books the new session in the same call."""
    access.require_market_writer(viewer)
    _check_transition(appointment, data.to)
    if data.to is not AppointmentState.RESCHEDULED:
        _set_state(session, viewer, appointment, data.to, cause=data.cause, reason=data.reason)
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
    _set_state(
        session,
        viewer,
        appointment,
        AppointmentState.RESCHEDULED,
        reason=data.reason,
        extra={"rescheduled_to_id": str(new.id), "to_session_id": str(target.id)},
    )
    audit.record_change(
        session,
        viewer,
        case_id=new.case_id,
        action="market.appointment_booked",
        entity="market_appointment",
        entity_id=new.id,
        after={
            **audit.snapshot(new, APPOINTMENT_FIELDS),
            "starts_at": target.starts_at.isoformat(),
            "provider_id": str(target.provider_id),
            "rescheduled_from_id": str(appointment.id),
        },
    )
    await session.flush()
    return appointment


async def checkin_of(session: AsyncSession, appointment: MarketAppointment) -> MarketCheckin | None:
    return (
        await session.execute(
            select(MarketCheckin).where(col(MarketCheckin.appointment_id) == appointment.id)
        )
    ).scalar_one_or_none()


async def check_in(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: CheckIn
) -> MarketAppointment:
    """The inmate has arrived (or the provider reached the cell or the video link)."""
    access.require_market_writer(viewer)
    _check_transition(appointment, AppointmentState.CHECKED_IN)
    checkin = MarketCheckin(
        appointment_id=appointment.id, checked_in_by=viewer.subject, minutes_late=data.minutes_late
    )
    session.add(checkin)
    _set_state(
        session, viewer, appointment, AppointmentState.CHECKED_IN, extra={"minutes_late": data.minutes_late}
    )
    await session.flush()
    return appointment


async def complete(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: Completion
) -> MarketAppointment:
    """Record the outcome; a referral becomes an action in the case's domain and an event."""
    access.require_market_writer(viewer)
    if not access.sees_case_details(viewer) and (data.domains_touched or data.referral_made):
        raise Forbidden("Service market staff record attendance and outcome, not domains or referrals")
    _check_transition(appointment, AppointmentState.COMPLETED)
    checkin = await checkin_of(session, appointment)
    assert checkin is not None, "a checked-in appointment has a check-in"
    now = utcnow()
    checkin.outcome_code = data.outcome_code
    checkin.domains_touched = [domain.value for domain in data.domains_touched]
    checkin.follow_up_needed = data.follow_up_needed
    checkin.referral_made = data.referral_made
    checkin.referral_domain = data.referral_domain
    checkin.referral_note = data.referral_note
    checkin.completed_by = viewer.subject
    checkin.completed_at = now
    _set_state(
        session,
        viewer,
        appointment,
        AppointmentState.COMPLETED,
        extra={
            "outcome_code": data.outcome_code.value,
            "domains_touched": checkin.domains_touched,
            "follow_up_needed": data.follow_up_needed,
            "referral_made": data.referral_made,
        },
    )
    if data.referral_made:
        assert data.referral_domain is not None
        assert data.referral_note is not None
        await _refer(session, viewer, appointment, checkin, data.referral_domain, data.referral_note)
    await session.flush()
    return appointment


async def _refer(
    session: AsyncSession,
    viewer: Viewer,
    appointment: MarketAppointment,
    checkin: MarketCheckin,
    domain: Domain,
    note: str,
) -> None:
    case = await session.get(Case, appointment.case_id)
    market_session = await session.get(MarketSession, appointment.session_id)
    assert case is not None
    assert market_session is not None
    provider = await session.get(MarketProvider, market_session.provider_id)
    assert provider is not None
    case_domain = (
        await session.execute(
            select(CaseDomain).where(col(CaseDomain.case_id) == case.id, col(CaseDomain.domain) == domain)
        )
    ).scalar_one()
    action = await domains.add_action(
        session,
        viewer=viewer,
        case=case,
        case_domain=case_domain,
        data=ActionCreate(description=note, responsible_organization_id=provider.organization_id),
    )
    checkin.referral_action_id = action.id
    events.emit(
        session,
        events.CASE_MARKET_REFERRAL_MADE,
        case,
        appointment_id=str(appointment.id),
        provider_organization_id=str(provider.organization_id),
        domain=domain.value,
        domain_action_id=str(action.id),
    )


# --- unit capacity ------------------------------------------------------------------------------


async def get_capacity(session: AsyncSession, unit_id: uuid.UUID) -> MarketUnitCapacity | None:
    return await session.get(MarketUnitCapacity, unit_id)


async def put_capacity(
    session: AsyncSession, *, viewer: Viewer, unit_id: uuid.UUID, escorts_available: int
) -> MarketUnitCapacity:
    access.require_market_writer(viewer)
    row = await session.get(MarketUnitCapacity, unit_id)
    if row is None:
        row = MarketUnitCapacity(
            unit_id=unit_id, escorts_available=escorts_available, updated_by=viewer.subject
        )
        session.add(row)
    elif row.escorts_available != escorts_available:
        row.escorts_available = escorts_available
        row.updated_by = viewer.subject
        row.updated_at = utcnow()
    await session.flush()
    return row


# --- day list -----------------------------------------------------------------------------------


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
        row = await get_capacity(session, unit_id)
        escorts_available = row.escorts_available if row else DEFAULT_ESCORTS_AVAILABLE
    start, end = local_day_bounds(day)
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
    providers = await providers_by_id(session, (s.provider_id for s in market_sessions))
    counts = await booked_counts(session, (s.id for s in market_sessions))
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
        sessions=[(s, providers[s.provider_id], counts[s.id]) for s in market_sessions],
        entries=entries,
        hours=[(h, load[h]) for h in hours if load[h]],
        double_booked=double,
    )
