"""Who may see and change which cases.

| role          | token's organization (`org`)       | sees                                               | may change |
|---------------|------------------------------------|----------------------------------------------------|------------|
| admin         | none needed                        | every case                                         | yes        |
| auditor       | none needed                        | every case, timelines and access logs              | no         |
| coordinator   | a region                           | cases whose unit lies in that region               | yes        |
| prison_staff  | a unit                             | cases in that unit                                 | yes        |
| municipality  | any organization case-api knows    | cases it is responsible for, and only with consent | no         |
| nav           | any organization case-api knows    | cases assigned to it, and only with consent        | no         |
| health        | any organization case-api knows    | cases whose consent names it (or its type)         | no         |
| service       | none needed                        | only the disclosure question and notice facts      | no         |
| others        | -                                  | nothing here                                       | no         |

A unit is a prison, a probation office or a transitional housing unit. A role that acts for an
organization (:data:`ACTS_FOR`) with a token that names none, one case-api does not know, or one of
another type answers 403 saying what it needs, rather than an empty list.

A case outside the caller's scope answers 404, so its existence does not leak. A role that may
never do something answers 403. Consent-gated roles see only the domains their consent covers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.cases.models import Case
from case_api.consents.models import Consent, ConsentDomain, ConsentRecipient
from case_api.domains.models import Domain
from case_api.organizations import service as organizations
from case_api.organizations.models import OrganizationRef
from case_api.persons.crypto import IdentityVault
from case_api.persons.models import Person
from shared.auth import Principal, PrincipalDep, Role
from shared.db import SessionDep, utcnow
from shared.directory import UNIT_TYPES, OrganizationType
from shared.errors import Forbidden, NotFound

READERS = frozenset(
    {Role.ADMIN, Role.AUDITOR, Role.COORDINATOR, Role.PRISON_STAFF, Role.MUNICIPALITY, Role.NAV, Role.HEALTH}
)
WRITERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.PRISON_STAFF})
CONSENT_GATED = frozenset({Role.MUNICIPALITY, Role.NAV, Role.HEALTH})
AUDIT_READERS = frozenset({Role.ADMIN, Role.AUDITOR, Role.COORDINATOR})


@dataclass(frozen=True)
class ActsFor:
    """The organization a role's token must name in its ``org`` claim."""

    types: frozenset[str] | None  # None: any organization case-api knows
    description: str  # for the 403's detail: "a Correctional Service region"


_UNIT = "a Correctional Service unit (prison, probation office or transitional housing)"
# A recipient organization's systems may use any of the recipient roles (as notify-worker's receipts
# and the notice detail view take them), so those roles need an organization of no particular type.
_RECIPIENT = ActsFor(None, "an organization in the directory")
# The roles whose scope comes from their organization, and what that organization must be.
ACTS_FOR: dict[Role, ActsFor] = {
    Role.COORDINATOR: ActsFor(frozenset({OrganizationType.REGION}), "a Correctional Service region"),
    Role.PRISON_STAFF: ActsFor(UNIT_TYPES, _UNIT),
    Role.SERVICE_MARKET: ActsFor(UNIT_TYPES, _UNIT),
    Role.MUNICIPALITY: _RECIPIENT,
    Role.NAV: _RECIPIENT,
    Role.HEALTH: _RECIPIENT,
}


class CaseNotFound(NotFound):
    title = "Case not found"


class ActingOrganizationRequired(Forbidden):
    """The token's organization cannot be the one its role acts for (``reason`` says why)."""

    title = "Token's organization does not fit its role"


@dataclass(frozen=True)
class Viewer:
    """The caller with the organization facts the rules need."""

    principal: Principal
    organization: OrganizationRef | None
    region_id: uuid.UUID | None
    # The app's cache of organization facts; a viewer made outside a request gets an empty one.
    organization_facts: organizations.FactsCache = field(default_factory=organizations.FactsCache)

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def subject(self) -> str:
        return self.principal.subject

    @property
    def organization_id(self) -> uuid.UUID | None:
        return self.organization.id if self.organization else None

    @property
    def can_write(self) -> bool:
        return self.role in WRITERS

    @property
    def consent_gated(self) -> bool:
        return self.role in CONSENT_GATED


