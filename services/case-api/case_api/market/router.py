"""The service market (servicetorg): HTTP only."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from case_api.access import Viewer, ViewerDep
from case_api.audit import service as audit
from case_api.dependencies import IdempotencyDep
from case_api.domains.models import Domain
from case_api.market import access, appointments, capacity, checkins, providers, requests, sessions, stats
from case_api.market.day_list import day_plan, to_day_list
from case_api.market.inmates import display_name
from case_api.market.lifecycle import allowed_next
from case_api.market.models import (
    AppointmentState,
    MarketAppointment,
    MarketCheckin,
    MarketProvider,
    MarketRequest,
    MarketSession,
    MarketUnitCapacity,
    TriageState,
)
from case_api.market.schemas import (
    DAY_RANGE,
    EARLIEST_DAY,
    LATEST_DAY,
    AppointmentCreate,
    AppointmentRead,
    AppointmentTransition,
    CheckIn,
    CheckinRead,
    Completion,
    DayList,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RequestCreate,
    RequestRead,
    RequestTriage,
    SessionBatch,
    SessionCancel,
    SessionCreate,
    SessionRead,
    Statistics,
    StatisticsGroupBy,
    UnitCapacityRead,
    UnitCapacityUpdate,
)
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
from shared.pagination import Page

router = APIRouter(prefix="/market", tags=["market"])

# The optional day range of the lists; the description states the bounds (OpenAPI has no date bounds).
FromDay = Annotated[
    date | None,
    Query(alias="from", ge=EARLIEST_DAY, le=LATEST_DAY, description=f"Local day, included ({DAY_RANGE})."),
]
ToDay = Annotated[
    date | None,
    Query(alias="to", ge=EARLIEST_DAY, le=LATEST_DAY, description=f"Local day, included ({DAY_RANGE})."),
]

CHANGE_ERRORS = problem_responses(401, 403, 404, 409, 412, 415, 422, 428)


# --- shaping ------------------------------------------------------------------------------------


def provider_etag(provider: MarketProvider) -> str:
    return etag_for(f"market-provider-{provider.id}", provider.version)


def session_etag(market_session: MarketSession) -> str:
    return etag_for(f"market-session-{market_session.id}", market_session.version)


def request_etag(request: MarketRequest) -> str:
    return etag_for(f"market-request-{request.id}", request.version)


def appointment_etag(appointment: MarketAppointment) -> str:
    return etag_for(f"market-appointment-{appointment.id}", appointment.version)


def capacity_etag(row: MarketUnitCapacity) -> str:
    return etag_for(f"market-capacity-{row.unit_id}", row.version)


def to_provider_read(provider: MarketProvider) -> ProviderRead:
    return ProviderRead(
        id=provider.id,
        organization_id=provider.organization_id,
        name=provider.name,
        kind=provider.kind,
        active=provider.active,
        created_at=provider.created_at,
        updated_at=provider.updated_at,
        version=provider.version,
        etag=provider_etag(provider),
    )


def to_session_read(market_session: MarketSession, provider: MarketProvider, booked: int) -> SessionRead:
    return SessionRead(
        id=market_session.id,
        unit_id=market_session.unit_id,
        provider_id=market_session.provider_id,
        provider_name=provider.name,
        format=market_session.format,
        location_type=market_session.location_type,
        location_note=market_session.location_note,
        starts_at=market_session.starts_at,
        ends_at=market_session.ends_at,
        capacity=market_session.capacity,
        booked=booked,
        recurrence=market_session.recurrence,
        recurrence_group=market_session.recurrence_group,
        announcement=market_session.announcement,
        domains=[Domain(value) for value in market_session.domains],
        cancelled_at=market_session.cancelled_at,
        cancel_reason=market_session.cancel_reason,
        version=market_session.version,
        etag=session_etag(market_session),
    )


async def session_reads(session: SessionDep, market_sessions: list[MarketSession]) -> list[SessionRead]:
    return [to_session_read(*booking) for booking in await sessions.with_bookings(session, market_sessions)]


def to_request_read(request: MarketRequest) -> RequestRead:
    return RequestRead(
        id=request.id,
        case_id=request.case_id,
        unit_id=request.unit_id,
        channel=request.channel,
        wanted_provider_id=request.wanted_provider_id,
        wanted_domain=request.wanted_domain,
        note=request.note,
        triage_state=request.triage_state,
        created_by=request.created_by,
        created_at=request.created_at,
        version=request.version,
        etag=request_etag(request),
    )


def to_checkin_read(checkin: MarketCheckin, *, details: bool) -> CheckinRead:
    """Without `details` (service market staff) the domain and referral fields stay null."""
    shown = (
        {
            "domains_touched": [Domain(value) for value in checkin.domains_touched],
            "follow_up_needed": checkin.follow_up_needed,
            "referral_made": checkin.referral_made,
            "referral_domain": checkin.referral_domain,
            "referral_note": checkin.referral_note,
            "referral_action_id": checkin.referral_action_id,
        }
        if details
        else {}
    )
    return CheckinRead(
        checked_in_by=checkin.checked_in_by,
        checked_in_at=checkin.checked_in_at,
        minutes_late=checkin.minutes_late,
        outcome_code=checkin.outcome_code,
        completed_at=checkin.completed_at,
        **shown,
    )


def to_appointment_read(view: appointments.AppointmentView, viewer: Viewer) -> AppointmentRead:
    appointment, market_session = view.appointment, view.market_session
    return AppointmentRead(
        id=appointment.id,
        session_id=appointment.session_id,
        case_id=appointment.case_id,
        person_name=display_name(view.person),
        unit_id=market_session.unit_id,
        starts_at=market_session.starts_at,
        ends_at=market_session.ends_at,
        provider_id=view.provider.id,
        provider_name=view.provider.name,
        request_id=appointment.request_id,
        escort_officers=appointment.escort_officers,
        needs_lift=appointment.needs_lift,
        high_security=appointment.high_security,
        state=appointment.state,
        allowed_next=allowed_next(appointment.state),
        cancel_cause=appointment.cancel_cause,
        state_reason=appointment.state_reason,
        rescheduled_to_id=appointment.rescheduled_to_id,
        checkin=to_checkin_read(view.checkin, details=access.sees_case_details(viewer))
        if view.checkin
        else None,
        created_at=appointment.created_at,
        version=appointment.version,
        etag=appointment_etag(appointment),
    )


async def appointment_response(
    session: SessionDep, viewer: Viewer, appointment: MarketAppointment, *, what: str
) -> JSONResponse:
    (view,) = await appointments.views(session, [appointment])
    await audit.record_access(session, viewer, reads=[(view.person.id, appointment.case_id)], what=what)
    body = to_appointment_read(view, viewer).model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": appointment_etag(appointment)})


# --- providers ----------------------------------------------------------------------------------


@router.post(
    "/providers",
    response_model=ProviderRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 415, 422),
    summary="Register a provider",
)
@response_headers("ETag", "Location")
async def create_provider(
    body: ProviderCreate, session: SessionDep, viewer: ViewerDep, idempotency: IdempotencyDep
) -> Response:
    """A provider that comes to service markets: an organization of the directory (422 if unknown)."""
    access.require_market_writer(viewer)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    provider = await providers.create_provider(session, viewer=viewer, data=body)
    return await idempotency.respond(
        to_provider_read(provider),
        status_code=201,
        location=f"/api/v1/market/providers/{provider.id}",
        headers={"ETag": provider_etag(provider)},
    )


@router.get(
    "/providers",
    response_model=list[ProviderRead],
    responses=problem_responses(401, 403, 422),
    summary="List providers",
)
async def list_providers(
    session: SessionDep, viewer: ViewerDep, active: bool | None = None
) -> list[ProviderRead]:
    """Every provider, by name (a short catalogue shared by all units)."""
    return [
        to_provider_read(p) for p in await providers.list_providers(session, viewer=viewer, active=active)
    ]


@router.get(
    "/providers/{provider_id}",
    response_model=ProviderRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a provider",
)
@response_headers("ETag")
async def get_provider(provider_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    provider = await providers.get_provider(session, viewer=viewer, provider_id=provider_id)
    body = to_provider_read(provider).model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": provider_etag(provider)})


@router.patch(
    "/providers/{provider_id}",
    response_model=ProviderRead,
    responses=CHANGE_ERRORS,
    summary="Change a provider",
)
@response_headers("ETag")
async def update_provider(
    provider_id: uuid.UUID, body: ProviderUpdate, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Rename, reclassify or deactivate a provider. Needs `If-Match`."""
    access.require_market_writer(viewer)
    provider = await providers.get_provider(session, viewer=viewer, provider_id=provider_id)
    check_if_match(if_match, provider_etag(provider))
    provider = await providers.update_provider(session, viewer=viewer, provider=provider, data=body)
    body_out = to_provider_read(provider).model_dump(mode="json")
    return JSONResponse(body_out, headers={"ETag": provider_etag(provider)})


