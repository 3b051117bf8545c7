"""Service market statistics proved on a generated month (tests/case_api/market/generate.py).

Every figure is worked out here from the generator's own record of what it did, following the
definitions in docs/servicetorg.md, and compared with GET /market/statistics for each grouping,
as JSON and as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.market.models import AppointmentState, OutcomeCode, PrisonCancelCause, ProviderKind
from tests.case_api.conftest import Directory
from tests.case_api.market.generate import OSLO, AppointmentRecord, Month, SessionRecord, generate
from tests.case_api.market.helpers import BASE, market_session, provider
from tests.conftest import auth

GROUPINGS = ("month", "provider", "domain")
ATTENDED = {AppointmentState.CHECKED_IN, AppointmentState.COMPLETED}
NOT_HELD = {
    OutcomeCode.NOT_HELD_INMATE_DECLINED,
    OutcomeCode.NOT_HELD_PROVIDER_ABSENT,
    OutcomeCode.NOT_HELD_NO_ESCORT,
}


def held(appointment: AppointmentRecord) -> bool:
    return appointment.state in ATTENDED and appointment.outcome not in NOT_HELD


def local_day(moment: datetime) -> date:
    return moment.astimezone(OSLO).date()


@dataclass
class Tally:
    label: str
    sessions: int = 0
    sessions_held: int = 0
    sessions_cancelled: int = 0
    inmates: set[uuid.UUID] = field(default_factory=set)
    requests: int = 0
    appointments: int = 0
    appointments_held: int = 0
    no_shows: int = 0
    prison: Counter[PrisonCancelCause] = field(default_factory=Counter)
    by_provider: int = 0
    nav_weeks: set[tuple[int, int]] = field(default_factory=set)

    def row(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "label": self.label,
            "sessions": self.sessions,
            "sessions_held": self.sessions_held,
            "sessions_cancelled": self.sessions_cancelled,
            "unique_inmates_served": len(self.inmates),
            "requests": self.requests,
            "appointments": self.appointments,
            "appointments_held": self.appointments_held,
            "no_shows": self.no_shows,
            "cancelled_by_prison_no_escort": self.prison[PrisonCancelCause.NO_ESCORT],
            "cancelled_by_prison_lockdown": self.prison[PrisonCancelCause.LOCKDOWN],
            "cancelled_by_prison_other": self.prison[PrisonCancelCause.OTHER],
            "cancelled_by_provider": self.by_provider,
            "weeks_with_nav_present": len(self.nav_weeks),
        }


def session_groups(slot: SessionRecord, group_by: str) -> list[tuple[str, str]]:
    if group_by == "month":
        month = slot.starts_at.astimezone(OSLO).strftime("%Y-%m")
        return [(month, month)]
    if group_by == "provider":
        return [(str(slot.provider.id), slot.provider.name)]
    return [(d, d) for d in slot.domains] or [("none", "none")]


def expected(
    month: Month, unit_id: uuid.UUID, group_by: str, first: date, last: date
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The figures, from the generator's record: rows by key, and the total."""
    tallies: dict[str, Tally] = {}
    total = Tally("total")
    in_period = [
        s for s in month.sessions if s.unit_id == unit_id and first <= local_day(s.starts_at) <= last
    ]
    for slot in in_period:
        booked = [a for a in month.appointments if a.session is slot]
        # A rescheduled booking counts once: as the new appointment, in the session it moved to.
        counted = [a for a in booked if a.state is not AppointmentState.RESCHEDULED]
        held_here = [a for a in booked if held(a)]
        cancelled = slot.cancelled_by is not None
        targets = [tallies.setdefault(k, Tally(label)) for k, label in session_groups(slot, group_by)]
        for tally in [*targets, total]:
            tally.sessions += 1
            tally.sessions_cancelled += cancelled
            tally.sessions_held += not cancelled and bool(held_here)
            tally.inmates |= {a.case_id for a in held_here}
            tally.appointments += len(counted)
            tally.appointments_held += len(held_here)
            for a in booked:
                tally.no_shows += a.state is AppointmentState.NO_SHOW
                tally.by_provider += a.state is AppointmentState.CANCELLED_BY_PROVIDER
                if a.state is AppointmentState.CANCELLED_BY_PRISON:
                    assert a.cause is not None
                    tally.prison[a.cause] += 1
            # NAV present: it came (not cancelled) and at least one talk was held.
            if slot.provider.kind is ProviderKind.NAV and not cancelled and held_here:
                tally.nav_weeks.add(slot.starts_at.astimezone(OSLO).isocalendar()[:2])
    for request in month.requests:
        if request.unit_id != unit_id or not first <= local_day(request.created_at) <= last:
            continue
        if group_by == "month":
            key = label = request.created_at.astimezone(OSLO).strftime("%Y-%m")
        elif group_by == "provider":
            wanted = request.wanted_provider
            key, label = (str(wanted.id), wanted.name) if wanted else ("none", "none")
        else:
            key = label = request.wanted_domain.value if request.wanted_domain else "none"
        tallies.setdefault(key, Tally(label)).requests += 1
        total.requests += 1
    return {key: tally.row(key) for key, tally in tallies.items()}, total.row("total")


