"""Demo service-market data for the embedded mode: a week at Halden fengsel's service market.

Providers (NAV, the municipality's housing office and debt adviser, the prison's social worker),
sessions from three days before the day of start to three days after, and bookings of a few demo
inmates in them. Past days have check-ins, outcomes, no-shows and cancellations; today has a few
check-ins and bookings waiting for escort or check-in; later days are planned. Everything goes
through case-api's HTTP API in-process, as the staff roles that do it in a prison, so every rule
of the market and of cases applies.

Idempotent by day: a day of the window that already has a session of a demo provider is left as
it is, so a restart adds nothing, and a restart a few days later adds only the days now in the
window. The demo cases get no release date and no municipality, so notify-worker sends nothing
for them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from shared.auth import Role, mint_token
from shared.clock import OSLO
from shared.identifiers import make_identity_number

UNIT_NAME = "Halden fengsel"
# Days before and after the day of start that get sessions.
WINDOW_DAYS = 3
# Officers Halden fengsel can spare for escorts per hour (set once, when the unit has none).
ESCORTS_AVAILABLE = 6

# Demo inmates (synthetic identity numbers, never a real person's).
PEOPLE = (
    ("Jonas", "Berg", date(1988, 4, 12)),
    ("Ali", "Hassan", date(1995, 9, 3)),
    ("Marius", "Olsen", date(1979, 1, 27)),
    ("Thomas", "Johansen", date(1991, 6, 15)),
    ("Emil", "Lund", date(2001, 11, 8)),
    ("Kristoffer", "Nilsen", date(1984, 2, 19)),
    ("Sander", "Moe", date(1998, 7, 30)),
    ("Daniel", "Haugen", date(1976, 10, 5)),
)


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    organization: str  # "nav_office", "municipality" or "unit": which directory entry it is


NAV = Provider("NAV Halden, servicetorg", "nav", "nav_office")
HOUSING = Provider("Boligkontoret, Halden kommune", "housing", "municipality")
DEBT = Provider("Gjeldsrådgivning, Halden kommune", "financial_advice", "municipality")
SOCIAL = Provider("Sosialkonsulenten, Halden fengsel", "internal_service", "unit")
PROVIDERS = (NAV, HOUSING, DEBT, SOCIAL)


@dataclass(frozen=True)
class Slot:
    provider: Provider
    starts: time
    ends: time
    capacity: int
    domains: tuple[str, ...]
    bookings: int
    format: str = "one_to_one"
    announcement: str | None = None


_SOCIAL = ("social_services", "id_papers")
# Each weekday's sessions (Monday 0); on weekends the social worker keeps a short drop-in.
WEEK: dict[int, tuple[Slot, ...]] = {
    0: (
        Slot(SOCIAL, time(9), time(11, 30), 5, _SOCIAL, 4),
        Slot(DEBT, time(13), time(15), 4, ("debt", "income"), 3),
    ),
    1: (
        Slot(NAV, time(9), time(11, 30), 6, ("work", "income"), 4, announcement="NAV er her hver tirsdag."),
        Slot(HOUSING, time(12, 30), time(14, 30), 4, ("housing",), 3),
    ),
    2: (
        Slot(HOUSING, time(10), time(12), 4, ("housing",), 3),
        Slot(SOCIAL, time(13), time(15, 30), 5, _SOCIAL, 4),
    ),
    3: (
        Slot(NAV, time(12, 30), time(15), 6, ("work", "income"), 4),
        Slot(
            DEBT,
            time(18),
            time(19, 30),
            15,
            ("debt", "income"),
            6,
            format="theme_evening",
            announcement="Temakveld: gjeld, inkasso og gjeldsordning.",
        ),
    ),
    4: (
        Slot(SOCIAL, time(9), time(11, 30), 5, _SOCIAL, 3),
        Slot(NAV, time(12, 30), time(14, 30), 6, ("work", "income"), 4),
    ),
    5: (Slot(SOCIAL, time(10), time(12), 4, _SOCIAL, 3, announcement="Åpen time i helgen."),),
    6: (Slot(SOCIAL, time(10), time(12), 4, _SOCIAL, 3, announcement="Åpen time i helgen."),),
}

# What happened to a booking in a session that is over, taken in turn.
PAST_FATES = ("held", "referral", "no_show", "partly_held", "no_escort", "video", "held", "provider")
REFERRALS = {
    "nav": ("work", "Arbeidsavklaring påbegynt, NAV følger opp etter løslatelse"),
    "housing": ("housing", "Søknad om kommunal bolig sendt"),
    "financial_advice": ("debt", "Henvist til gjeldsrådgiver i kommunen"),
}


@dataclass(frozen=True)
class Directory:
    """The directory entries the demo needs, by id (from agreement-api's database)."""

    unit_id: uuid.UUID
    region_id: uuid.UUID
    municipality_id: uuid.UUID
    nav_office_id: uuid.UUID

    def organization_of(self, provider: Provider) -> uuid.UUID:
        return {
            "nav_office": self.nav_office_id,
            "municipality": self.municipality_id,
            "unit": self.unit_id,
        }[provider.organization]


@dataclass
class Loaded:
    days: list[date]  # the days that got sessions now; empty when all were there
    sessions: int = 0
    appointments: int = 0


class _Api:
    """case-api's HTTP API as one role acting for one organization; any unexpected answer raises."""

    def __init__(self, client: httpx.AsyncClient, role: Role, subject: str, organization: uuid.UUID) -> None:
        token = mint_token(role=role, subject=subject, organization_id=str(organization), ttl_seconds=900)
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        etag: str | None = None,
        accept: tuple[int, ...] = (200, 201),
    ) -> httpx.Response:
        headers = dict(self.headers)
        if etag is not None:
            headers["If-Match"] = etag
        response = await self.client.request(
            method, f"/api/v1{path}", json=body, params=params, headers=headers
        )
        if response.status_code not in accept:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response


