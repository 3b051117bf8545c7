"""Consent: recording it, withdrawing it, and the disclosure decision that rests on it.

Flush, never commit. A withdrawal takes effect at once (``withdrawn_at`` is the moment it is
recorded); the decision in :func:`may_receive` follows :func:`case_api.access.consent_covers`:
a consent covers an organization for a domain at a moment when it was given at or before that
moment, was not withdrawn at or before it, names the organization or its type, and names the domain.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case as when
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import Viewer, consent_conditions
from case_api.audit import service as audit
from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus
from case_api.consents.errors import ConsentAlreadyWithdrawn, ConsentNotFound, InvalidConsent
from case_api.consents.models import Consent, ConsentBasis, ConsentDomain, ConsentRecipient
from case_api.consents.schemas import ConsentCreate, ConsentRead, Decision, OrganizationType
from case_api.domains.models import Domain
from case_api.organizations.models import OrganizationRef
from case_api.organizations.service import UnknownOrganization
from shared.contracts import events as contracts
from shared.db import utcnow

_DOMAIN_ORDER = {domain: index for index, domain in enumerate(Domain)}
_TYPE_ORDER = {kind.value: index for index, kind in enumerate(OrganizationType)}


def is_active(consent: Consent, at: datetime) -> bool:
    """In force at ``at``: given at or before it and not withdrawn at or before it."""
    return consent.given_at <= at and (consent.withdrawn_at is None or consent.withdrawn_at > at)


def _scope(read: ConsentRead) -> dict[str, Any]:
    """What a consent covers, as event data: references only, never names."""
    return {
        "consent_id": str(read.id),
        "basis": read.basis.value,
        "organization_ids": [str(organization_id) for organization_id in read.organization_ids],
        "organization_types": list(read.organization_types),
        "domains": [domain.value for domain in read.domains],
        "given_at": read.given_at.isoformat(),
    }


async def _reads(session: AsyncSession, consents: Iterable[Consent]) -> list[ConsentRead]:
    """The consents with their recipients and domains, in two queries whatever their number."""
    consents = list(consents)
    ids = [consent.id for consent in consents]
    organization_ids: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    organization_types: dict[uuid.UUID, list[str]] = defaultdict(list)
    domains: dict[uuid.UUID, list[Domain]] = defaultdict(list)
    if ids:
        recipients = (
            (await session.execute(select(ConsentRecipient).where(col(ConsentRecipient.consent_id).in_(ids))))
            .scalars()
            .all()
        )
        for recipient in recipients:
            if recipient.organization_id is not None:
                organization_ids[recipient.consent_id].append(recipient.organization_id)
            if recipient.organization_type is not None:
                organization_types[recipient.consent_id].append(recipient.organization_type)
        rows = (
            await session.execute(
                select(col(ConsentDomain.consent_id), col(ConsentDomain.domain)).where(
                    col(ConsentDomain.consent_id).in_(ids)
                )
            )
        ).all()
        for consent_id, value in rows:
            if value in Domain._value2member_map_:
                domains[consent_id].append(Domain(value))
    now = utcnow()
    return [
        ConsentRead(
            id=consent.id,
            case_id=consent.case_id,
            basis=consent.basis,
            legal_reference=consent.legal_reference,
            organization_ids=sorted(organization_ids[consent.id], key=str),
            organization_types=sorted(
                organization_types[consent.id],
                key=lambda kind: (_TYPE_ORDER.get(kind, len(_TYPE_ORDER)), kind),
            ),
            domains=sorted(domains[consent.id], key=_DOMAIN_ORDER.__getitem__),
            given_at=consent.given_at,
            withdrawn_at=consent.withdrawn_at,
            withdrawal_reason=consent.withdrawal_reason,
            note=consent.note,
            recorded_by=consent.recorded_by,
            recorded_at=consent.recorded_at,
            withdrawn_recorded_by=consent.withdrawn_recorded_by,
            active=is_active(consent, now),
        )
        for consent in consents
    ]


async def _check_organizations(session: AsyncSession, organization_ids: list[uuid.UUID]) -> None:
    """Every named organization must be in the directory; 422 naming the first unknown one."""
    if not organization_ids:
        return
    known = set(
        (
            await session.execute(
                select(col(OrganizationRef.id)).where(col(OrganizationRef.id).in_(set(organization_ids)))
            )
        )
        .scalars()
        .all()
    )
    for index, organization_id in enumerate(organization_ids):
        if organization_id not in known:
            raise UnknownOrganization(
                f"No organization {organization_id} in the directory", field=f"organization_ids[{index}]"
            )


async def give(session: AsyncSession, *, viewer: Viewer, case: Case, data: ConsentCreate) -> ConsentRead:
    """Record a consent (or a legal basis) for the case. The caller checked that it may change the case."""
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot get a new consent")
    reference = data.legal_reference.strip() if data.legal_reference is not None else None
    if data.basis is ConsentBasis.LEGAL_BASIS and not reference:
        raise InvalidConsent(
            "A legal basis needs legal_reference: the provision that allows the disclosure",
            field="legal_reference",
        )
    if data.basis is ConsentBasis.CONSENT and reference is not None:
        raise InvalidConsent(
            "legal_reference belongs to basis 'legal_basis' only; put remarks on a consent in note",
            field="legal_reference",
        )
    await _check_organizations(session, data.organization_ids)
    if not data.organization_ids and not data.organization_types:
        raise InvalidConsent(
            "Name at least one recipient in organization_ids or organization_types", field="organization_ids"
        )
    now = utcnow()
    given_at = (data.given_at or now).astimezone(UTC)
    if given_at > now:
        raise InvalidConsent("A consent cannot be given in the future", field="given_at")
    consent = Consent(
        case_id=case.id,
        basis=data.basis,
        legal_reference=reference or None,
        given_at=given_at,
        note=data.note,
        recorded_by=viewer.subject,
        recorded_at=now,
    )
    session.add(consent)
    await session.flush()
    organization_ids = list(dict.fromkeys(data.organization_ids))
    session.add_all(
        ConsentRecipient(consent_id=consent.id, organization_id=organization_id)
        for organization_id in organization_ids
    )
    session.add_all(
        ConsentRecipient(consent_id=consent.id, organization_type=kind.value)
        for kind in data.organization_types
    )
    session.add_all(
        ConsentDomain(consent_id=consent.id, domain=domain.value) for domain in data.resolved_domains()
    )
    await session.flush()
    (read,) = await _reads(session, [consent])
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="consent.given",
        entity="consent",
        entity_id=consent.id,
        after=audit.snapshot(
            read,
            (
                "basis",
                "legal_reference",
                "organization_ids",
                "organization_types",
                "domains",
                "given_at",
                "note",
            ),
        ),
    )
    events.emit(session, contracts.CaseConsentGiven, case, **_scope(read))
    await session.flush()
    return read


async def withdraw(
    session: AsyncSession, *, viewer: Viewer, case: Case, consent_id: uuid.UUID, reason: str | None
) -> ConsentRead:
    """Withdraw a consent now; it stops covering anything from this moment on.

    Allowed on a closed case too: a withdrawal only ever narrows what may be disclosed."""
    consent = (
        await session.execute(
            select(Consent)
            .where(col(Consent.id) == consent_id, col(Consent.case_id) == case.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if consent is None:
        raise ConsentNotFound(f"No consent {consent_id} on case {case.id}")
    if consent.withdrawn_at is not None:
        raise ConsentAlreadyWithdrawn(
            f"Consent {consent_id} was withdrawn at {consent.withdrawn_at.isoformat()}",
            withdrawn_at=consent.withdrawn_at.isoformat(),
        )
    now = utcnow()
    consent.withdrawn_at = now
    consent.withdrawal_reason = reason
    consent.withdrawn_recorded_by = viewer.subject
    await session.flush()
    (read,) = await _reads(session, [consent])
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="consent.withdrawn",
        entity="consent",
        entity_id=consent.id,
        before={"withdrawn_at": None, "withdrawal_reason": None},
        after={"withdrawn_at": now, "withdrawal_reason": reason},
    )
    events.emit(session, contracts.CaseConsentWithdrawn, case, **_scope(read), withdrawn_at=now.isoformat())
    await session.flush()
    return read


async def list_for_case(session: AsyncSession, *, case_id: uuid.UUID) -> list[ConsentRead]:
    """Every consent of the case, active and withdrawn, oldest given first."""
    consents = (
        (
            await session.execute(
                select(Consent)
                .where(col(Consent.case_id) == case_id)
                .order_by(col(Consent.given_at), col(Consent.recorded_at), col(Consent.id))
            )
        )
        .scalars()
        .all()
    )
    return await _reads(session, consents)


async def get(session: AsyncSession, *, case_id: uuid.UUID, consent_id: uuid.UUID) -> ConsentRead:
    consent = (
        await session.execute(
            select(Consent).where(col(Consent.id) == consent_id, col(Consent.case_id) == case_id)
        )
    ).scalar_one_or_none()
    if consent is None:
        raise ConsentNotFound(f"No consent {consent_id} on case {case_id}")
    (read,) = await _reads(session, [consent])
    return read


async def may_receive(
    session: AsyncSession,
    *,
    case_id: uuid.UUID,
    organization: OrganizationRef,
    domain: Domain,
    at: datetime | None = None,
) -> Decision:
    """May ``organization`` receive ``domain`` of the case at ``at`` (default now)?

    When several consents cover it, the answer names the inmate's own consent before a legal
    basis, then the one given last."""
    if at is not None and at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    moment = (at or utcnow()).astimezone(UTC)
    consent = (
        (
            await session.execute(
                select(Consent)
                .where(*consent_conditions(case_id, organization, at=moment, domain=domain.value))
                .order_by(
                    when((col(Consent.basis) == ConsentBasis.CONSENT, 0), else_=1),
                    col(Consent.given_at).desc(),
                    col(Consent.id),
                )
                .limit(1)
            )
        )
        .scalars()
        .first()
    )
    if consent is None:
        return Decision(allowed=False, basis=None, consent_id=None, legal_reference=None, checked_at=moment)
    return Decision(
        allowed=True,
        basis=consent.basis,
        consent_id=consent.id,
        legal_reference=consent.legal_reference if consent.basis is ConsentBasis.LEGAL_BASIS else None,
        checked_at=moment,
    )
