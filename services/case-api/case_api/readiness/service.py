"""Release readiness: what is not in place for a case before release. Read only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer, case_visibility, consent_covers
from case_api.cases.lifecycle import IN_CUSTODY
from case_api.cases.models import Case
from case_api.domains.models import SETTLED_STATUSES, CaseDomain, Domain
from case_api.domains.service import DOMAIN_ORDER, local_today
from case_api.group.models import GroupMember
from case_api.organizations.models import OrganizationRef
from case_api.persons.models import Person
from case_api.readiness.schemas import ReadinessGap
from case_api.release_dates.models import ReleaseDate, ReleaseDateKind
from shared.pagination import as_uuid, decode_cursor, encode_cursor, iso_date

# Only a case whose person is still inside can be (not) ready for release.
PENDING_STATUSES = IN_CUSTODY


@dataclass
class Readiness:
    case: Case
    person: Person
    days_until_release: int | None
    in_window: bool
    gaps: list[ReadinessGap] = field(default_factory=list)
    unsettled: list[CaseDomain] = field(default_factory=list)
    withheld: list[Domain] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.gaps and not self.withheld


async def _confirmed_release_dates(session: AsyncSession, case_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The cases among ``case_ids`` with a current (not superseded) confirmed release date."""
    if not case_ids:
        return set()
    query = select(col(ReleaseDate.case_id)).where(
        col(ReleaseDate.case_id).in_(case_ids),
        col(ReleaseDate.kind) == ReleaseDateKind.CONFIRMED,
        col(ReleaseDate.superseded_at).is_(None),
    )
    return set((await session.execute(query.distinct())).scalars().all())


async def has_confirmed_release_date(session: AsyncSession, case_id: uuid.UUID) -> bool:
    return case_id in await _confirmed_release_dates(session, [case_id])


def _contact_day(case: Case, today: date) -> date:
    """The day a post-release contact must be a member on: the release day, or today once passed."""
    release = case.effective_release_date
    return release if release is not None and release > today else today


async def _post_release_contacts(session: AsyncSession, cases: Sequence[Case], today: date) -> set[uuid.UUID]:
    """The cases with a responsibility-group member marked as the contact after release whose
    membership covers the release day (or today, once that has passed)."""
    if not cases:
        return set()
    by_id = {case.id: case for case in cases}
    query = select(
        col(GroupMember.case_id), col(GroupMember.member_from), col(GroupMember.member_until)
    ).where(col(GroupMember.case_id).in_(by_id), col(GroupMember.post_release_contact).is_(True))
    found = set()
    for case_id, member_from, member_until in (await session.execute(query)).all():
        day = _contact_day(by_id[case_id], today)
        if member_from <= day and (member_until is None or member_until >= day):
            found.add(case_id)
    return found


async def _municipality_consent(session: AsyncSession, cases: Sequence[Case]) -> dict[uuid.UUID, bool | None]:
    """Per case: whether an active consent covers its responsible municipality; None when the
    municipality is not set or not in the local directory."""
    numbers = {case.responsible_kommunenummer for case in cases if case.responsible_kommunenummer}
    municipalities: dict[str, OrganizationRef] = {}
    if numbers:
        rows = (
            await session.execute(
                select(OrganizationRef).where(
                    col(OrganizationRef.type) == "municipality",
                    col(OrganizationRef.kommunenummer).in_(numbers),
                )
            )
        ).scalars()
        municipalities = {row.kommunenummer: row for row in rows if row.kommunenummer}
    result: dict[uuid.UUID, bool | None] = {}
    by_municipality: dict[str, list[uuid.UUID]] = {}
    for case in cases:
        number = case.responsible_kommunenummer
        if number is None or number not in municipalities:
            result[case.id] = None
        else:
            by_municipality.setdefault(number, []).append(case.id)
            result[case.id] = False
    for number, case_ids in by_municipality.items():
        covered = (
            await session.execute(
                select(col(Case.id)).where(
                    col(Case.id).in_(case_ids), consent_covers(Case.id, municipalities[number])
                )
            )
        ).scalars()
        for case_id in covered:
            result[case_id] = True
    return result


async def _visible_domains(
    session: AsyncSession, viewer: Viewer, case_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, frozenset[Domain]]:
    """Per case, the domains this viewer may read (one query for a whole page)."""
    if not viewer.consent_gated:
        return {case_id: frozenset(Domain) for case_id in case_ids}
    if viewer.organization is None or not case_ids:
        return {case_id: frozenset() for case_id in case_ids}
    domains = list(Domain)
    columns = [consent_covers(Case.id, viewer.organization, domain=d.value).label(d.value) for d in domains]
    rows = (await session.execute(select(col(Case.id), *columns).where(col(Case.id).in_(case_ids)))).all()
    return {
        row[0]: frozenset(d for d, allowed in zip(domains, row[1:], strict=True) if allowed) for row in rows
    }