def local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=OSLO)


async def load(client: httpx.AsyncClient, directory: Directory, *, now: datetime | None = None) -> Loaded:
    """Add the days of the window around ``now`` (default: the present) that have no demo sessions."""
    now = now or datetime.now(UTC)
    today = now.astimezone(OSLO).date()
    window = [today + timedelta(days=offset) for offset in range(-WINDOW_DAYS, WINDOW_DAYS + 1)]
    unit = directory.unit_id
    coordinator = _Api(client, Role.COORDINATOR, "demo-koordinator", directory.region_id)
    staff = _Api(client, Role.PRISON_STAFF, "demo-fengselsbetjent", unit)
    desk = _Api(client, Role.SERVICE_MARKET, "demo-servicetorg", unit)

    providers = await _providers(staff, directory)
    taken = await _days_with_sessions(staff, unit, window, set(providers.values()))
    loaded = Loaded(days=[day for day in window if day not in taken])
    if not loaded.days:
        return loaded
    capacity = (await staff.call("GET", f"/market/units/{unit}/capacity")).json()
    if capacity["etag"] is None:
        await staff.call(
            "PUT", f"/market/units/{unit}/capacity", body={"escorts_available": ESCORTS_AVAILABLE}
        )
    cases = await _cases(coordinator, unit)
    for day in loaded.days:
        for index, slot in enumerate(WEEK[day.weekday()]):
            created = await staff.call(
                "POST",
                "/market/sessions",
                body={
                    "unit_id": str(unit),
                    "provider_id": str(providers[slot.provider]),
                    "format": slot.format,
                    "location_type": "service_market_room",
                    "location_note": "Servicetorget, 1. etasje",
                    "starts_at": local(day, slot.starts).isoformat(),
                    "ends_at": local(day, slot.ends).isoformat(),
                    "capacity": slot.capacity,
                    "recurrence": "ad_hoc",
                    "announcement": slot.announcement,
                    "domains": list(slot.domains),
                },
            )
            session_id = created.json()["items"][0]["id"]
            loaded.sessions += 1
            first = (day.toordinal() * 3 + index * 4) % len(cases)
            for number in range(min(slot.bookings, len(cases))):
                case_id = cases[(first + number) % len(cases)]
                await _booking(staff, desk, session_id, case_id, slot, day, number, turn=index, now=now)
                loaded.appointments += 1
    return loaded


async def _providers(staff: _Api, directory: Directory) -> dict[Provider, str]:
    """The demo providers' ids, registering those that are missing (the catalogue is shared)."""
    existing = {p["name"]: p["id"] for p in (await staff.call("GET", "/market/providers")).json()}
    ids = {}
    for provider in PROVIDERS:
        if provider.name not in existing:
            created = await staff.call(
                "POST",
                "/market/providers",
                body={
                    "organization_id": str(directory.organization_of(provider)),
                    "name": provider.name,
                    "kind": provider.kind,
                },
            )
            existing[provider.name] = created.json()["id"]
        ids[provider] = existing[provider.name]
    return ids


async def _days_with_sessions(
    staff: _Api, unit: uuid.UUID, window: list[date], provider_ids: set[str]
) -> set[date]:
    days: set[date] = set()
    params: dict[str, Any] = {"unit_id": str(unit), "from": window[0], "to": window[-1], "limit": 200}
    while True:
        page = (await staff.call("GET", "/market/sessions", params=params)).json()
        for item in page["items"]:
            if item["provider_id"] in provider_ids:
                days.add(datetime.fromisoformat(item["starts_at"]).astimezone(OSLO).date())
        if not page["next_cursor"]:
            return days
        params["cursor"] = page["next_cursor"]


