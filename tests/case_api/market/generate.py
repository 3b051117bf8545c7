"""A deterministic month at a prison's service market, built through the market service layer.

March 2026 at Halden prison (the `directory` fixture's ``unit_halden``; sized like Indre Østfold:
107 places, about 60 days' average stay): NAV twice a week, the housing office and the prison's
social worker weekly, financial advice every other Monday evening, Røde Kors when it can. About 60
inmates, 150 bookings and their requests, with what really happens: most talks held, some
no-shows, the prison unable to escort or locked down, a provider who cancels or does not turn up,
talks moved to the cell or to video, bookings moved to a later week.

Every step goes through the market's service modules (and cases through the API), so the rules on
capacity, double booking, the state machine and scope all apply. A :class:`Clock` stands in for
``shared.db.utcnow`` so each step happens at the moment it would have. What the generator did is
kept in a :class:`Month`, from which a test can work out every figure without asking the database.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import Enum
from unittest import mock
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import shared.db
from case_api.access import Viewer
from case_api.domains.models import Domain
from case_api.market import appointments, checkins, providers, requests, sessions
from case_api.market.models import (
    AppointmentState,
    LocationType,
    OutcomeCode,
    PrisonCancelCause,
    ProviderKind,
    Recurrence,
    RequestChannel,
    SessionFormat,
    TriageState,
)
from case_api.market.schemas import (
    AppointmentCreate,
    AppointmentTransition,
    CancelSide,
    CheckIn,
    Completion,
    ProviderCreate,
    RequestCreate,
    SessionCancel,
    SessionCreate,
)
from case_api.organizations import service as organizations
from shared.auth import Principal, Role
from shared.db import unit_of_work
from tests.case_api.conftest import Directory, open_case

SEED = 2026
OSLO = ZoneInfo("Europe/Oslo")
FIRST_DAY = date(2026, 3, 1)
LAST_DAY = date(2026, 3, 31)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A local (Oslo) wall-clock time as an aware UTC datetime."""
    return datetime.combine(day, time(hour, minute), tzinfo=OSLO).astimezone(UTC)


# --- the record of what was done ----------------------------------------------------------------


@dataclass
class ProviderRecord:
    key: str
    id: uuid.UUID
    name: str
    kind: ProviderKind


@dataclass
class SessionRecord:
    id: uuid.UUID
    unit_id: uuid.UUID
    provider: ProviderRecord
    starts_at: datetime
    ends_at: datetime
    capacity: int
    domains: tuple[str, ...]
    cancelled_by: CancelSide | None = None
    # Generator's own bookkeeping: inmates with a place planned, bookings wanted.
    planned: set[uuid.UUID] = field(default_factory=set)
    fill: tuple[int, int] = (0, 0)
    provider_absent: bool = False


@dataclass
class AppointmentRecord:
    session: SessionRecord
    case_id: uuid.UUID
    request_id: uuid.UUID | None
    id: uuid.UUID | None = None
    state: AppointmentState = AppointmentState.SCHEDULED
    cause: PrisonCancelCause | None = None
    moved_to: LocationType | None = None
    outcome: OutcomeCode | None = None
    domains_touched: tuple[str, ...] = ()
    referral_domain: Domain | None = None
    rescheduled_from: AppointmentRecord | None = None


@dataclass
class RequestRecord:
    id: uuid.UUID
    case_id: uuid.UUID
    unit_id: uuid.UUID
    created_at: datetime
    channel: RequestChannel
    wanted_provider: ProviderRecord | None
    wanted_domain: Domain | None
    triage: TriageState = TriageState.NEW


@dataclass
class Month:
    """Everything the generator did in all units (filter by ``unit_id``)."""

    first_day: date
    last_day: date
    providers: dict[str, ProviderRecord] = field(default_factory=dict)
    sessions: list[SessionRecord] = field(default_factory=list)
    appointments: list[AppointmentRecord] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    cases: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)


# --- clock and timeline -------------------------------------------------------------------------


