"""The facts a notice carries and the detail view a notice links to. Reads only; never commits.

Who may see the detail view is decided by the same two rules that decide who is told: the notice
rules agreement-api resolves for the case (the recipient and its data-sharing profile), and the
consents case-api keeps (:func:`case_api.access.consent_conditions`). The view shows the
profile's facts for the profile's domains that consent covers, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import consent_conditions
from case_api.cases.models import Case
from case_api.consents.models import Consent, ConsentDomain
from case_api.domains.models import HEALTH_DOMAINS, CaseDomain, Domain, DomainAction
from case_api.domains.service import DOMAIN_ORDER
from case_api.group.models import HEALTH_ROLES, GroupMember, GroupRole
from case_api.notices.schemas import (
    DOMAIN_FIELDS,
    ActionDetail,
    Contact,
    DomainDetail,
    GroupContact,
    NoticeDetail,
    NoticeFacts,
    SharingField,
    Unit,
)
from case_api.organizations import service as organizations
from case_api.organizations.models import OrganizationRef
from case_api.release_dates import service as release_dates
from case_api.release_dates.models import ReleaseDate, ReleaseDateCertainty, ReleaseDateKind
from shared.clock import oslo_today
from shared.contracts.answers import Resolution
from shared.contracts.recipients import is_told, recipient_kind

# --- notice facts -------------------------------------------------------------------------------


def _contact(member: GroupMember) -> Contact:
    return Contact(
        name=member.person_name,
        phone=member.contact_phone,
        email=member.contact_email,
        organization_id=member.organization_id,
    )


async def notice_facts(session: AsyncSession, case: Case) -> NoticeFacts:
    """One case's notice facts: :func:`notice_facts_many` for one id."""
    [facts] = await notice_facts_many(session, [case.id])
    return facts


async def notice_facts_many(session: AsyncSession, case_ids: Iterable[uuid.UUID]) -> list[NoticeFacts]:
    """The notice facts of those of ``case_ids`` that exist, in the order asked; unknown ids are
    left out. Three queries whatever the number of cases (the cases, their current effective-kind
    dates, their first active coordinators), so notify-worker can ask for a round's cases at once
    instead of one request per case."""
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return []
    query = select(col(Case.id), col(Case.effective_release_date)).where(col(Case.id).in_(ids))
    dated: dict[uuid.UUID, dt.date | None] = {
        row.id: row.effective_release_date for row in (await session.execute(query)).all()
    }
    if not dated:
        return []
    certainties: dict[uuid.UUID, dict[ReleaseDateKind, ReleaseDateCertainty]] = {}
    with_date = [case_id for case_id, released in dated.items() if released is not None]
    if with_date:
        for case_id, kind, recorded in (
            await session.execute(
                select(col(ReleaseDate.case_id), col(ReleaseDate.kind), col(ReleaseDate.certainty)).where(
                    col(ReleaseDate.case_id).in_(with_date),
                    col(ReleaseDate.superseded_at).is_(None),
                    col(ReleaseDate.kind).in_(release_dates.EFFECTIVE_KINDS),
                )
            )
        ).all():
            certainties.setdefault(case_id, {})[kind] = recorded
    today = oslo_today()
    coordinators: dict[uuid.UUID, GroupMember] = {}
    # Every active coordinator, first added first; the first per case is kept (a case has one or two, and this runs on SQLite too, so no DISTINCT ON).
    for member in (
        await session.execute(
            select(GroupMember)
            .where(
                col(GroupMember.case_id).in_(list(dated)),
                col(GroupMember.role) == GroupRole.COORDINATOR,
                or_(col(GroupMember.member_until).is_(None), col(GroupMember.member_until) >= today),
            )
            .order_by(col(GroupMember.added_at), col(GroupMember.id))
        )
    ).scalars():
        coordinators.setdefault(member.case_id, member)
    answers: list[NoticeFacts] = []
    for case_id in ids:
        if case_id not in dated:
            continue
        released = dated[case_id]
        current = certainties.get(case_id, {})
        certainty: ReleaseDateCertainty | None = None
        if released is not None:
            certainty = next(
                (current[kind] for kind in release_dates.EFFECTIVE_KINDS if kind in current), None
            )
        coordinator = coordinators.get(case_id)
        answers.append(
            NoticeFacts(
                case_id=case_id,
                effective_release_date=released,
                release_date_certainty=certainty,
                coordinator=_contact(coordinator) if coordinator else None,
            )
        )
    return answers


# --- who is a recipient, and of what ------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What the recipient's rules release: the union over every rule that names it."""

    domains: frozenset[Domain]
    fields: frozenset[SharingField]


def grant_for(resolution: Resolution, case: Case, organization_id: uuid.UUID) -> Grant | None:
    """The profile the rules give ``organization_id`` for this case; None when it is no recipient.

    Several rules (from several agreements) may name one recipient: each releases what its profile
    says, so the recipient sees the union. A recipient that is not told about this case (a
    municipality, for a release abroad or a deportation) gets nothing, by the rule notify-worker
    applies too (:mod:`shared.contracts.recipients`). Unknown domain or field names are ignored."""
    if resolution.source == "none":
        return None
    rules = [
        rule
        for rule in resolution.rules
        if rule.recipient_organization_id == organization_id
        and is_told(
            recipient_kind(
                rule.recipient_organization_type, organization_id, nav_office_id=case.nav_office_id
            ),
            case.release_destination.value,
        )
    ]
    if not rules:
        return None
    domains = {name for rule in rules for name in rule.data_sharing_profile.domains}
    fields = {name for rule in rules for name in rule.data_sharing_profile.fields}
    return Grant(
        domains=frozenset(Domain(name) for name in domains if name in Domain._value2member_map_),
        fields=frozenset(SharingField(name) for name in fields if name in SharingField._value2member_map_),
    )


