"""Bulk loading synthetic cases, persons and notices straight into the real tables with COPY.

The API would take hours for a million cases; COPY (asyncpg's ``copy_records_to_table``) loads the
same rows in minutes. Everything goes into the tables ``alembic upgrade head`` made, with every
index and constraint in place, so the load pays what production inserts pay and the planner sees
realistic statistics afterwards. Rows are synthetic: no name, and no identity number anywhere (the
identity columns hold a hash-shaped and a ciphertext-shaped placeholder).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from shared.municipalities import all_municipalities

CHUNK = 20_000

PERSON_COLUMNS = (
    "id",
    "given_name",
    "family_name",
    "birth_date",
    "identity_hash",
    "identity_ciphertext",
    "created_at",
    "created_by",
)
CASE_COLUMNS = (
    "id",
    "person_id",
    "current_unit_id",
    "region_id",
    "planning_basis",
    "opened_at",
    "status",
    "status_changed_at",
    "priority_groups",
    "release_destination",
    "responsible_kommunenummer",
    "municipality_status",
    "nav_office_id",
    "effective_release_date",
    "closed_at",
    "created_by",
    "created_at",
    "updated_at",
    "version",
)
NOTICE_COLUMNS = (
    "id",
    "case_id",
    "recipient_organization_id",
    "recipient_kind",
    "agreement_source",
    "kind",
    "milestone_days",
    "business_days",
    "release_date",
    "due_at",
    "state",
    "hold_reason",
    "receipt_deadline_days",
    "profile",
    "claimed_by",
    "claimed_at",
    "delivered_at",
    "receipt_due_at",
    "created_at",
    "updated_at",
    "version",
)

# Milestones of the default rule set (docs/notices.md): the municipality hears all four, NAV the last.
MUNICIPALITY_MILESTONES = (90, 30, 7, 0)
NAV_MILESTONES = (0,)
PROFILE = '{"domains": ["housing", "income"], "fields": []}'
# A notice's due time: 08:00 Europe/Oslo, stored as UTC (07:00 in winter; close enough for load data).
DUE_HOUR_UTC = 7
CIPHERTEXT_PLACEHOLDER = "bench-placeholder-" + "0" * 82  # about the length of a real ciphertext


class Progress:
    """A carriage-return counter on stderr: done, total, rate and time left."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        sys.stderr.write(
            f"\r[bench] {self.label}: {self.done:>10,} / {self.total:,} rows "
            f"({self.done / max(self.total, 1):4.0%}), {rate:>8,.0f} rows/s, {left:4.0f} s left "
        )
        sys.stderr.flush()

    def close(self) -> float:
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r[bench] {self.label}: {self.done:,} rows in {elapsed:.1f} s{' ' * 40}\n")
        sys.stderr.flush()
        return elapsed


@dataclass
class Directory:
    """The organizations the synthetic cases point at (ids only: case-api keeps no directory FK)."""

    regions: list[uuid.UUID]
    units: list[tuple[uuid.UUID, uuid.UUID]]  # (prison, its region)
    nav_offices: list[uuid.UUID]
    municipalities: dict[str, uuid.UUID]  # kommunenummer -> the municipality's organization id
    kommunenummer: list[str] = field(default_factory=list)

    @classmethod
    def synthetic(cls, rng: random.Random) -> Directory:
        regions = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(5)]
        units = [(uuid.UUID(int=rng.getrandbits(128), version=4), regions[i % 5]) for i in range(60)]
        numbers = [municipality.kommunenummer for municipality in all_municipalities()]
        return cls(
            regions=regions,
            units=units,
            nav_offices=[uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(200)],
            municipalities={number: uuid.UUID(int=rng.getrandbits(128), version=4) for number in numbers},
            kommunenummer=numbers,
        )


@dataclass
class LoadedCase:
    """What the notice generator needs to know about a case it made."""

    id: uuid.UUID
    release_date: date | None
    kommunenummer: str | None
    nav_office_id: uuid.UUID | None
    closed: bool


@dataclass
class LoadStats:
    persons: int = 0
    cases: int = 0
    notices: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notice_states: dict[str, int] = field(default_factory=dict)
    due_now: int = 0


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _chunks(total: int, size: int = CHUNK) -> Iterator[int]:
    left = total
    while left > 0:
        yield min(size, left)
        left -= size