async def _cases(coordinator: _Api, unit: uuid.UUID) -> list[str]:
    """Each demo inmate's open case in the unit: registered and opened once, found again later."""
    open_cases: dict[str, str] = {}  # person id -> open case in the unit
    params: dict[str, Any] = {"unit_id": str(unit), "limit": 200}
    while True:
        page = (await coordinator.call("GET", "/cases", params=params)).json()
        open_cases.update(
            {item["person"]["id"]: item["id"] for item in page["items"] if item["status"] != "closed"}
        )
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    cases = []
    for given, family, born in PEOPLE:
        number = next(n for i in range(500) if (n := make_identity_number(born, i, synthetic=True)))
        person = await coordinator.call(
            "POST",
            "/persons",
            body={"identity_number": number, "given_name": given, "family_name": family},
            accept=(201, 409),
        )
        person_id = person.json()["id" if person.status_code == 201 else "existing_id"]
        if person_id in open_cases:
            cases.append(open_cases[person_id])
            continue
        case = await coordinator.call(
            "POST",
            "/cases",
            body={"person_id": person_id, "current_unit_id": str(unit), "planning_basis": "final_judgment"},
            accept=(201, 409),
        )
        if case.status_code == 201:  # 409: the person's open case is in another unit now; left out
            cases.append(case.json()["id"])
    if not cases:
        raise RuntimeError(f"none of the demo inmates has an open case in {UNIT_NAME}")
    return cases


async def _booking(
    staff: _Api,
    desk: _Api,
    session_id: str,
    case_id: str,
    slot: Slot,
    day: date,
    number: int,
    *,
    turn: int,
    now: datetime,
) -> None:
    """Book one inmate, then move the booking along: a past day's to what became of it; today's
    first session has its first inmates checked in and the rest wait for escort or check-in, at
    whatever hour the mode starts, so the staff page always has something to do; later days'
    bookings are planned, the last of a session still a request."""
    today = now.astimezone(OSLO).date()
    booked = await staff.call(
        "POST",
        "/market/appointments",
        body={
            "session_id": session_id,
            "case_id": case_id,
            "escort_officers": 2 if number == 2 and slot.format == "one_to_one" else 1,
            "needs_lift": number == 3,
            "high_security": number == 2 and slot.format == "one_to_one",
            "state": "requested" if day > today and number == 3 else "scheduled",
        },
    )
    appointment = booked.json()
    path = f"/market/appointments/{appointment['id']}"

    async def move(api: _Api, action: str, body: dict[str, Any]) -> None:
        nonlocal appointment
        appointment = (await api.call("POST", f"{path}/{action}", body=body, etag=appointment["etag"])).json()

    if day > today:
        return
    if day == today:
        if turn > 0 and number >= 2:
            return  # scheduled: the escort is confirmed on the day
        await move(desk, "transitions", {"to": "escort_confirmed"})
        if turn == 0 and number < 2:
            await move(desk, "check-in", {"minutes_late": 5 if number == 1 else 0})
            if number == 0 and local(day, slot.ends) <= now:
                await move(staff, "complete", _outcome(slot, "held"))
        return
    fate = PAST_FATES[(day.toordinal() + turn * 3 + number) % len(PAST_FATES)]
    if fate == "no_escort":
        await move(
            staff,
            "transitions",
            {
                "to": "cancelled_by_prison",
                "cause": "no_escort",
                "reason": "Ikke nok betjenter til fremstilling",
            },
        )
        return
    if fate == "provider":
        await move(staff, "transitions", {"to": "cancelled_by_provider", "reason": "Saksbehandler syk"})
        return
    if fate == "video":
        await move(staff, "transitions", {"to": "moved_to_video", "reason": "Samtalen tas på video"})
    else:
        await move(desk, "transitions", {"to": "escort_confirmed"})
    if fate == "no_show":
        await move(desk, "transitions", {"to": "no_show", "reason": "Ville ikke komme"})
        return
    await move(desk, "check-in", {"minutes_late": 10 if number == 1 else 0})
    await move(staff, "complete", _outcome(slot, fate))


def _outcome(slot: Slot, fate: str) -> dict[str, Any]:
    """The minimal outcome prison staff record: held or partly held, the domains touched on, and
    for a ``referral`` a referral in the provider's domain where the provider makes them."""
    partly = fate == "partly_held"
    outcome: dict[str, Any] = {
        "outcome_code": "partly_held" if partly else "held",
        "domains_touched": list(slot.domains[:1] if partly else slot.domains),
        "follow_up_needed": fate in ("partly_held", "referral"),
    }
    if fate == "referral" and slot.provider.kind in REFERRALS:
        domain, note = REFERRALS[slot.provider.kind]
        outcome.update(referral_made=True, referral_domain=domain, referral_note=note)
        if domain not in outcome["domains_touched"]:
            outcome["domains_touched"].append(domain)
    return outcome
