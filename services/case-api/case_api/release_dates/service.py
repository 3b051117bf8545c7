"""Release dates: an append-only history per kind, the current date of each kind, and the case's
effective release date derived from them. Flush, never commit."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus
from case_api.release_dates.errors import InvalidReleaseDate, ReleaseDatesClosed
from case_api.release_dates.models import ReleaseDate, ReleaseDateCertainty, ReleaseDateKind
from case_api.release_dates.schemas import ReleaseDateSet
from shared.contracts import events as contracts
from shared.db import utcnow

# Only a case whose person is still inside takes release dates.
OPEN_STATUSES = frozenset({CaseStatus.INTAKE, CaseStatus.PLANNING, CaseStatus.RELEASE_READY})
# These kinds must not contradict each other: earliest <= two_thirds <= expected.
ORDERED = (ReleaseDateKind.EARLIEST, ReleaseDateKind.TWO_THIRDS, ReleaseDateKind.EXPECTED)
ORDER_RULE = "earliest <= two_thirds <= expected"
MAX_YEARS_AHEAD = 30
SNAPSHOT_FIELDS = ("kind", "date", "certainty", "source", "note")

Current = dict[ReleaseDateKind, ReleaseDate]


async def current_dates(session: AsyncSession, case_id: uuid.UUID) -> Current:
    rows = (
        (
            await session.execute(
                select(ReleaseDate).where(
                    col(ReleaseDate.case_id) == case_id, col(ReleaseDate.superseded_at).is_(None)
                )
            )
        )
        .scalars()
        .all()
    )
    return {row.kind: row for row in rows}


async def history(session: AsyncSession, case_id: uuid.UUID) -> list[tuple[ReleaseDate, dt.date | None]]:
    """Every recorded date of the case with the date of its kind it replaced, newest first."""
    query = (
        select(ReleaseDate)
        .where(col(ReleaseDate.case_id) == case_id)
        .order_by(col(ReleaseDate.recorded_at), col(ReleaseDate.id))
    )
    last: dict[ReleaseDateKind, dt.date] = {}
    entries: list[tuple[ReleaseDate, dt.date | None]] = []
    for row in (await session.execute(query)).scalars():
        entries.append((row, last.get(row.kind)))
        last[row.kind] = row.date
    entries.reverse()
    return entries


# The kinds the effective release date is taken from, the first found winning.
EFFECTIVE_KINDS = (ReleaseDateKind.CONFIRMED, ReleaseDateKind.EXPECTED)


def effective_date(current: Current) -> dt.date | None:
    """The confirmed date, else the expected one."""
    for kind in EFFECTIVE_KINDS:
        if kind in current:
            return current[kind].date
    return None


def _years_ahead(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _check_open(case: Case) -> None:
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot change")
    if case.status not in OPEN_STATUSES:
        raise ReleaseDatesClosed(
            f"A case in {case.status.value!r} no longer takes release dates",
            current_status=case.status.value,
            accepted_statuses=sorted(status.value for status in OPEN_STATUSES),
        )


def _check(case: Case, data: ReleaseDateSet, current: Current) -> None:
    """422 with a ``reason`` (and the conflicting kind) for a date that contradicts the rules."""
    if data.kind is ReleaseDateKind.CONFIRMED and data.certainty is not ReleaseDateCertainty.CERTAIN:
        raise InvalidReleaseDate(
            "A confirmed release date must have certainty 'certain'",
            field="certainty",
            reason="confirmed_not_certain",
        )
    # The UTC day the case opened: lenient by at most a day against the Norwegian calendar day.
    opened = case.opened_at.date()
    if data.date < opened:
        raise InvalidReleaseDate(
            f"The {data.kind.value} date {data.date.isoformat()} is before the case opened ({opened.isoformat()})",
            field="date",
            reason="before_case_opened",
            case_opened=opened.isoformat(),
        )
    latest = _years_ahead(utcnow().date(), MAX_YEARS_AHEAD)
    if data.date > latest:
        raise InvalidReleaseDate(
            f"A release date more than {MAX_YEARS_AHEAD} years ahead is not plausible",
            field="date",
            reason="too_far_ahead",
            latest=latest.isoformat(),
        )
    if data.kind not in ORDERED:
        return
    position = ORDERED.index(data.kind)
    for other_position, other in enumerate(ORDERED):
        existing = current.get(other)
        if other is data.kind or existing is None:
            continue
        too_late = other_position > position and data.date > existing.date
        too_early = other_position < position and data.date < existing.date
        if too_late or too_early:
            relation = "after" if too_late else "before"
            raise InvalidReleaseDate(
                f"The {data.kind.value} date {data.date.isoformat()} is {relation} the current "
                f"{other.value} date {existing.date.isoformat()} ({ORDER_RULE})",
                field="date",
                reason="date_order",
                conflicts_with=other.value,
                conflicting_date=existing.date.isoformat(),
                rule=ORDER_RULE,
            )


def _unchanged(existing: ReleaseDate | None, data: ReleaseDateSet) -> bool:
    return existing is not None and audit.snapshot(existing, SNAPSHOT_FIELDS) == audit.snapshot(
        data, SNAPSHOT_FIELDS
    )


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


async def set_release_date(
    session: AsyncSession, *, viewer: Viewer, case: Case, data: ReleaseDateSet
) -> Current:
    """Record a new date of one kind, superseding the current one, and keep the case's effective
    release date in step (the caller checked If-Match). Sending the current values again changes nothing."""
    _check_open(case)
    current = await current_dates(session, case.id)
    _check(case, data, current)
    previous = current.get(data.kind)
    if _unchanged(previous, data):
        return current
    now = utcnow()
    old_effective = case.effective_release_date
    row = ReleaseDate(
        case_id=case.id,
        kind=data.kind,
        date=data.date,
        certainty=data.certainty,
        source=data.source,
        note=data.note,
        recorded_by=viewer.subject,
        recorded_at=now,
    )
    current[data.kind] = row
    # The case first: a writer that lost the race fails here on the version (412), before it
    # touches the dates.
    case.effective_release_date = effective_date(current)
    case.updated_at = now
    await session.flush()
    if previous is not None:
        previous.superseded_at = now
        await session.flush()
    session.add(row)
    before: dict[str, Any] | None = None
    if previous is not None:
        before = {**audit.snapshot(previous, SNAPSHOT_FIELDS), "effective_release_date": _iso(old_effective)}
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="release_date.set",
        entity="release_date",
        entity_id=row.id,
        before=before,
        after={
            **audit.snapshot(row, SNAPSHOT_FIELDS),
            "effective_release_date": _iso(case.effective_release_date),
        },
    )
    events.emit(
        session,
        contracts.CaseReleaseDateChanged,
        case,
        kind=data.kind.value,
        old_date=_iso(previous.date if previous else None),
        new_date=data.date.isoformat(),
        certainty=data.certainty.value,
        source=data.source.value,
        old_effective_release_date=_iso(old_effective),
        new_effective_release_date=_iso(case.effective_release_date),
    )
    await session.flush()
    return current