async def assess(
    session: AsyncSession, *, viewer: Viewer, rows: Sequence[tuple[Case, Person]], days: int
) -> list[Readiness]:
    """The readiness of each case, in the order given."""
    today = local_today()
    horizon = today + timedelta(days=days)
    cases = [case for case, _ in rows]
    case_ids = [case.id for case in cases]
    domains: dict[uuid.UUID, list[CaseDomain]] = {case_id: [] for case_id in case_ids}
    if case_ids:
        for row in (
            await session.execute(select(CaseDomain).where(col(CaseDomain.case_id).in_(case_ids)))
        ).scalars():
            domains[row.case_id].append(row)
    visible = await _visible_domains(session, viewer, case_ids)
    confirmed = await _confirmed_release_dates(session, case_ids)
    contacts = await _post_release_contacts(session, cases, today)
    consent = await _municipality_consent(session, cases)

    report = []
    for case, person in rows:
        release = case.effective_release_date
        item = Readiness(
            case=case,
            person=person,
            days_until_release=(release - today).days if release is not None else None,
            in_window=release is not None and release <= horizon and case.status in PENDING_STATUSES,
        )
        allowed = visible.get(case.id, frozenset())
        for row in sorted(domains[case.id], key=lambda row: DOMAIN_ORDER[row.domain]):
            if row.domain not in allowed:
                item.withheld.append(row.domain)
            elif row.status not in SETTLED_STATUSES:
                item.unsettled.append(row)
        if item.unsettled:
            item.gaps.append(ReadinessGap.DOMAINS_NOT_SETTLED)
        if any(row.domain is Domain.HOUSING and row.hostel_only for row in domains[case.id]) and (
            Domain.HOUSING in allowed
        ):
            item.gaps.append(ReadinessGap.HOUSING_HOSTEL_ONLY)
        if case.id not in confirmed:
            item.gaps.append(ReadinessGap.NO_CONFIRMED_RELEASE_DATE)
        covered = consent.get(case.id)
        if covered is None:
            item.gaps.append(ReadinessGap.RESPONSIBLE_MUNICIPALITY_UNRESOLVED)
        elif not covered:
            item.gaps.append(ReadinessGap.NO_CONSENT_FOR_RESPONSIBLE_MUNICIPALITY)
        if case.id not in contacts:
            item.gaps.append(ReadinessGap.NO_POST_RELEASE_CONTACT)
        report.append(item)
    return report


async def case_readiness(
    session: AsyncSession, *, viewer: Viewer, case: Case, person: Person, days: int
) -> Readiness:
    return (await assess(session, viewer=viewer, rows=[(case, person)], days=days))[0]


async def readiness_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    days: int,
    unit_id: uuid.UUID | None = None,
    kommunenummer: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Readiness], str | None]:
    """The visible cases still inside whose release date is within ``days`` or already passed,
    soonest first, keyset-paginated on (effective_release_date, id)."""
    horizon = local_today() + timedelta(days=days)
    conditions: list[ColumnElement[bool]] = [
        case_visibility(viewer),
        col(Case.status).in_(PENDING_STATUSES),
        col(Case.effective_release_date).is_not(None),
        col(Case.effective_release_date) <= horizon,
    ]
    if unit_id is not None:
        conditions.append(col(Case.current_unit_id) == unit_id)
    if kommunenummer is not None:
        conditions.append(col(Case.responsible_kommunenummer) == kommunenummer)
    if cursor is not None:
        after_release, after_id = decode_cursor(cursor, iso_date, as_uuid)
        conditions.append(
            or_(
                col(Case.effective_release_date) > after_release,
                and_(col(Case.effective_release_date) == after_release, col(Case.id) > after_id),
            )
        )
    query = (
        select(Case, Person)
        .join(Person, col(Person.id) == col(Case.person_id))
        .where(*conditions)
        .order_by(col(Case.effective_release_date), col(Case.id))
        .limit(limit + 1)
    )
    rows = [(row[0], row[1]) for row in (await session.execute(query)).all()]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        assert last.effective_release_date is not None
        next_cursor = encode_cursor([last.effective_release_date.isoformat(), str(last.id)])
    page = rows[:limit]
    return await assess(session, viewer=viewer, rows=page, days=days), next_cursor