async def pipelined(
    sizes: list[int],
    make: Callable[[int], Any],
    copy: Callable[..., Awaitable[None]],
    done: Callable[[int], None],
) -> None:
    """Build chunk n+1 in a thread while chunk n is being COPYed: PostgreSQL's index upkeep on one
    core, Python's row building on the other."""
    if not sizes:
        return
    ready = await asyncio.to_thread(make, sizes[0])
    for position, size in enumerate(sizes):
        copying = asyncio.ensure_future(copy(*ready))
        if position + 1 < len(sizes):
            ready = await asyncio.to_thread(make, sizes[position + 1])
        await copying
        done(size)


async def copy_rows(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=list(columns))


async def load_cases(
    conn: asyncpg.Connection,
    count: int,
    *,
    directory: Directory,
    now: datetime,
    rng: random.Random,
    label: str = "persons and cases",
) -> list[LoadedCase]:
    """``count`` persons with one case each: opened over the last five years, most of them planning
    towards a release date in the next 18 months, some released or closed."""
    loaded: list[LoadedCase] = []
    progress = Progress(label, count * 2)
    today = now.date()
    salt = uuid.uuid4().hex
    index = 0

    def make_chunk(size: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        nonlocal index
        persons: list[tuple[Any, ...]] = []
        cases: list[tuple[Any, ...]] = []
        for _ in range(size):
            index += 1
            person_id = _uuid(rng)
            opened_at = now - timedelta(seconds=rng.randrange(5 * 365 * 86400))
            persons.append(
                (
                    person_id,
                    "Bench",
                    f"Person {index}",
                    date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365)),
                    hashlib.sha256(f"{salt}:{index}".encode()).hexdigest(),
                    CIPHERTEXT_PLACEHOLDER,
                    opened_at,
                    "bench-loader",
                )
            )
            unit_id, region_id = directory.units[rng.randrange(len(directory.units))]
            roll = rng.random()
            closed = roll < 0.08
            status = "closed" if closed else ("released" if roll < 0.15 else "planning")
            release = None if closed else today + timedelta(days=rng.randrange(-30, 548))
            kommunenummer = directory.kommunenummer[rng.randrange(len(directory.kommunenummer))]
            nav_office_id = directory.nav_offices[rng.randrange(len(directory.nav_offices))]
            cases.append(
                (
                    _uuid(rng),
                    person_id,
                    unit_id,
                    region_id,
                    "final_judgment" if rng.random() < 0.8 else "remand_request",
                    opened_at,
                    status,
                    opened_at,
                    "[]",
                    "municipality",
                    kommunenummer,
                    "confirmed",
                    nav_office_id,
                    release,
                    now if closed else None,
                    "bench-loader",
                    opened_at,
                    opened_at,
                    1,
                )
            )
            loaded.append(LoadedCase(cases[-1][0], release, kommunenummer, nav_office_id, closed))
        return persons, cases

    async def copy_chunk(persons: list[tuple[Any, ...]], cases: list[tuple[Any, ...]]) -> None:
        await copy_rows(conn, "case_person", PERSON_COLUMNS, persons)
        await copy_rows(conn, "case_case", CASE_COLUMNS, cases)

    await pipelined(list(_chunks(count)), make_chunk, copy_chunk, lambda size: progress.advance(2 * size))
    progress.close()
    return loaded


def _due_at(release: date, days: int) -> datetime:
    day = release - timedelta(days=days)
    return datetime(day.year, day.month, day.day, DUE_HOUR_UTC, tzinfo=UTC)