async def covered_domains(
    session: AsyncSession, case: Case, organization: OrganizationRef, domains: Iterable[Domain]
) -> list[Domain]:
    """Those of ``domains`` an active consent or legal basis covers for ``organization``, in order."""
    wanted = [domain.value for domain in domains]
    if not wanted:
        return []
    query = (
        select(col(ConsentDomain.domain))
        .distinct()
        .join(Consent, col(Consent.id) == col(ConsentDomain.consent_id))
        .where(*consent_conditions(case.id, organization), col(ConsentDomain.domain).in_(wanted))
    )
    found = {Domain(value) for value in (await session.execute(query)).scalars()}
    return sorted(found, key=DOMAIN_ORDER.__getitem__)


# --- the detail view ----------------------------------------------------------------------------


async def _domain_details(
    session: AsyncSession, case: Case, domains: list[Domain], fields: frozenset[SharingField]
) -> list[DomainDetail]:
    rows = (
        (
            await session.execute(
                select(CaseDomain).where(
                    col(CaseDomain.case_id) == case.id, col(CaseDomain.domain).in_([d.value for d in domains])
                )
            )
        )
        .scalars()
        .all()
    )
    actions: dict[uuid.UUID, list[DomainAction]] = {row.id: [] for row in rows}
    if SharingField.DOMAIN_ACTIONS in fields and rows:
        for action in (
            await session.execute(
                select(DomainAction)
                .where(col(DomainAction.case_domain_id).in_(list(actions)))
                .order_by(col(DomainAction.created_at), col(DomainAction.id))
            )
        ).scalars():
            actions[action.case_domain_id].append(action)
    details: list[DomainDetail] = []
    for row in sorted(rows, key=lambda row: DOMAIN_ORDER[row.domain]):
        detail = DomainDetail(domain=row.domain)
        if SharingField.DOMAIN_STATUS in fields:
            detail.status = row.status
        if SharingField.DOMAIN_NEEDS in fields:
            detail.needs = row.needs
        if SharingField.DOMAIN_ACTIONS in fields:
            detail.actions = [
                ActionDetail(
                    description=action.description,
                    responsible_organization_id=action.responsible_organization_id,
                    contact_name=action.contact_name,
                    contact_phone=action.contact_phone,
                    contact_email=action.contact_email,
                    due_date=action.due_date,
                    done=action.done_at is not None,
                )
                for action in actions[row.id]
            ]
        details.append(detail)
    return details


async def _group_contacts(session: AsyncSession, case: Case, domains: list[Domain]) -> list[GroupContact]:
    """Active post-release contacts who act for an organization. The inmate and private persons
    (family, friends) are never listed, and members in a health role only when a health domain is
    shared, as in the group view of consent-gated roles."""
    health_visible = bool(set(domains) & HEALTH_DOMAINS)
    today = oslo_today()
    members = (
        (
            await session.execute(
                select(GroupMember)
                .where(
                    col(GroupMember.case_id) == case.id,
                    col(GroupMember.post_release_contact).is_(True),
                    col(GroupMember.organization_id).is_not(None),
                    col(GroupMember.role) != GroupRole.INMATE,
                    col(GroupMember.member_from) <= today,
                    or_(col(GroupMember.member_until).is_(None), col(GroupMember.member_until) >= today),
                )
                .order_by(col(GroupMember.member_from), col(GroupMember.added_at), col(GroupMember.id))
            )
        )
        .scalars()
        .all()
    )
    return [
        GroupContact(
            name=member.person_name,
            role=member.role,
            organization_id=member.organization_id,
            phone=member.contact_phone,
            email=member.contact_email,
        )
        for member in members
        if member.organization_id is not None and (health_visible or member.role not in HEALTH_ROLES)
    ]


async def notice_detail(
    session: AsyncSession, case: Case, organization_id: uuid.UUID, grant: Grant, domains: list[Domain]
) -> NoticeDetail:
    """The case as the recipient may see it: only ``grant.fields``, for ``domains`` (the granted
    domains that consent covers). Fields the profile does not release are left unset, so the
    answer leaves them out instead of sending null."""
    fields = grant.fields
    detail = NoticeDetail(case_id=case.id, organization_id=organization_id)
    if SharingField.RELEASE_DATE in fields:
        detail.release_date = case.effective_release_date
    if fields & {SharingField.RELEASE_DATE_CERTAINTY, SharingField.COORDINATOR_CONTACT}:
        facts = await notice_facts(session, case)
        if SharingField.RELEASE_DATE_CERTAINTY in fields:
            detail.release_date_certainty = facts.release_date_certainty
        if SharingField.COORDINATOR_CONTACT in fields:
            detail.coordinator = facts.coordinator
    if SharingField.UNIT in fields:
        unit = await organizations.get(session, case.current_unit_id)
        detail.unit = Unit(id=case.current_unit_id, name=unit.name if unit else None)
    if fields & DOMAIN_FIELDS:
        detail.domains = await _domain_details(session, case, domains, fields)
    if SharingField.GROUP_CONTACTS in fields:
        detail.group_contacts = await _group_contacts(session, case, domains)
    return detail
