"""Resolution (who is told what for a case) and coverage (where agreements are missing)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.agreements import service as agreements
from agreement_api.agreements.models import (
    Agreement,
    AgreementParty,
    AgreementStatus,
    CaseRef,
    ReintegrationDomain,
)
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.resolution.defaults import DEFAULT_RULES
from agreement_api.resolution.errors import UnknownOrganization
from agreement_api.resolution.schemas import (
    CoverageRow,
    Resolution,
    ResolvedAgreement,
    ResolvedEndpoint,
    ResolvedRule,
)
from shared.clock import oslo_today
from shared.contracts import events as contracts
from shared.municipalities import municipality_name

CLOSED = "closed"


def today() -> date:
    return oslo_today()


def _active_on(day: date) -> Any:
    return (
        (col(Agreement.status) == AgreementStatus.ACTIVE)
        & (col(Agreement.valid_from) <= day)
        & or_(col(Agreement.valid_to).is_(None), col(Agreement.valid_to) >= day)
    )


def _has_party_in(organization_ids: Iterable[uuid.UUID]) -> Any:
    return exists().where(
        col(AgreementParty.agreement_id) == col(Agreement.id),
        col(AgreementParty.organization_id).in_(list(organization_ids)),
    )


async def _municipality(session: AsyncSession, kommunenummer: str | None) -> Organization | None:
    if kommunenummer is None:
        return None
    return (
        await session.execute(
            select(Organization).where(
                col(Organization.type) == OrganizationType.MUNICIPALITY,
                col(Organization.kommunenummer) == kommunenummer,
            )
        )
    ).scalar_one_or_none()


async def _organization(
    session: AsyncSession, organization_id: uuid.UUID, *, field: str, type: OrganizationType | None = None
) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None or (type is not None and organization.type is not type):
        kind = f"{type.value} " if type is not None else ""
        raise UnknownOrganization(
            f"No {kind}organization with id {organization_id} in the directory", field=field
        )
    return organization


def _resolve_rule(
    rule: Mapping[str, Any],
    *,
    recipients: Mapping[OrganizationType, uuid.UUID],
    requested: set[str],
    agreement_id: uuid.UUID | None,
    rule_id: uuid.UUID | None,
) -> ResolvedRule | None:
    recipient_type = rule.get("recipient_organization_type")
    recipient_id = rule.get("recipient_organization_id")
    if recipient_id is None:
        recipient_id = recipients.get(OrganizationType(recipient_type)) if recipient_type else None
    if recipient_id is None:
        return None  # e.g. a rule for the NAV office when the case has none
    profile = dict(rule["data_sharing_profile"])
    profile["domains"] = [domain for domain in profile.get("domains", []) if domain in requested]
    return ResolvedRule(
        agreement_id=agreement_id,
        rule_id=rule_id,
        recipient_organization_id=recipient_id,
        recipient_organization_type=recipient_type,
        milestones=rule["milestones"],
        event_types=rule["event_types"],
        receipt_deadline_days=rule["receipt_deadline_days"],
        escalation=rule.get("escalation"),
        data_sharing_profile=profile,
    )


async def resolve(
    session: AsyncSession,
    *,
    unit_id: uuid.UUID,
    kommunenummer: str | None,
    nav_office_id: uuid.UUID | None,
    domains: list[ReintegrationDomain],
    on: date | None = None,
) -> Resolution:
    """The notice rules for a case in ``unit_id`` whose responsible municipality is
    ``kommunenummer`` (and NAV office ``nav_office_id``), for the requested domains (none: all).

    Applicable agreements are active and valid on the day, have the unit or its region as one
    party and the municipality organization or the NAV office as another, and cover at least one
    requested domain. Without one the default rule set applies; without a municipality
    organization in the directory and without a NAV office nobody can be resolved."""
    day = on or today()
    unit = await _organization(session, unit_id, field="unit_id")
    nav_office = (
        await _organization(session, nav_office_id, field="nav_office_id", type=OrganizationType.NAV_OFFICE)
        if nav_office_id is not None
        else None
    )
    municipality = await _municipality(session, kommunenummer)
    if municipality is None and nav_office is None:
        where = f"kommunenummer {kommunenummer}" if kommunenummer else "no kommunenummer"
        return Resolution(
            source="none",
            explanation=(
                f"There is no municipality organization in the directory for {where} and no NAV office "
                "was given, so no recipient can be resolved; register the municipality or pass nav_office_id."
            ),
        )
    requested = {domain.value for domain in domains} or {domain.value for domain in ReintegrationDomain}
    recipients: dict[OrganizationType, uuid.UUID] = {}
    if municipality is not None:
        recipients[OrganizationType.MUNICIPALITY] = municipality.id
    if nav_office is not None:
        recipients[OrganizationType.NAV_OFFICE] = nav_office.id

    unit_side = {unit.id} | ({unit.parent_id} if unit.parent_id else set())
    candidates = (
        (
            await session.execute(
                select(Agreement)
                .where(_active_on(day), _has_party_in(unit_side), _has_party_in(recipients.values()))
                .order_by(col(Agreement.valid_from), col(Agreement.id))
            )
        )
        .scalars()
        .all()
    )
    applicable = [agreement for agreement in candidates if requested & set(agreement.domains)]

    resolved_agreements: list[ResolvedAgreement] = []
    rules: list[ResolvedRule] = []
    for agreement in applicable:
        parties = await agreements.parties_of(session, agreement.id)
        resolved_agreements.append(
            ResolvedAgreement(
                id=agreement.id,
                title=agreement.title,
                version=agreement.current_version,
                level=agreement.level,
                parties=[party.organization_id for party in parties],
            )
        )
        for rule in await agreements.rules_of(session, agreement.id):
            resolved = _resolve_rule(
                rule.model_dump(),
                recipients=recipients,
                requested=requested,
                agreement_id=agreement.id,
                rule_id=rule.id,
            )
            if resolved is not None:
                rules.append(resolved)

    source: Any = "agreement"
    explanation = None
    if not applicable:
        source = "default"
        explanation = (
            "No active agreement covers this unit, recipient and domains; the default rule set applies."
        )
        for default in DEFAULT_RULES:
            resolved = _resolve_rule(
                default, recipients=recipients, requested=requested, agreement_id=None, rule_id=None
            )
            if resolved is not None:
                rules.append(resolved)

    rules = await _with_recipient_types(session, rules)
    organization_ids = sorted({rule.recipient_organization_id for rule in rules}, key=str)
    return Resolution(
        source=source,
        explanation=explanation,
        agreements=resolved_agreements,
        rules=rules,
        endpoints=await active_endpoints(session, organization_ids),
    )


async def _with_recipient_types(session: AsyncSession, rules: list[ResolvedRule]) -> list[ResolvedRule]:
    """Every rule with its recipient's directory type, also when the rule named the recipient by id,
    so that a municipality named by id is classified as a municipality."""
    named_by_id = {
        rule.recipient_organization_id for rule in rules if rule.recipient_organization_type is None
    }
    if not named_by_id:
        return rules
    found = await session.execute(
        select(col(Organization.id), col(Organization.type)).where(col(Organization.id).in_(named_by_id))
    )
    types = {row.id: row.type for row in found}
    return [
        rule
        if rule.recipient_organization_type is not None
        else rule.model_copy(
            update={"recipient_organization_type": types.get(rule.recipient_organization_id)}
        )
        for rule in rules
    ]


async def active_endpoints(
    session: AsyncSession, organization_ids: list[uuid.UUID]
) -> list[ResolvedEndpoint]:
    """The active webhook endpoints of these organizations ([] where webhooks are not installed)."""
    try:
        from agreement_api.webhooks.models import WebhookEndpoint
    except ImportError:  # pragma: no cover - only before the webhooks package exists
        return []
    if not organization_ids:
        return []
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.organization_id).in_(organization_ids),
            col(WebhookEndpoint.state) == "active",
        )
        .order_by(col(WebhookEndpoint.organization_id), col(WebhookEndpoint.created_at))
    )
    return [
        ResolvedEndpoint(
            id=endpoint.id,
            organization_id=endpoint.organization_id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
        )
        for endpoint in rows.scalars()
    ]


# --- coverage ----------------------------------------------------------------------------------


async def record_case_event(
    session: AsyncSession, *, facts: contracts.CaseFacts, occurred_at: datetime
) -> None:
    """Upsert the case read model from a ``case.*`` event; an older event never overwrites a newer one.
    A closed case stays as a row marked closed, so a late, older event cannot reopen it."""
    ref = await session.get(CaseRef, facts.case_id)
    if ref is not None and ref.updated_at > occurred_at:
        return
    if ref is None:
        ref = CaseRef(case_id=facts.case_id, status=facts.status, updated_at=occurred_at)
        session.add(ref)
    ref.status = facts.status
    ref.responsible_kommunenummer = facts.responsible_kommunenummer
    ref.updated_at = occurred_at
    await session.flush()


async def coverage(session: AsyncSession, *, on: date | None = None) -> list[CoverageRow]:
    """Municipalities with open cases and no active agreement, most cases first."""
    day = on or today()
    counts = await session.execute(
        select(col(CaseRef.responsible_kommunenummer), func.count())
        .where(col(CaseRef.responsible_kommunenummer).is_not(None), col(CaseRef.status) != CLOSED)
        .group_by(col(CaseRef.responsible_kommunenummer))
    )
    covered = set(
        (
            await session.execute(
                select(col(Organization.kommunenummer))
                .join(AgreementParty, col(AgreementParty.organization_id) == col(Organization.id))
                .join(Agreement, col(Agreement.id) == col(AgreementParty.agreement_id))
                .where(
                    col(Organization.type).in_([OrganizationType.MUNICIPALITY, OrganizationType.DISTRICT]),
                    col(Organization.kommunenummer).is_not(None),
                    _active_on(day),
                )
            )
        ).scalars()
    )
    rows = [
        CoverageRow(kommunenummer=number, name=municipality_name(number), open_cases=count)
        for number, count in counts.all()
        if number is not None and number not in covered
    ]
    return sorted(rows, key=lambda row: (-row.open_cases, row.kommunenummer))
