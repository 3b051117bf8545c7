"""Agreement rules. Flushes, never commits."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import String, cast, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.agreements.errors import (
    AgreementNotEditable,
    AgreementNotFound,
    AgreementVersionNotFound,
    InvalidAgreement,
    InvalidParties,
    InvalidRecipient,
    InvalidValidity,
    NoticeRuleNotFound,
    OverlappingAgreement,
)
from agreement_api.agreements.lifecycle import (
    BINDING,
    EDITABLE_IN_PLACE,
    VERSIONED,
    allowed_next,
    check_transition,
)
from agreement_api.agreements.models import (
    Agreement,
    AgreementLevel,
    AgreementParty,
    AgreementStatus,
    AgreementVersion,
    NoticeRule,
    ReintegrationDomain,
)
from agreement_api.agreements.schemas import (
    AgreementCreate,
    AgreementRead,
    AgreementUpdate,
    NoticeRuleCreate,
    NoticeRuleRead,
    NoticeRuleUpdate,
    PartyIn,
    PartyRead,
    StatusChange,
)
from agreement_api.models import AgreementOutbox
from agreement_api.organizations.models import Organization
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.outbox import add_event
from shared.pagination import keyset_page

_STATUS_EVENTS: dict[AgreementStatus, type[contracts.AgreementEvent]] = {
    AgreementStatus.ACTIVE: contracts.AgreementActivated,
    AgreementStatus.EXPIRED: contracts.AgreementExpired,
    AgreementStatus.TERMINATED: contracts.AgreementTerminated,
}


# --- reading -----------------------------------------------------------------------------------


async def get(session: AsyncSession, *, agreement_id: uuid.UUID) -> Agreement:
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        raise AgreementNotFound(f"No agreement with id {agreement_id}")
    return agreement


async def parties_of(session: AsyncSession, agreement_id: uuid.UUID) -> list[AgreementParty]:
    rows = await session.execute(
        select(AgreementParty)
        .where(col(AgreementParty.agreement_id) == agreement_id)
        .order_by(col(AgreementParty.organization_id))
    )
    return list(rows.scalars())


async def rules_of(session: AsyncSession, agreement_id: uuid.UUID) -> list[NoticeRule]:
    rows = await session.execute(
        select(NoticeRule)
        .where(col(NoticeRule.agreement_id) == agreement_id)
        .order_by(col(NoticeRule.created_at), col(NoticeRule.id))
    )
    return list(rows.scalars())


async def to_read(session: AsyncSession, agreement: Agreement) -> AgreementRead:
    parties = await parties_of(session, agreement.id)
    rules = await rules_of(session, agreement.id)
    return AgreementRead.model_validate(
        {
            "id": agreement.id,
            "title": agreement.title,
            "level": agreement.level,
            "status": agreement.status,
            "status_reason": agreement.status_reason,
            "allowed_next": allowed_next(agreement.status),
            "valid_from": agreement.valid_from,
            "valid_to": agreement.valid_to,
            "routines": agreement.routines,
            "meeting_cadence": agreement.meeting_cadence,
            "document_references": agreement.document_references,
            "contacts": agreement.contacts,
            "domains": agreement.domains,
            "parties": [PartyRead(organization_id=p.organization_id, role=p.role) for p in parties],
            "rules": [NoticeRuleRead.model_validate(rule) for rule in rules],
            "current_version": agreement.current_version,
            "created_by": agreement.created_by,
            "created_at": agreement.created_at,
            "updated_at": agreement.updated_at,
            "version": agreement.version,
        }
    )


async def list_page(
    session: AsyncSession,
    *,
    status: AgreementStatus | None,
    level: AgreementLevel | None,
    organization_id: uuid.UUID | None,
    domain: ReintegrationDomain | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Agreement], str | None]:
    """One page ordered by (created_at, id)."""
    query = select(Agreement)
    if status is not None:
        query = query.where(col(Agreement.status) == status)
    if level is not None:
        query = query.where(col(Agreement.level) == level)
    if organization_id is not None:
        query = query.where(
            exists().where(
                col(AgreementParty.agreement_id) == col(Agreement.id),
                col(AgreementParty.organization_id) == organization_id,
            )
        )
    if domain is not None:
        # Portable JSON-list membership (PostgreSQL JSONB and SQLite text alike); the value is an enum.
        query = query.where(cast(col(Agreement.domains), String).like(f'%"{domain.value}"%'))
    return await keyset_page(
        session,
        query,
        time_column=col(Agreement.created_at),
        id_column=col(Agreement.id),
        limit=limit,
        cursor=cursor,
    )


async def versions(session: AsyncSession, *, agreement_id: uuid.UUID) -> list[AgreementVersion]:
    rows = await session.execute(
        select(AgreementVersion)
        .where(col(AgreementVersion.agreement_id) == agreement_id)
        .order_by(col(AgreementVersion.version_number))
    )
    return list(rows.scalars())


async def version(session: AsyncSession, *, agreement_id: uuid.UUID, number: int) -> AgreementVersion:
    row = (
        await session.execute(
            select(AgreementVersion).where(
                col(AgreementVersion.agreement_id) == agreement_id,
                col(AgreementVersion.version_number) == number,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise AgreementVersionNotFound(f"Agreement {agreement_id} has no version {number}")
    return row


# --- checks ------------------------------------------------------------------------------------


async def _check_parties(session: AsyncSession, parties: list[PartyIn]) -> None:
    seen: set[uuid.UUID] = set()
    for index, party in enumerate(parties):
        if party.organization_id in seen:
            raise InvalidParties(
                f"Organization {party.organization_id} is listed twice",
                field=f"parties[{index}].organization_id",
            )
        seen.add(party.organization_id)
    if len(seen) < 2:
        raise InvalidParties("An agreement needs at least two distinct parties", field="parties")
    found = set(
        (await session.execute(select(col(Organization.id)).where(col(Organization.id).in_(seen)))).scalars()
    )
    for index, party in enumerate(parties):
        if party.organization_id not in found:
            raise InvalidParties(
                f"Organization {party.organization_id} is not in the directory",
                field=f"parties[{index}].organization_id",
            )


def _check_validity(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to < valid_from:
        raise InvalidValidity(
            f"valid_to ({valid_to.isoformat()}) is before valid_from ({valid_from.isoformat()})",
            field="valid_to",
        )


async def _check_overlap(session: AsyncSession, agreement: Agreement, party_ids: set[uuid.UUID]) -> None:
    """409 naming another binding agreement with the same parties and an overlapping validity."""
    query = select(col(Agreement.id)).where(
        col(Agreement.id) != agreement.id,
        col(Agreement.status).in_(BINDING),
        or_(col(Agreement.valid_to).is_(None), col(Agreement.valid_to) >= agreement.valid_from),
    )
    if agreement.valid_to is not None:
        query = query.where(col(Agreement.valid_from) <= agreement.valid_to)
    candidates = list((await session.execute(query)).scalars())
    if not candidates:
        return
    rows = await session.execute(
        select(col(AgreementParty.agreement_id), col(AgreementParty.organization_id)).where(
            col(AgreementParty.agreement_id).in_(candidates)
        )
    )
    by_agreement: dict[uuid.UUID, set[uuid.UUID]] = {}
    for agreement_id, organization_id in rows.all():
        by_agreement.setdefault(agreement_id, set()).add(organization_id)
    for other in candidates:
        if by_agreement.get(other) == party_ids:
            raise OverlappingAgreement(
                f"Agreement {other} already covers the same parties in an overlapping period",
                other_agreement_id=str(other),
            )


async def party_ids(session: AsyncSession, agreement_id: uuid.UUID) -> set[uuid.UUID]:
    return {party.organization_id for party in await parties_of(session, agreement_id)}


def _editable(agreement: Agreement, what: str) -> None:
    if agreement.status not in EDITABLE_IN_PLACE | VERSIONED:
        raise AgreementNotEditable(
            f"A {agreement.status.value} agreement's {what} cannot change",
            status=agreement.status.value,
        )


# --- events and versions -----------------------------------------------------------------------


async def _emit(
    session: AsyncSession, contract: type[contracts.AgreementEvent], agreement: Agreement, **extra: Any
) -> None:
    parties = sorted(await party_ids(session, agreement.id), key=str)
    payload = contract(
        agreement_id=agreement.id,
        version=agreement.current_version,
        status=agreement.status.value,
        party_organization_ids=parties,
        domains=list(agreement.domains),
        valid_from=agreement.valid_from,
        valid_to=agreement.valid_to,
        **extra,
    )
    add_event(session, AgreementOutbox, payload, subject=f"agreement/{agreement.id}")


async def _freeze(session: AsyncSession, agreement: Agreement, *, by: str | None) -> None:
    """Store the agreement as it stands now as version ``current_version`` (once)."""
    existing = (
        await session.execute(
            select(col(AgreementVersion.id)).where(
                col(AgreementVersion.agreement_id) == agreement.id,
                col(AgreementVersion.version_number) == agreement.current_version,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        return
    snapshot = (await to_read(session, agreement)).model_dump(mode="json")
    session.add(
        AgreementVersion(
            agreement_id=agreement.id,
            version_number=agreement.current_version,
            snapshot=snapshot,
            created_by=by,
        )
    )
    await session.flush()


async def _after_change(
    session: AsyncSession, agreement: Agreement, *, by: str | None, changed: list[str]
) -> None:
    """In place for drafts; a new frozen version and ``agreement.changed.v1`` once active."""
    if agreement.status in VERSIONED:
        agreement.current_version += 1
    agreement.updated_at = utcnow()
    await session.flush()
    if agreement.status in VERSIONED:
        await _freeze(session, agreement, by=by)
        await _emit(session, contracts.AgreementChanged, agreement, changed=sorted(changed))


# --- writing -----------------------------------------------------------------------------------


async def create(session: AsyncSession, *, data: AgreementCreate, created_by: str | None) -> Agreement:
    """Create a draft agreement with its parties."""
    _check_validity(data.valid_from, data.valid_to)
    await _check_parties(session, data.parties)
    agreement = Agreement(
        **data.model_dump(exclude={"parties", "contacts", "domains"}),
        contacts=[contact.model_dump(mode="json") for contact in data.contacts],
        domains=[domain.value for domain in data.domains],
        created_by=created_by,
    )
    session.add(agreement)
    await session.flush()
    session.add_all(
        AgreementParty(agreement_id=agreement.id, organization_id=party.organization_id, role=party.role)
        for party in data.parties
    )
    await session.flush()
    return agreement


async def update(
    session: AsyncSession, *, agreement: Agreement, data: AgreementUpdate, changed_by: str | None
) -> Agreement:
    """Change fields (the caller checked If-Match): in place while draft or negotiating, as a new
    version while active or under review; 409 otherwise."""
    _editable(agreement, "content")
    changes: dict[str, Any] = {
        name: getattr(data, name) for name in data.model_fields_set if name != "parties"
    }
    for name, value in changes.items():
        if value is None and name != "valid_to":
            raise InvalidAgreement(f"{name} cannot be removed", field=name)
    if "contacts" in changes:
        changes["contacts"] = [contact.model_dump(mode="json") for contact in data.contacts or []]
    if "domains" in changes:
        changes["domains"] = [domain.value for domain in data.domains or []]
    _check_validity(
        changes.get("valid_from", agreement.valid_from), changes.get("valid_to", agreement.valid_to)
    )
    changed = [name for name, value in changes.items() if getattr(agreement, name) != value]
    new_parties: list[PartyIn] | None = None
    if data.parties is not None:
        await _check_parties(session, data.parties)
        current = {(p.organization_id, p.role) for p in await parties_of(session, agreement.id)}
        if {(p.organization_id, p.role) for p in data.parties} != current:
            new_parties = data.parties
            changed.append("parties")
    if not changed:
        return agreement
    for name in changed:
        if name != "parties":
            setattr(agreement, name, changes[name])
    if new_parties is not None:
        await session.execute(delete(AgreementParty).where(col(AgreementParty.agreement_id) == agreement.id))
        session.add_all(
            AgreementParty(agreement_id=agreement.id, organization_id=party.organization_id, role=party.role)
            for party in new_parties
        )
        await session.flush()
    if agreement.status in BINDING and {"valid_from", "valid_to", "parties"} & set(changed):
        await _check_overlap(session, agreement, await party_ids(session, agreement.id))
    await _after_change(session, agreement, by=changed_by, changed=changed)
    return agreement


async def change_status(
    session: AsyncSession, *, agreement: Agreement, data: StatusChange, changed_by: str | None
) -> Agreement:
    """Move along the lifecycle; 409 with ``allowed_next`` for an illegal move, 409 naming the
    other agreement when signing or activating would overlap one for the same parties."""
    check_transition(agreement.status, data.status)
    if data.status in (AgreementStatus.SIGNED, AgreementStatus.ACTIVE):
        await _check_overlap(session, agreement, await party_ids(session, agreement.id))
    agreement.status = data.status
    agreement.status_reason = data.reason
    agreement.updated_at = utcnow()
    await session.flush()
    if data.status is AgreementStatus.ACTIVE:
        await _freeze(session, agreement, by=changed_by)
    if (contract := _STATUS_EVENTS.get(data.status)) is not None:
        await _emit(session, contract, agreement, reason=data.reason)
    return agreement


# --- notice rules ------------------------------------------------------------------------------


async def get_rule(session: AsyncSession, *, agreement: Agreement, rule_id: uuid.UUID) -> NoticeRule:
    rule = await session.get(NoticeRule, rule_id)
    if rule is None or rule.agreement_id != agreement.id:
        raise NoticeRuleNotFound(f"Agreement {agreement.id} has no notice rule {rule_id}")
    return rule


async def _check_recipient(session: AsyncSession, organization_id: uuid.UUID | None) -> None:
    if organization_id is not None and await session.get(Organization, organization_id) is None:
        raise InvalidRecipient(
            f"Organization {organization_id} is not in the directory", field="recipient_organization_id"
        )


def _rule_values(data: NoticeRuleCreate | NoticeRuleUpdate, *, exclude_unset: bool) -> dict[str, Any]:
    values = data.model_dump(mode="json", exclude_unset=exclude_unset)
    if "recipient_organization_id" in values:
        values["recipient_organization_id"] = data.recipient_organization_id
    return values


async def add_rule(
    session: AsyncSession, *, agreement: Agreement, data: NoticeRuleCreate, changed_by: str | None
) -> NoticeRule:
    _editable(agreement, "notice rules")
    await _check_recipient(session, data.recipient_organization_id)
    rule = NoticeRule(agreement_id=agreement.id, **_rule_values(data, exclude_unset=False))
    session.add(rule)
    await session.flush()
    await _after_change(session, agreement, by=changed_by, changed=["rules"])
    return rule


async def update_rule(
    session: AsyncSession,
    *,
    agreement: Agreement,
    rule: NoticeRule,
    data: NoticeRuleUpdate,
    changed_by: str | None,
) -> NoticeRule:
    _editable(agreement, "notice rules")
    changes = _rule_values(data, exclude_unset=True)
    # Naming one kind of recipient replaces the other.
    if changes.get("recipient_organization_id") is not None:
        changes.setdefault("recipient_organization_type", None)
    if changes.get("recipient_organization_type") is not None:
        changes.setdefault("recipient_organization_id", None)
    for name in ("milestones", "event_types", "receipt_deadline_days", "data_sharing_profile"):
        if name in changes and changes[name] is None:
            raise InvalidRecipient(f"{name} cannot be removed", field=name)
    recipient_id = changes.get("recipient_organization_id", rule.recipient_organization_id)
    recipient_type = changes.get("recipient_organization_type", rule.recipient_organization_type)
    if (recipient_id is None) == (recipient_type is None):
        raise InvalidRecipient(
            "Give exactly one of recipient_organization_id and recipient_organization_type",
            field="recipient_organization_id",
        )
    await _check_recipient(session, changes.get("recipient_organization_id"))
    changed = [name for name, value in changes.items() if getattr(rule, name) != value]
    if not changed:
        return rule
    for name in changed:
        setattr(rule, name, changes[name])
    rule.updated_at = utcnow()
    await session.flush()
    await _after_change(session, agreement, by=changed_by, changed=["rules"])
    return rule


async def delete_rule(
    session: AsyncSession, *, agreement: Agreement, rule: NoticeRule, changed_by: str | None
) -> None:
    _editable(agreement, "notice rules")
    await session.delete(rule)
    await session.flush()
    await _after_change(session, agreement, by=changed_by, changed=["rules"])