def notice_rows(
    cases: Sequence[LoadedCase],
    total: int,
    *,
    directory: Directory,
    now: datetime,
    rng: random.Random,
    overdue_share: float,
) -> Iterator[tuple[Any, ...]]:
    """Milestone notices for the cases, round after round over the cases until ``total``: four to
    the municipality (90, 30, 7 and 0 days) and one to the NAV office. A notice whose due time
    has passed was delivered (or cancelled when its case closed); ``overdue_share`` of all
    notices are scheduled and overdue, the backlog the claim query finds."""
    plan = [("municipality", days) for days in MUNICIPALITY_MILESTONES] + [
        ("nav", days) for days in NAV_MILESTONES
    ]
    made = 0
    round_number = 0
    while made < total:
        for case in cases:
            for recipient_kind, days in plan:
                if made >= total:
                    return
                made += 1
                if recipient_kind == "municipality":
                    recipient = directory.municipalities[case.kommunenummer or directory.kommunenummer[0]]
                else:
                    recipient = case.nav_office_id or directory.nav_offices[0]
                # Later rounds over the same cases stand for further recipients (other agreements).
                if round_number:
                    recipient = uuid.UUID(int=(recipient.int + round_number) % (1 << 128))
                release = case.release_date or (now.date() - timedelta(days=rng.randrange(30, 365)))
                due_at = _due_at(release, days)
                claimed_at = delivered_at = receipt_due_at = None
                hold_reason = None
                roll = rng.random()
                if case.closed:
                    state = "cancelled" if due_at > now else "delivered"
                elif roll < overdue_share:
                    state = "scheduled"
                    due_at = now - timedelta(seconds=rng.randrange(1, 3600))
                elif due_at <= now:
                    state = "delivered"
                elif roll < overdue_share + 0.03:
                    state, hold_reason = "held", "no_consent"
                elif roll < overdue_share + 0.05:
                    state = "cancelled"
                else:
                    state = "scheduled"
                if state == "delivered":
                    claimed_at = delivered_at = due_at + timedelta(seconds=rng.randrange(1, 60))
                    receipt_due_at = delivered_at + timedelta(days=5)
                yield (
                    _uuid(rng),
                    case.id,
                    recipient,
                    recipient_kind,
                    "default",
                    "milestone",
                    days,
                    False,
                    release,
                    due_at,
                    state,
                    hold_reason,
                    5,
                    PROFILE,
                    "bench-loader" if claimed_at else None,
                    claimed_at,
                    delivered_at,
                    receipt_due_at,
                    now,
                    now,
                    1,
                )
        round_number += 1


async def load_notices(
    conn: asyncpg.Connection,
    cases: Sequence[LoadedCase],
    total: int,
    *,
    directory: Directory,
    now: datetime,
    rng: random.Random,
    overdue_share: float,
    stats: LoadStats,
) -> None:
    progress = Progress("notices", total)
    rows = notice_rows(cases, total, directory=directory, now=now, rng=rng, overdue_share=overdue_share)
    state_index = NOTICE_COLUMNS.index("state")
    due_index = NOTICE_COLUMNS.index("due_at")

    def make_chunk(size: int) -> tuple[list[tuple[Any, ...]]]:
        chunk = list(itertools.islice(rows, size))
        for row in chunk:
            state = row[state_index]
            stats.notice_states[state] = stats.notice_states.get(state, 0) + 1
            if state == "scheduled" and row[due_index] <= now:
                stats.due_now += 1
        return (chunk,)

    async def copy_chunk(chunk: list[tuple[Any, ...]]) -> None:
        await copy_rows(conn, "notify_notice", NOTICE_COLUMNS, chunk)

    await pipelined(list(_chunks(total)), make_chunk, copy_chunk, progress.advance)
    stats.seconds["notices"] = progress.close()
    stats.notices = total


async def due_notices(
    conn: asyncpg.Connection,
    case_ids: Sequence[uuid.UUID],
    *,
    recipients: Sequence[uuid.UUID],
    due_at: datetime,
    batch: int,
    spacing: timedelta = timedelta(0),
) -> list[uuid.UUID]:
    """One scheduled notice per case, all due at ``due_at``, spread over ``recipients`` in turn:
    the worker benchmark's batch. ``batch`` is stored as the milestone, so each batch is told
    apart (and never collides with an earlier one on the one-milestone-per-recipient index).
    With ``spacing`` the n-th notice falls due n spacings after ``due_at`` (a steady flow).
    Returns the notice ids."""
    rows: list[tuple[Any, ...]] = []
    release = due_at.date() + timedelta(days=batch)
    for index, case_id in enumerate(case_ids):
        due = due_at + index * spacing
        rows.append(
            (
                uuid.uuid4(),
                case_id,
                recipients[index % len(recipients)],
                "municipality",
                "default",
                "milestone",
                batch,
                False,
                release,
                due,
                "scheduled",
                None,
                5,
                PROFILE,
                None,
                None,
                None,
                None,
                due_at,
                due_at,
                1,
            )
        )
    await copy_rows(conn, "notify_notice", NOTICE_COLUMNS, rows)
    return [row[0] for row in rows]