# --- sessions -----------------------------------------------------------------------------------


@router.post(
    "/sessions",
    response_model=SessionBatch,
    status_code=201,
    responses=problem_responses(400, 401, 403, 415, 422),
    summary="Plan a session (or a series)",
)
@response_headers("Location")
async def create_sessions(
    body: SessionCreate, session: SessionDep, viewer: ViewerDep, idempotency: IdempotencyDep
) -> Response:
    """One session, or with `repeat_until` every weekly or monthly occurrence, linked by
    `recurrence_group`. Send `Idempotency-Key` to retry safely."""
    access.require_market_writer(viewer)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    created = await sessions.create_sessions(session, viewer=viewer, data=body)
    reads = await session_reads(session, created)
    return await idempotency.respond(
        SessionBatch(recurrence_group=created[0].recurrence_group, items=reads),
        status_code=201,
        location=f"/api/v1/market/sessions/{created[0].id}",
    )


@router.get(
    "/sessions",
    response_model=Page[SessionRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a unit's sessions",
)
async def list_sessions(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID,
    from_date: FromDay = None,
    to_date: ToDay = None,
    provider_id: uuid.UUID | None = None,
    include_cancelled: bool = True,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[SessionRead]:
    """The unit's sessions in time order (404 for a unit outside your scope)."""
    found, next_cursor = await sessions.list_sessions_page(
        session,
        viewer=viewer,
        unit_id=unit_id,
        from_date=from_date,
        to_date=to_date,
        provider_id=provider_id,
        include_cancelled=include_cancelled,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=await session_reads(session, found), next_cursor=next_cursor)


@router.get(
    "/sessions/{session_id}",
    response_model=SessionRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a session",
)
@response_headers("ETag")
async def get_session(session_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    found = await sessions.load_session(session, viewer=viewer, session_id=session_id)
    (read,) = await session_reads(session, [found])
    return JSONResponse(read.model_dump(mode="json"), headers={"ETag": session_etag(found)})


@router.post(
    "/sessions/{session_id}/cancel",
    response_model=SessionRead,
    responses=CHANGE_ERRORS,
    summary="Cancel a session",
)
@response_headers("ETag")
async def cancel_session(
    session_id: uuid.UUID,
    body: SessionCancel,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Cancel the session and its appointments that have not happened. Needs `If-Match`."""
    access.require_market_writer(viewer)
    found = await sessions.load_session(session, viewer=viewer, session_id=session_id, for_update=True)
    check_if_match(if_match, session_etag(found))
    found = await sessions.cancel_session(session, viewer=viewer, market_session=found, data=body)
    (read,) = await session_reads(session, [found])
    return JSONResponse(read.model_dump(mode="json"), headers={"ETag": session_etag(found)})


# --- requests -----------------------------------------------------------------------------------


@router.post(
    "/requests",
    response_model=RequestRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 415, 422),
    summary="Register a request (samtalelapp, list, referral)",
)
@response_headers("ETag", "Location")
async def create_request(
    body: RequestCreate, session: SessionDep, viewer: ViewerDep, idempotency: IdempotencyDep
) -> Response:
    access.require_request_writer(viewer)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    created = await requests.create_request(session, viewer=viewer, data=body)
    return await idempotency.respond(
        to_request_read(created),
        status_code=201,
        location=f"/api/v1/market/requests/{created.id}",
        headers={"ETag": request_etag(created)},
    )


@router.get(
    "/requests",
    response_model=Page[RequestRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a unit's requests",
)
async def list_requests(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID,
    triage_state: TriageState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[RequestRead]:
    """Oldest first: the queue to triage."""
    found, next_cursor = await requests.list_requests_page(
        session, viewer=viewer, unit_id=unit_id, triage_state=triage_state, limit=limit, cursor=cursor
    )
    return Page(items=[to_request_read(r) for r in found], next_cursor=next_cursor)


@router.get(
    "/requests/{request_id}",
    response_model=RequestRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a request",
)
@response_headers("ETag")
async def get_request(request_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    found = await requests.load_request(session, viewer=viewer, request_id=request_id)
    return JSONResponse(to_request_read(found).model_dump(mode="json"), headers={"ETag": request_etag(found)})


@router.post(
    "/requests/{request_id}/triage",
    response_model=RequestRead,
    responses=CHANGE_ERRORS,
    summary="Triage a request",
)
@response_headers("ETag")
async def triage_request(
    request_id: uuid.UUID,
    body: RequestTriage,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Accept, decline or mark scheduled. Needs `If-Match`."""
    access.require_request_writer(viewer)
    found = await requests.load_request(session, viewer=viewer, request_id=request_id)
    check_if_match(if_match, request_etag(found))
    found = await requests.triage_request(session, viewer=viewer, request=found, state=body.triage_state)
    return JSONResponse(to_request_read(found).model_dump(mode="json"), headers={"ETag": request_etag(found)})


# --- appointments -------------------------------------------------------------------------------


@router.post(
    "/appointments",
    response_model=AppointmentRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 415, 422),
    summary="Book an inmate into a session",
)
@response_headers("ETag", "Location")
async def book_appointment(
    body: AppointmentCreate, session: SessionDep, viewer: ViewerDep, idempotency: IdempotencyDep
) -> Response:
    """409 when the session is full, cancelled, or the inmate is booked at an overlapping time.
    Two staff taking the last place at once: one gets 201, the other 409. Send `Idempotency-Key`."""
    access.require_market_writer(viewer)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    appointment = await appointments.book(session, viewer=viewer, data=body)
    (view,) = await appointments.views(session, [appointment])
    return await idempotency.respond(
        to_appointment_read(view, viewer),
        status_code=201,
        location=f"/api/v1/market/appointments/{appointment.id}",
        headers={"ETag": appointment_etag(appointment)},
    )


@router.get(
    "/appointments",
    response_model=Page[AppointmentRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a unit's appointments",
)
async def list_appointments(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    state: Annotated[list[AppointmentState] | None, Query()] = None,
    from_date: FromDay = None,
    to_date: ToDay = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[AppointmentRead]:
    found, next_cursor = await appointments.list_appointments_page(
        session,
        viewer=viewer,
        unit_id=unit_id,
        session_id=session_id,
        case_id=case_id,
        states=state,
        from_date=from_date,
        to_date=to_date,
        limit=limit,
        cursor=cursor,
    )
    shown = await appointments.views(session, found)
    await audit.record_access(
        session,
        viewer,
        reads=[(v.person.id, v.appointment.case_id) for v in shown],
        what="market.appointments",
    )
    return Page(items=[to_appointment_read(v, viewer) for v in shown], next_cursor=next_cursor)


@router.get(
    "/appointments/{appointment_id}",
    response_model=AppointmentRead,
    responses=problem_responses(401, 403, 404),
    summary="Read an appointment",
)
@response_headers("ETag")
async def get_appointment(appointment_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    appointment = await appointments.load_appointment(session, viewer=viewer, appointment_id=appointment_id)
    return await appointment_response(session, viewer, appointment, what="market.appointment")


@router.post(
    "/appointments/{appointment_id}/transitions",
    response_model=AppointmentRead,
    responses=CHANGE_ERRORS,
    summary="Move an appointment to another state",
)
@response_headers("ETag")
async def change_appointment_state(
    appointment_id: uuid.UUID,
    body: AppointmentTransition,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """An illegal move is 409 naming `allowed_next`. `rescheduled` books the new session in the
    same call and links it as `rescheduled_to_id`. Needs `If-Match`."""
    access.require_market_writer(viewer)
    appointment = await appointments.load_appointment(session, viewer=viewer, appointment_id=appointment_id)
    check_if_match(if_match, appointment_etag(appointment))
    appointment = await appointments.transition(session, viewer=viewer, appointment=appointment, data=body)
    return await appointment_response(session, viewer, appointment, what="market.appointment")


@router.post(
    "/appointments/{appointment_id}/check-in",
    response_model=AppointmentRead,
    responses=CHANGE_ERRORS,
    summary="Check the inmate in",
)
@response_headers("ETag")
async def check_in_appointment(
    appointment_id: uuid.UUID, body: CheckIn, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """From `escort_confirmed` (or a move to cell or video) to `checked_in`. Needs `If-Match`."""
    access.require_market_writer(viewer)
    appointment = await appointments.load_appointment(session, viewer=viewer, appointment_id=appointment_id)
    check_if_match(if_match, appointment_etag(appointment))
    appointment = await checkins.check_in(session, viewer=viewer, appointment=appointment, data=body)
    return await appointment_response(session, viewer, appointment, what="market.appointment")


@router.post(
    "/appointments/{appointment_id}/complete",
    response_model=AppointmentRead,
    responses=CHANGE_ERRORS,
    summary="Record the outcome",
)
@response_headers("ETag")
async def record_outcome(
    appointment_id: uuid.UUID, body: Completion, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """From `checked_in` to `completed`. A referral adds an action to the case's domain and
    publishes `case.market_referral_made.v1`. Needs `If-Match`."""
    access.require_market_writer(viewer)
    appointment = await appointments.load_appointment(session, viewer=viewer, appointment_id=appointment_id)
    check_if_match(if_match, appointment_etag(appointment))
    appointment = await checkins.complete(session, viewer=viewer, appointment=appointment, data=body)
    return await appointment_response(session, viewer, appointment, what="market.appointment")


# --- units: escort capacity and the day list ----------------------------------------------------


def to_capacity_read(unit_id: uuid.UUID, row: MarketUnitCapacity | None) -> UnitCapacityRead:
    if row is None:
        return UnitCapacityRead(
            unit_id=unit_id,
            escorts_available=capacity.DEFAULT_ESCORTS_AVAILABLE,
            updated_by=None,
            updated_at=None,
            version=0,
            etag=None,
        )
    return UnitCapacityRead(
        unit_id=unit_id,
        escorts_available=row.escorts_available,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        version=row.version,
        etag=capacity_etag(row),
    )


@router.get(
    "/units/{unit_id}/capacity",
    response_model=UnitCapacityRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a unit's escort capacity",
)
@response_headers("ETag")
async def get_unit_capacity(unit_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    """Officers available for escorts per hour; the default when never set (no ETag then)."""
    await access.require_unit(session, viewer, unit_id)
    row = await capacity.get_capacity(session, unit_id)
    headers = {"ETag": capacity_etag(row)} if row else {}
    return JSONResponse(to_capacity_read(unit_id, row).model_dump(mode="json"), headers=headers)


@router.put(
    "/units/{unit_id}/capacity",
    response_model=UnitCapacityRead,
    responses=CHANGE_ERRORS,
    summary="Set a unit's escort capacity",
)
@response_headers("ETag")
async def set_unit_capacity(
    unit_id: uuid.UUID, body: UnitCapacityUpdate, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Needs `If-Match` once the unit has a capacity."""
    access.require_market_writer(viewer)
    await access.require_unit(session, viewer, unit_id)
    row = await capacity.get_capacity(session, unit_id)
    if row is not None:
        check_if_match(if_match, capacity_etag(row))
    row = await capacity.put_capacity(
        session, viewer=viewer, unit_id=unit_id, escorts_available=body.escorts_available
    )
    return JSONResponse(
        to_capacity_read(unit_id, row).model_dump(mode="json"), headers={"ETag": capacity_etag(row)}
    )


@router.get(
    "/day-list",
    response_model=DayList,
    responses=problem_responses(401, 403, 404, 422),
    summary="The day list: who goes where and when",
)
async def market_day_list(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID,
    day: Annotated[
        date,
        Query(
            alias="date", ge=EARLIEST_DAY, le=LATEST_DAY, description=f"Local day (Europe/Oslo), {DAY_RANGE}."
        ),
    ],
    escorts_available: Annotated[
        int | None, Query(ge=0, le=500, description="Defaults to the unit's escort capacity.")
    ] = None,
) -> DayList:
    """For one unit and day: each appointment (person as "Given F."), the escorts needed per hour
    against those available, and the conflicts to resolve."""
    plan = await day_plan(
        session, viewer=viewer, unit_id=unit_id, day=day, escorts_available=escorts_available
    )
    await audit.record_access(session, viewer, reads=plan.reads, what="market.day_list")
    return to_day_list(plan)


# --- statistics ---------------------------------------------------------------------------------


@router.get(
    "/statistics",
    response_model=Statistics,
    responses={
        **problem_responses(401, 403, 404, 422),
        200: {"content": {"application/json": {}, "text/csv": {}}, "description": "The figures"},
    },
    summary="Service market statistics",
)
async def market_statistics(
    session: SessionDep,
    viewer: ViewerDep,
    unit_id: uuid.UUID,
    from_date: Annotated[
        date,
        Query(
            alias="from", ge=EARLIEST_DAY, le=LATEST_DAY, description=f"Local day, included ({DAY_RANGE})."
        ),
    ],
    to_date: Annotated[
        date,
        Query(alias="to", ge=EARLIEST_DAY, le=LATEST_DAY, description=f"Local day, included ({DAY_RANGE})."),
    ],
    group_by: StatisticsGroupBy = StatisticsGroupBy.MONTH,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response:
    """Sessions held, unique inmates served, requests against appointments held, cancellations by
    cause and weeks with NAV present (docs/servicetorg.md defines each). `format=csv` gives text/csv."""
    result = await stats.compute(
        session, viewer=viewer, unit_id=unit_id, from_date=from_date, to_date=to_date, group_by=group_by
    )
    if format == "csv":
        return Response(
            stats.to_csv(result),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="servicetorg.csv"'},
        )
    return JSONResponse(result.model_dump(mode="json"))