async def get_viewer(request: Request, principal: PrincipalDep, session: SessionDep) -> Viewer:
    """The caller and its organization's facts (cached per organization for a few seconds: see
    :mod:`case_api.organizations.service`). Each request gets its own transient organization. A
    subject that holds an identity number is replaced by its pseudonym here."""
    cache: organizations.FactsCache = request.app.state.organization_facts
    # Every row case-api writes names the caller by this subject (timeline, access log, created_by).
    vault: IdentityVault = request.app.state.identity_vault
    subject = vault.subject_pseudonym(principal.subject)
    if subject != principal.subject:
        principal = principal.model_copy(update={"subject": subject})
    facts = None
    if principal.organization_id:
        try:
            organization_id = uuid.UUID(principal.organization_id)
        except ValueError:
            organization_id = None
        if organization_id is not None:
            facts = await cache.facts(session, organization_id)
    if facts is None:
        return Viewer(principal=principal, organization=None, region_id=None, organization_facts=cache)
    return Viewer(
        principal=principal, organization=facts.ref(), region_id=facts.region_id, organization_facts=cache
    )


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


def require_acting_organization(viewer: Viewer) -> None:
    """403 unless the token names the kind of organization its role acts for (:data:`ACTS_FOR`):
    a wrong token is told so instead of seeing nothing."""
    needed = ACTS_FOR.get(viewer.role)
    if needed is None:
        return
    role = viewer.role.value
    types: dict[str, Any] = {"required_organization_types": sorted(needed.types)} if needed.types else {}
    claimed = viewer.principal.organization_id
    if not claimed:
        raise ActingOrganizationRequired(
            f"A {role} token must name {needed.description} in its org claim; this one names none",
            reason="no_organization",
            **types,
        )
    organization = viewer.organization
    if organization is None:
        try:
            named = f"organization {uuid.UUID(claimed)}"
        except ValueError:
            named = "the org claim, which is no organization id,"
        raise ActingOrganizationRequired(
            f"A {role} acts for {needed.description}, but {named} is not in case-api's copy of the "
            "directory (agreement-api registers organizations)",
            reason="unknown_organization",
            **types,
        )
    if needed.types is not None and organization.type not in needed.types:
        raise ActingOrganizationRequired(
            f"A {role} acts for {needed.description}, but {organization.name} ({organization.id}) is a "
            f"{organization.type}",
            reason="wrong_organization_type",
            **types,
        )


def require_reader(viewer: Viewer) -> None:
    if viewer.role not in READERS:
        raise Forbidden(f"Role {viewer.role.value!r} has no access to cases")
    require_acting_organization(viewer)


def require_writer(viewer: Viewer) -> None:
    if viewer.role not in WRITERS:
        raise Forbidden(f"Role {viewer.role.value!r} may not change cases")
    require_acting_organization(viewer)


def consent_conditions(
    case_id: object, organization: OrganizationRef, *, at: datetime | None = None, domain: str | None = None
) -> list[ColumnElement[bool]]:
    """Conditions on ``Consent`` for one that is active at ``at`` (default now), names this
    organization or its type, and (when given) covers ``domain``. The one rule for disclosure."""
    moment = at or utcnow()
    conditions: list[ColumnElement[bool]] = [
        col(Consent.case_id) == case_id,
        col(Consent.given_at) <= moment,
        or_(col(Consent.withdrawn_at).is_(None), col(Consent.withdrawn_at) > moment),
        exists(
            select(col(ConsentRecipient.id)).where(
                col(ConsentRecipient.consent_id) == col(Consent.id),
                or_(
                    col(ConsentRecipient.organization_id) == organization.id,
                    col(ConsentRecipient.organization_type) == organization.type,
                ),
            )
        ),
    ]
    if domain is not None:
        conditions.append(
            exists(
                select(col(ConsentDomain.id)).where(
                    col(ConsentDomain.consent_id) == col(Consent.id), col(ConsentDomain.domain) == domain
                )
            )
        )
    return conditions