class Clock:
    """Stands in for ``datetime`` inside ``shared.db``, so ``utcnow()`` is the generator's time."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self, tz: tzinfo | None = None) -> datetime:
        return self.moment.astimezone(tz) if tz else self.moment.astimezone(UTC).replace(tzinfo=None)

    @contextmanager
    def installed(self) -> Iterator[Clock]:
        with mock.patch.object(shared.db, "datetime", self):
            yield self


class Timeline:
    """Steps run in time order; a step may add later ones."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._queue: list[tuple[datetime, int, Callable[[], Awaitable[None]]]] = []
        self._order = itertools.count()

    def at(self, moment: datetime, step: Callable[[], Awaitable[None]]) -> None:
        assert moment >= self.clock.moment, "a step cannot happen in the past"
        heapq.heappush(self._queue, (moment, next(self._order), step))

    async def run(self) -> None:
        while self._queue:
            moment, _, step = heapq.heappop(self._queue)
            self.clock.moment = moment
            await step()


class Fate(Enum):
    COMPLETE = "complete"
    CHECKED_IN_ONLY = "checked_in_only"  # staff never recorded the outcome
    NO_SHOW = "no_show"
    NO_ESCORT = "no_escort"
    LOCKDOWN = "lockdown"
    PROVIDER = "provider"
    CELL = "cell"
    VIDEO = "video"
    RESCHEDULE = "reschedule"


# Of the bookings in sessions that go ahead. Whole sessions cancelled (NAV ill, a lockdown) add
# their bookings to the provider and lockdown cancellations.
FATES = {
    Fate.COMPLETE: 66.5,
    Fate.CHECKED_IN_ONLY: 1.5,
    Fate.NO_SHOW: 10.5,
    Fate.NO_ESCORT: 7.5,
    Fate.LOCKDOWN: 2.5,
    Fate.PROVIDER: 1.5,
    Fate.CELL: 2.5,
    Fate.VIDEO: 2.5,
    Fate.RESCHEDULE: 4.5,
}
OUTCOMES = {
    OutcomeCode.HELD: 78,
    OutcomeCode.PARTLY_HELD: 12,
    OutcomeCode.NOT_HELD_INMATE_DECLINED: 10,
}
REFERRALS: dict[ProviderKind, tuple[Domain, str]] = {
    ProviderKind.NAV: (Domain.WORK, "Arbeidsavklaring påbegynt, NAV følger opp etter løslatelse"),
    ProviderKind.HOUSING: (Domain.HOUSING, "Søknad om kommunal bolig sendt"),
    ProviderKind.FINANCIAL_ADVICE: (Domain.DEBT, "Henvist til gjeldsrådgiver i kommunen"),
    ProviderKind.INTERNAL_SERVICE: (Domain.ID_PAPERS, "Nytt pass bestilt"),
    ProviderKind.VOLUNTEER: (Domain.NETWORK_FAMILY, "Kontakt med mentor avtalt før løslatelse"),
}
CHANNELS: dict[ProviderKind, list[RequestChannel]] = {
    ProviderKind.NAV: [RequestChannel.REQUEST_SLIP] * 3 + [RequestChannel.STAFF_REFERRAL],
    ProviderKind.HOUSING: [RequestChannel.REQUEST_SLIP] * 2 + [RequestChannel.STAFF_REFERRAL],
    ProviderKind.FINANCIAL_ADVICE: [RequestChannel.LIST_SIGNUP],
    ProviderKind.INTERNAL_SERVICE: [RequestChannel.REQUEST_SLIP, RequestChannel.STAFF_REFERRAL],
    ProviderKind.VOLUNTEER: [RequestChannel.AFTER_PRESENTATION, RequestChannel.LIST_SIGNUP],
}


async def viewer_for(session: AsyncSession, role: Role, unit_id: uuid.UUID) -> Viewer:
    organization = await organizations.get(session, unit_id)
    assert organization is not None
    return Viewer(
        principal=Principal(subject=f"{role.value}@{unit_id}", role=role, organization_id=str(unit_id)),
        organization=organization,
        region_id=await organizations.region_of(session, organization),
    )