async def statistics(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    unit_id: uuid.UUID,
    first: date,
    last: date,
    **params: str,
) -> httpx.Response:
    query = {"unit_id": str(unit_id), "from": first.isoformat(), "to": last.isoformat(), **params}
    return await client.get(f"{BASE}/statistics", params=query, headers=headers)


def parse_csv(text: str, group_by: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames is not None
    assert reader.fieldnames[0] == group_by
    rows = {}
    for raw in reader:
        row: dict[str, Any] = {
            name: value if name in (group_by, "label") else int(value) for name, value in raw.items()
        }
        row["key"] = row.pop(group_by)
        rows[row["key"]] = row
    total = rows.pop("total")
    return rows, total


def headline(month: Month, unit_id: uuid.UUID, total: dict[str, Any], weeks: int) -> str:
    first, last = month.first_day, month.last_day
    booked = [
        a
        for a in month.appointments
        if a.session.unit_id == unit_id and first <= local_day(a.session.starts_at) <= last
    ]
    moved = Counter(a.moved_to.value for a in booked if a.moved_to)
    outcomes = Counter(a.outcome.value for a in booked if a.outcome)
    referrals = sum(a.referral_domain is not None for a in booked)
    n = total["appointments"]
    completed = sum(a.state is AppointmentState.COMPLETED for a in booked)
    prison = total["cancelled_by_prison_no_escort"] + total["cancelled_by_prison_lockdown"]
    return "\n".join(
        [
            f"Service market, Halden prison, {first:%B %Y} (generated, seed 2026):",
            f"  sessions {total['sessions']}: held {total['sessions_held']}, cancelled {total['sessions_cancelled']}",
            f"  inmates with a case {len(month.cases[unit_id])}, served {total['unique_inmates_served']}",
            f"  requests {total['requests']}, appointments {n}, held {total['appointments_held']}",
            f"  completed {completed} ({completed / n:.0%}), outcomes {dict(sorted(outcomes.items()))}",
            f"  no-shows {total['no_shows']} ({total['no_shows'] / n:.0%})",
            f"  cancelled by the prison {prison} ({prison / n:.0%}): no escort "
            f"{total['cancelled_by_prison_no_escort']}, lockdown {total['cancelled_by_prison_lockdown']}",
            f"  cancelled by the provider {total['cancelled_by_provider']} ({total['cancelled_by_provider'] / n:.0%})",
            f"  moved {dict(moved)}, rescheduled "
            f"{sum(a.state is AppointmentState.RESCHEDULED for a in booked)}, referrals {referrals}",
            f"  weeks with NAV present {total['weeks_with_nav_present']} of {weeks}",
        ]
    )


async def test_the_statistics_of_a_generated_month_add_up(
    case_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory
) -> None:
    month = await generate(case_client, sessionmaker, directory)
    halden, oslo = directory.unit_halden, directory.unit_oslo
    first, last = month.first_day, month.last_day
    coordinator = directory.coordinator_east

    for group_by in GROUPINGS:
        response = await statistics(case_client, coordinator, halden, first, last, group_by=group_by)
        assert response.status_code == 200, response.text
        body = response.json()
        rows, total = expected(month, halden, group_by, first, last)
        assert body["weeks_in_period"] == 6  # ISO weeks 9 (Sunday 1 March) to 14
        assert body["total"] == total, group_by
        assert {row["key"]: row for row in body["rows"]} == rows, group_by
        assert [row["key"] for row in body["rows"]] == sorted(rows)

        as_csv = await statistics(
            case_client, coordinator, halden, first, last, group_by=group_by, format="csv"
        )
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert parse_csv(as_csv.text, group_by) == ({row["key"]: row for row in body["rows"]}, body["total"])

        if group_by == "month":
            assert [row["key"] for row in body["rows"]] == ["2026-03"]
            print("\n" + headline(month, halden, total, body["weeks_in_period"]))

    # The month is not trivial: what the figures are meant to tell apart is there.
    _, total = expected(month, halden, "month", first, last)
    assert 25 <= total["sessions"] <= 45
    assert 130 <= total["appointments"] <= 170
    assert total["requests"] > total["appointments_held"] > total["unique_inmates_served"] >= 40
    assert total["weeks_with_nav_present"] == 4  # not week 9 (no NAV), nor week 12 (cancelled, absent)
    assert (
        min(
            total["no_shows"],
            total["cancelled_by_prison_no_escort"],
            total["cancelled_by_prison_lockdown"],
            total["cancelled_by_provider"],
        )
        > 0
    )

    # Oslo's month is its own: nothing of it in Halden's figures, and the other way round.
    oslo_response = await statistics(case_client, coordinator, oslo, first, last, group_by="provider")
    oslo_rows, oslo_total = expected(month, oslo, "provider", first, last)
    assert oslo_response.json()["total"] == oslo_total
    assert {row["key"]: row for row in oslo_response.json()["rows"]} == oslo_rows
    assert str(month.providers["nav"].id) in oslo_rows  # Oslo slips asking for Halden's NAV
    halden_keys = {
        row["key"]
        for row in (
            await statistics(case_client, coordinator, halden, first, last, group_by="provider")
        ).json()["rows"]
    }
    assert str(month.providers["nav_oslo"].id) not in halden_keys
    both = await statistics(case_client, directory.admin, halden, first, last)
    assert both.json()["total"]["sessions"] == total["sessions"]

    # Who may ask: Halden's own service market staff yes; Oslo's, or another region's, see no
    # Halden; NAV may not ask at all.
    assert (
        await statistics(case_client, auth("service_market", org=str(halden)), halden, first, last)
    ).status_code == 200
    for headers in (
        auth("service_market", org=str(oslo)),
        auth("prison_staff", org=str(oslo)),
        auth("coordinator", org=str(directory.region_south)),
    ):
        assert (await statistics(case_client, headers, halden, first, last)).status_code == 404
    assert (
        await statistics(case_client, auth("nav", org=str(directory.nav_halden)), halden, first, last)
    ).status_code == 403

    # One week inside the month, cut at local midnight: NAV's week 12 had NAV cancelled on
    # Tuesday and absent on Thursday.
    week_first, week_last = date(2026, 3, 16), date(2026, 3, 22)
    for group_by in GROUPINGS:
        response = await statistics(
            case_client, coordinator, halden, week_first, week_last, group_by=group_by
        )
        rows, total = expected(month, halden, group_by, week_first, week_last)
        assert response.json()["total"] == total
        assert {row["key"]: row for row in response.json()["rows"]} == rows
    assert response.json()["weeks_in_period"] == 1
    assert total["weeks_with_nav_present"] == 0
    assert total["sessions_cancelled"] == 1


async def test_a_csv_cell_is_never_a_formula(case_client: httpx.AsyncClient, directory: Directory) -> None:
    """A provider's name is typed by staff; opened in a spreadsheet it must stay text."""
    h = directory.coordinator_east
    sneaky = await provider(
        case_client,
        h,
        directory.ngo,
        name='=HYPERLINK("http://example.invalid","Røde Kors")',
        kind="volunteer",
    )
    starts = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    await market_session(
        case_client, h, unit=directory.unit_halden, provider_id=sneaky["id"], starts_at=starts
    )
    day = date(2026, 3, 4)
    as_csv = await statistics(
        case_client, h, directory.unit_halden, day, day, group_by="provider", format="csv"
    )
    rows, _ = parse_csv(as_csv.text, "provider")
    assert rows[sneaky["id"]]["label"] == "'" + sneaky["name"]
    as_json = await statistics(case_client, h, directory.unit_halden, day, day, group_by="provider")
    assert as_json.json()["rows"][0]["label"] == sneaky["name"]