def consent_covers(
    case_id: object, organization: OrganizationRef, *, at: datetime | None = None, domain: str | None = None
) -> ColumnElement[bool]:
    """SQL: an active consent (or legal basis) on the case names this organization or its type."""
    return exists(
        select(col(Consent.id)).where(*consent_conditions(case_id, organization, at=at, domain=domain))
    )


def case_visibility(viewer: Viewer) -> ColumnElement[bool]:
    """SQL condition on ``Case`` for the cases this viewer may see."""
    role, org = viewer.role, viewer.organization
    if role in (Role.ADMIN, Role.AUDITOR):
        return true()
    if org is None:
        return false()
    if role is Role.COORDINATOR:
        return col(Case.region_id) == viewer.region_id if viewer.region_id else false()
    if role is Role.PRISON_STAFF:
        return col(Case.current_unit_id) == org.id if org.type in UNIT_TYPES else false()
    if role is Role.MUNICIPALITY:
        if not org.kommunenummer:
            return false()
        return and_(col(Case.responsible_kommunenummer) == org.kommunenummer, consent_covers(Case.id, org))
    if role is Role.NAV:
        return and_(col(Case.nav_office_id) == org.id, consent_covers(Case.id, org))
    if role is Role.HEALTH:
        return consent_covers(Case.id, org)
    return false()


async def load_case(
    session: AsyncSession, viewer: Viewer, case_id: uuid.UUID, *, for_update: bool = False
) -> Case:
    """The case if the viewer may see it; 404 otherwise (existence is not revealed)."""
    require_reader(viewer)
    query = select(Case).where(col(Case.id) == case_id, case_visibility(viewer))
    if for_update:
        query = query.with_for_update()
    case = (await session.execute(query)).scalars().first()
    if case is None:
        raise CaseNotFound(f"No case {case_id} that you may see")
    return case


async def load_case_with_person(
    session: AsyncSession, viewer: Viewer, case_id: uuid.UUID
) -> tuple[Case, Person]:
    """As :func:`load_case`, with the case's person in the same statement (for reads that show it)."""
    require_reader(viewer)
    query = (
        select(Case, Person)
        .join(Person, col(Person.id) == col(Case.person_id))
        .where(col(Case.id) == case_id, case_visibility(viewer))
    )
    row = (await session.execute(query)).first()
    if row is None:
        raise CaseNotFound(f"No case {case_id} that you may see")
    return row[0], row[1]


async def load_case_unscoped(session: AsyncSession, case_id: uuid.UUID) -> Case:
    """The case regardless of the caller's scope: only for the questions the ``service`` role asks
    (disclosure, notice facts), whose answers reveal no personal data of the inmate. The notice
    detail view decides by the notice rules and consent instead (``case_api.notices``). Every other
    read goes through :func:`load_case`."""
    case = await session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(f"No case {case_id}")
    return case


async def load_case_for_change(session: AsyncSession, viewer: Viewer, case_id: uuid.UUID) -> Case:
    require_writer(viewer)
    return await load_case(session, viewer, case_id)


async def visible_domains(session: AsyncSession, viewer: Viewer, case: Case) -> frozenset[Domain]:
    """The domains of ``case`` this viewer may read."""
    if not viewer.consent_gated:
        return frozenset(Domain)
    organization = viewer.organization
    assert organization is not None
    query = (
        select(col(ConsentDomain.domain))
        .distinct()
        .join(Consent, col(Consent.id) == col(ConsentDomain.consent_id))
        .where(
            *consent_conditions(case.id, organization),
            col(ConsentDomain.domain).in_([d.value for d in Domain]),
        )
    )
    return frozenset(Domain(value) for value in (await session.execute(query)).scalars())


def access_basis(viewer: Viewer) -> str:
    """The basis written to the access log for a read by this viewer."""
    if viewer.consent_gated:
        return "consent"
    if viewer.role is Role.AUDITOR:
        return "audit"
    return f"role:{viewer.role.value}"