# --- the generator ------------------------------------------------------------------------------


class Generator:
    def __init__(
        self,
        db: AsyncSession,
        month: Month,
        rng: random.Random,
        timeline: Timeline,
        staff: Viewer,
        desk: Viewer,
    ) -> None:
        self.db = db
        self.month = month
        self.rng = rng
        self.timeline = timeline
        self.staff = staff  # prison staff: requests, bookings, outcomes
        self.desk = desk  # service market staff: escorts and check-in
        assert staff.organization_id is not None
        self.unit_id: uuid.UUID = staff.organization_id

    # sessions

    async def series(
        self,
        provider: ProviderRecord,
        *,
        first: date,
        until: date,
        hours: tuple[tuple[int, int], tuple[int, int]],
        capacity: int,
        domains: list[Domain],
        fmt: SessionFormat = SessionFormat.ONE_TO_ONE,
        recurrence: Recurrence = Recurrence.WEEKLY,
        fill: tuple[int, int],
    ) -> list[SessionRecord]:
        (h0, m0), (h1, m1) = hours
        starts = local(first, h0, m0)
        created = await sessions.create_sessions(
            self.db,
            viewer=self.staff,
            data=SessionCreate(
                unit_id=self.unit_id,
                provider_id=provider.id,
                format=fmt,
                location_type=LocationType.SERVICE_MARKET_ROOM,
                location_note="Servicetorget, 1. etasje",
                starts_at=starts,
                ends_at=local(first, h1, m1),
                capacity=capacity,
                recurrence=recurrence,
                repeat_until=until if recurrence is not Recurrence.AD_HOC else None,
                domains=domains,
            ),
        )
        records = [
            SessionRecord(
                id=s.id,
                unit_id=s.unit_id,
                provider=provider,
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                capacity=s.capacity,
                domains=tuple(s.domains),
                fill=fill,
            )
            for s in created
        ]
        self.month.sessions.extend(records)
        return records

    # requests and bookings

    def plan_bookings(self, sessions: list[SessionRecord], cases: list[tuple[uuid.UUID, datetime]]) -> None:
        """Decide who asks for each session and book them, with what then happens to each."""
        activity = {case_id: self.rng.expovariate(1.0) + 0.2 for case_id, _ in cases}
        arrived = dict(cases)
        for market_session in sorted(sessions, key=lambda s: s.starts_at):
            low, high = market_session.fill
            wanted = min(self.rng.randint(low, high), market_session.capacity)
            for _ in range(wanted):
                asked_at = local(
                    (market_session.starts_at - timedelta(days=self.rng.randint(4, 12)))
                    .astimezone(OSLO)
                    .date(),
                    self.rng.randint(8, 15),
                    self.rng.choice((0, 15, 30, 45)),
                )
                eligible = [
                    case_id
                    for case_id, since in arrived.items()
                    if since + timedelta(days=1) <= asked_at and case_id not in market_session.planned
                ]
                if not eligible:
                    continue
                case_id = self.rng.choices(eligible, weights=[activity[c] for c in eligible])[0]
                market_session.planned.add(case_id)
                booking = AppointmentRecord(session=market_session, case_id=case_id, request_id=None)
                self.month.appointments.append(booking)
                walk_in = self.rng.random() < 0.08
                booked_at = asked_at + timedelta(days=1, hours=self.rng.randint(0, 4))
                if not walk_in:
                    self.timeline.at(asked_at, self._request_step(booking))
                self.timeline.at(booked_at, self._book_step(booking))

    def _request_step(self, booking: AppointmentRecord) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            provider = booking.session.provider
            with_domain = self.rng.random() < 0.35
            domain = Domain(booking.session.domains[0]) if with_domain and booking.session.domains else None
            record = await self.request(
                booking.case_id,
                channel=self.rng.choice(CHANNELS[provider.kind]),
                provider=provider,
                domain=domain,
            )
            booking.request_id = record.id

        return step

    async def request(
        self,
        case_id: uuid.UUID,
        *,
        channel: RequestChannel,
        provider: ProviderRecord | None,
        domain: Domain | None,
        note: str | None = None,
    ) -> RequestRecord:
        created = await requests.create_request(
            self.db,
            viewer=self.staff,
            data=RequestCreate(
                case_id=case_id,
                channel=channel,
                wanted_provider_id=provider.id if provider else None,
                wanted_domain=domain,
                note=note,
            ),
        )
        record = RequestRecord(
            id=created.id,
            case_id=case_id,
            unit_id=created.unit_id,
            created_at=created.created_at,
            channel=channel,
            wanted_provider=provider,
            wanted_domain=domain,
        )
        self.month.requests.append(record)
        return record

    async def triage(self, record: RequestRecord, state: TriageState) -> None:
        stored = await requests.load_request(self.db, viewer=self.staff, request_id=record.id)
        await requests.triage_request(self.db, viewer=self.staff, request=stored, state=state)
        record.triage = state

    def _book_step(self, booking: AppointmentRecord) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            created = await appointments.book(
                self.db,
                viewer=self.staff,
                data=AppointmentCreate(
                    session_id=booking.session.id,
                    case_id=booking.case_id,
                    request_id=booking.request_id,
                    escort_officers=2 if self.rng.random() < 0.1 else 1,
                    needs_lift=self.rng.random() < 0.05,
                    high_security=self.rng.random() < 0.04,
                ),
            )
            booking.id = created.id
            if booking.request_id is not None:
                for record in self.month.requests:
                    if record.id == booking.request_id:
                        record.triage = TriageState.SCHEDULED
            self.plan_fate(booking, allow_reschedule=True)

        return step

    # what happens to a booking

    def plan_fate(self, booking: AppointmentRecord, *, allow_reschedule: bool) -> None:
        market_session = booking.session
        if market_session.cancelled_by is not None:
            return  # the whole session is cancelled: its bookings go with it
        fates = {f: w for f, w in FATES.items() if allow_reschedule or f is not Fate.RESCHEDULE}
        fate = self.rng.choices(list(fates), weights=list(fates.values()))[0]
        target = self.reschedule_target(booking) if fate is Fate.RESCHEDULE else None
        if fate is Fate.RESCHEDULE and target is None:
            fate = Fate.COMPLETE
        if market_session.provider_absent and fate in (Fate.CHECKED_IN_ONLY, Fate.CELL, Fate.VIDEO):
            fate = Fate.COMPLETE
        start = market_session.starts_at
        day = start.astimezone(OSLO).date()
        morning = local(day, 7, 30)
        at = self.timeline.at
        if fate is Fate.PROVIDER:
            at(
                local(day - timedelta(days=1), 14),
                self._move(booking, AppointmentState.CANCELLED_BY_PROVIDER),
            )
        elif fate is Fate.NO_ESCORT:
            at(
                local(day, 7, 45),
                self._move(booking, AppointmentState.CANCELLED_BY_PRISON, PrisonCancelCause.NO_ESCORT),
            )
        elif fate is Fate.RESCHEDULE:
            assert target is not None
            target.planned.add(booking.case_id)  # the place is kept for the move
            at(local(day - timedelta(days=2), 10), self._reschedule(booking, target))
        else:
            at(morning, self._move(booking, AppointmentState.ESCORT_CONFIRMED))
            if fate is Fate.NO_SHOW:
                at(start + timedelta(minutes=10), self._move(booking, AppointmentState.NO_SHOW))
            elif fate is Fate.LOCKDOWN:
                at(
                    start - timedelta(minutes=30),
                    self._move(booking, AppointmentState.CANCELLED_BY_PRISON, PrisonCancelCause.LOCKDOWN),
                )
            else:
                if fate is Fate.CELL:
                    at(start - timedelta(hours=1), self._move(booking, AppointmentState.MOVED_TO_CELL_VISIT))
                elif fate is Fate.VIDEO:
                    at(start - timedelta(hours=1), self._move(booking, AppointmentState.MOVED_TO_VIDEO))
                checked_in = start + timedelta(minutes=self.rng.randint(0, 60))
                at(checked_in, self._check_in(booking, minutes_late=self.rng.choice((0, 0, 0, 5, 10, 20))))
                if fate is not Fate.CHECKED_IN_ONLY:
                    at(checked_in + timedelta(minutes=25), self._complete(booking))

    def reschedule_target(self, booking: AppointmentRecord) -> SessionRecord | None:
        later = sorted(
            (
                s
                for s in self.month.sessions
                if s.provider is booking.session.provider
                and s.starts_at > booking.session.starts_at
                and s.cancelled_by is None
                and booking.case_id not in s.planned
                and len(s.planned) < s.capacity
            ),
            key=lambda s: s.starts_at,
        )
        return later[0] if later else None

    def _move(
        self, booking: AppointmentRecord, to: AppointmentState, cause: PrisonCancelCause | None = None
    ) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            assert booking.id is not None
            stored = await appointments.load_appointment(self.db, viewer=self.desk, appointment_id=booking.id)
            reason = {
                AppointmentState.CANCELLED_BY_PROVIDER: "Saksbehandler syk",
                AppointmentState.CANCELLED_BY_PRISON: "Ikke nok betjenter til fremstilling"
                if cause is PrisonCancelCause.NO_ESCORT
                else "Innlåsing på avdelingen",
                AppointmentState.NO_SHOW: "Ville ikke komme",
                AppointmentState.MOVED_TO_CELL_VISIT: "Utelukket fra fellesskapet",
                AppointmentState.MOVED_TO_VIDEO: "Samtalen tas på video",
            }.get(to)
            await appointments.transition(
                self.db,
                viewer=self.desk,
                appointment=stored,
                data=AppointmentTransition(to=to, cause=cause, reason=reason),
            )
            booking.state, booking.cause = to, cause
            if to is AppointmentState.MOVED_TO_CELL_VISIT:
                booking.moved_to = LocationType.CELL
            elif to is AppointmentState.MOVED_TO_VIDEO:
                booking.moved_to = LocationType.VIDEO

        return step

    def _reschedule(self, booking: AppointmentRecord, target: SessionRecord) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            assert booking.id is not None
            stored = await appointments.load_appointment(
                self.db, viewer=self.staff, appointment_id=booking.id
            )
            await appointments.transition(
                self.db,
                viewer=self.staff,
                appointment=stored,
                data=AppointmentTransition(
                    to=AppointmentState.RESCHEDULED,
                    reschedule_to_session_id=target.id,
                    reason="Permisjon samme dag",
                ),
            )
            booking.state = AppointmentState.RESCHEDULED
            assert stored.rescheduled_to_id is not None
            moved = AppointmentRecord(
                session=target,
                case_id=booking.case_id,
                request_id=booking.request_id,
                id=stored.rescheduled_to_id,
                rescheduled_from=booking,
            )
            self.month.appointments.append(moved)
            self.plan_fate(moved, allow_reschedule=False)

        return step

    def _check_in(self, booking: AppointmentRecord, *, minutes_late: int) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            assert booking.id is not None
            stored = await appointments.load_appointment(self.db, viewer=self.desk, appointment_id=booking.id)
            await checkins.check_in(
                self.db, viewer=self.desk, appointment=stored, data=CheckIn(minutes_late=minutes_late)
            )
            booking.state = AppointmentState.CHECKED_IN

        return step

    def _complete(self, booking: AppointmentRecord) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            assert booking.id is not None
            kind = booking.session.provider.kind
            if booking.session.provider_absent:
                outcome = OutcomeCode.NOT_HELD_PROVIDER_ABSENT
            else:
                outcome = self.rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
            touched: list[Domain] = []
            referral: tuple[Domain, str] | None = None
            if outcome in (OutcomeCode.HELD, OutcomeCode.PARTLY_HELD):
                touched = [Domain(d) for d in booking.session.domains if self.rng.random() < 0.8]
                if self.rng.random() < 0.15:
                    touched.append(self.rng.choice([Domain.DEBT, Domain.SUBSTANCE_TREATMENT, Domain.HOUSING]))
                touched = sorted(set(touched), key=lambda d: d.value) or [Domain(booking.session.domains[0])]
                if self.rng.random() < 0.2:
                    referral = REFERRALS[kind]
                    if referral[0] not in touched:
                        touched.append(referral[0])
            stored = await appointments.load_appointment(
                self.db, viewer=self.staff, appointment_id=booking.id
            )
            await checkins.complete(
                self.db,
                viewer=self.staff,
                appointment=stored,
                data=Completion(
                    outcome_code=outcome,
                    domains_touched=touched,
                    follow_up_needed=referral is not None or self.rng.random() < 0.3,
                    referral_made=referral is not None,
                    referral_domain=referral[0] if referral else None,
                    referral_note=referral[1] if referral else None,
                ),
            )
            booking.state = AppointmentState.COMPLETED
            booking.outcome = outcome
            booking.domains_touched = tuple(d.value for d in touched)
            booking.referral_domain = referral[0] if referral else None

        return step

    def cancel_session(
        self, market_session: SessionRecord, side: CancelSide, at: datetime, reason: str
    ) -> None:
        """The whole session goes: planned now, so no booking in it gets a fate of its own."""
        market_session.cancelled_by = side

        async def step() -> None:
            stored = await sessions.load_session(
                self.db, viewer=self.staff, session_id=market_session.id, for_update=True
            )
            await sessions.cancel_session(
                self.db,
                viewer=self.staff,
                market_session=stored,
                data=SessionCancel(reason=reason, cause=side),
            )
            for booking in self.month.appointments:
                if booking.session is market_session and booking.id is not None:
                    if side is CancelSide.PROVIDER:
                        booking.state = AppointmentState.CANCELLED_BY_PROVIDER
                    else:
                        booking.state = AppointmentState.CANCELLED_BY_PRISON
                        booking.cause = PrisonCancelCause(side.value)

        self.timeline.at(at, step)


# --- the month ----------------------------------------------------------------------------------


async def provider(
    db: AsyncSession,
    staff: Viewer,
    month: Month,
    key: str,
    organization_id: uuid.UUID,
    name: str,
    kind: ProviderKind,
) -> ProviderRecord:
    created = await providers.create_provider(
        db, viewer=staff, data=ProviderCreate(organization_id=organization_id, name=name, kind=kind)
    )
    record = ProviderRecord(key=key, id=created.id, name=created.name, kind=created.kind)
    month.providers[key] = record
    return record


async def open_cases(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    clock: Clock,
    rng: random.Random,
    unit: uuid.UUID,
    *,
    before: int,
    during: int,
) -> list[tuple[uuid.UUID, datetime]]:
    """Inmates through the case API: most there before the month, some arriving in its first weeks."""
    arrivals = sorted(
        [local(FIRST_DAY - timedelta(days=rng.randint(2, 55)), rng.randint(9, 15)) for _ in range(before)]
        + [local(FIRST_DAY + timedelta(days=rng.randint(1, 19)), rng.randint(9, 15)) for _ in range(during)]
    )
    opened = []
    for arrival in arrivals:
        clock.moment = arrival
        case = await open_case(client, headers, unit=unit)
        opened.append((uuid.UUID(case["id"]), arrival))
    return opened


async def generate(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory
) -> Month:
    """March 2026 at Halden (the unit under test) and, alongside, a little of Oslo's."""
    rng = random.Random(SEED)
    month = Month(first_day=FIRST_DAY, last_day=LAST_DAY)
    clock = Clock(local(date(2026, 1, 5), 9))
    headers = directory.coordinator_east
    halden, oslo = directory.unit_halden, directory.unit_oslo
    with clock.installed():
        halden_cases = await open_cases(client, headers, clock, rng, halden, before=46, during=14)
        oslo_cases = await open_cases(client, headers, clock, rng, oslo, before=10, during=0)
        month.cases = {halden: [c for c, _ in halden_cases], oslo: [c for c, _ in oslo_cases]}
        clock.moment = local(date(2026, 2, 10), 9)
        async with unit_of_work(sessionmaker) as db:
            timeline = Timeline(clock)
            staff = await viewer_for(db, Role.PRISON_STAFF, halden)
            desk = await viewer_for(db, Role.SERVICE_MARKET, halden)
            gen = Generator(db, month, rng, timeline, staff, desk)

            nav = await provider(
                db, staff, month, "nav", directory.nav_halden, "NAV Halden, servicetorg", ProviderKind.NAV
            )
            housing = await provider(
                db,
                staff,
                month,
                "housing",
                directory.halden,
                "Boligkontoret Halden kommune",
                ProviderKind.HOUSING,
            )
            money = await provider(
                db,
                staff,
                month,
                "financial_advice",
                directory.halden,
                "Økonomisk rådgivning, Halden kommune",
                ProviderKind.FINANCIAL_ADVICE,
            )
            volunteer = await provider(
                db,
                staff,
                month,
                "volunteer",
                directory.ngo,
                "Røde Kors, Nettverk etter soning",
                ProviderKind.VOLUNTEER,
            )
            social = await provider(
                db,
                staff,
                month,
                "social_worker",
                halden,
                "Sosialkonsulenten, Halden fengsel",
                ProviderKind.INTERNAL_SERVICE,
            )

            # The series run from the week before the month into the week after it.
            nav_days = await gen.series(
                nav, first=date(2026, 2, 24), until=date(2026, 4, 5), hours=((9, 0), (11, 30)),
                capacity=6, domains=[Domain.WORK, Domain.INCOME], fill=(5, 6),
            ) + await gen.series(
                nav, first=date(2026, 2, 26), until=date(2026, 4, 5), hours=((12, 30), (15, 0)),
                capacity=6, domains=[Domain.WORK, Domain.INCOME], fill=(5, 6),
            )  # fmt: skip
            housing_days = await gen.series(
                housing, first=date(2026, 2, 25), until=date(2026, 4, 5), hours=((10, 0), (12, 0)),
                capacity=4, domains=[Domain.HOUSING], fill=(3, 4),
            )  # fmt: skip
            social_days = await gen.series(
                social, first=date(2026, 2, 23), until=date(2026, 4, 5), hours=((13, 0), (15, 30)),
                capacity=5, domains=[Domain.SOCIAL_SERVICES, Domain.ID_PAPERS], fill=(3, 5),
            ) + await gen.series(
                social, first=date(2026, 2, 27), until=date(2026, 4, 5), hours=((9, 0), (11, 30)),
                capacity=5, domains=[Domain.SOCIAL_SERVICES, Domain.ID_PAPERS], fill=(3, 5),
            )  # fmt: skip
            evenings = []
            for day in (date(2026, 3, 9), date(2026, 3, 23)):  # every other Monday
                evenings += await gen.series(
                    money, first=day, until=day, hours=((18, 0), (19, 30)), capacity=15,
                    domains=[Domain.DEBT, Domain.INCOME], fmt=SessionFormat.THEME_EVENING,
                    recurrence=Recurrence.AD_HOC, fill=(9, 13),
                )  # fmt: skip
            red_cross = await gen.series(
                volunteer, first=date(2026, 3, 4), until=date(2026, 3, 4), hours=((13, 0), (14, 30)),
                capacity=20, domains=[Domain.NETWORK_FAMILY], fmt=SessionFormat.PRESENTATION,
                recurrence=Recurrence.AD_HOC, fill=(9, 11),
            )  # fmt: skip
            for day, hours in (
                (date(2026, 3, 11), ((13, 0), (15, 0))),
                (date(2026, 3, 18), ((13, 0), (15, 0))),
                (date(2026, 3, 26), ((16, 0), (18, 0))),
                (date(2026, 3, 31), ((13, 0), (15, 0))),
            ):
                red_cross += await gen.series(
                    volunteer, first=day, until=day, hours=hours, capacity=6,
                    domains=[Domain.NETWORK_FAMILY], recurrence=Recurrence.AD_HOC, fill=(3, 5),
                )  # fmt: skip
            # Outside the month the series are thinly booked: they only show the period's edges.
            for s in month.sessions:
                if not FIRST_DAY <= s.starts_at.astimezone(OSLO).date() <= LAST_DAY:
                    s.fill = (1, 3)

            # NAV's week 12: Tuesday cancelled (NAV ill), on Thursday NAV never came.
            by_day = {s.starts_at.astimezone(OSLO).date(): s for s in nav_days}
            gen.cancel_session(
                by_day[date(2026, 3, 17)],
                CancelSide.PROVIDER,
                local(date(2026, 3, 16), 14),
                "Saksbehandler syk",
            )
            by_day[date(2026, 3, 19)].provider_absent = True
            # A lockdown on Wednesday 25 March takes the housing office's morning.
            housing_by_day = {s.starts_at.astimezone(OSLO).date(): s for s in housing_days}
            gen.cancel_session(
                housing_by_day[date(2026, 3, 25)],
                CancelSide.LOCKDOWN,
                local(date(2026, 3, 25), 8),
                "Innlåsing hele dagen",
            )

            gen.plan_bookings(nav_days + housing_days + social_days + evenings + red_cross, halden_cases)
            await timeline.run()

            # NAV is the most wanted and hardest to get: a waiting list that never got a place,
            # and slips for help no provider here gives. Two come in around midnight at the
            # month's edges (the night shift types them in).
            waiting = [local(FIRST_DAY, 0, 40), local(LAST_DAY + timedelta(days=1), 0, 50)]
            waiting += [
                local(FIRST_DAY + timedelta(days=rng.randint(0, 30)), rng.randint(8, 15), 30)
                for _ in range(11)
            ]
            case_ids = [c for c, since in halden_cases if since < local(date(2026, 2, 27), 0)]
            for moment in sorted(waiting):
                clock.moment = moment
                record = await gen.request(
                    rng.choice(case_ids),
                    channel=RequestChannel.REQUEST_SLIP,
                    provider=nav,
                    domain=Domain.WORK,
                )
                if rng.random() < 0.5:
                    clock.moment = moment + timedelta(days=1)
                    await gen.triage(record, TriageState.ACCEPTED)
            for day in (3, 12, 20):
                clock.moment = local(date(2026, 3, day), 10)
                record = await gen.request(
                    rng.choice(case_ids),
                    channel=RequestChannel.REQUEST_SLIP,
                    provider=None,
                    domain=Domain.SUBSTANCE_TREATMENT,
                    note="Ønsker å snakke med noen om rus",
                )
                clock.moment += timedelta(days=1)
                await gen.triage(record, TriageState.DECLINED)

            # Oslo alongside: its own NAV office, and two slips there asking for Halden's NAV.
            clock.moment = local(date(2026, 2, 10), 9)
            oslo_staff = await viewer_for(db, Role.PRISON_STAFF, oslo)
            oslo_desk = await viewer_for(db, Role.SERVICE_MARKET, oslo)
            oslo_gen = Generator(db, month, rng, Timeline(clock), oslo_staff, oslo_desk)
            oslo_nav = await provider(
                db,
                oslo_staff,
                month,
                "nav_oslo",
                directory.nav_grunerlokka,
                "NAV Grünerløkka, servicetorg",
                ProviderKind.NAV,
            )
            oslo_days = await oslo_gen.series(
                oslo_nav, first=date(2026, 3, 3), until=date(2026, 3, 31), hours=((10, 0), (12, 0)),
                capacity=6, domains=[Domain.WORK], fill=(3, 5),
            )  # fmt: skip
            oslo_gen.plan_bookings(oslo_days, oslo_cases)
            await oslo_gen.timeline.run()
            for index, day in enumerate((10, 24)):
                clock.moment = local(date(2026, 3, day), 11)
                await oslo_gen.request(
                    oslo_cases[index][0],
                    channel=RequestChannel.REQUEST_SLIP,
                    provider=nav,
                    domain=Domain.HOUSING,
                )
    return month
