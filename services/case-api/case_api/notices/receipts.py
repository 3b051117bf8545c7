"""An accepted receipt's contact person joins the case's responsibility group.

notify-worker publishes ``notice.receipt_accepted.v1`` when a recipient acknowledges a notice and
names whom to contact (and possibly a substitute). This runs in the consumer's unit of work, after
the inbox has admitted the event, so a redelivered event changes nothing.

An event that does not fit its contract never gets here (the consumer dead-letters it). Nothing
here raises for the rest: an unknown or closed case, an organization case-api does not know, or
contact details the group does not accept are logged and skipped. Raising would only
send the message round the broker's retries to the dead-letter queue with the same outcome. Logs
carry ids and the reason only, never a name, phone number or e-mail address.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus
from case_api.group import service as group
from case_api.group.errors import InvalidMember
from case_api.group.models import GroupMember, GroupRole
from case_api.organizations import service as organizations
from case_api.organizations.service import UnknownOrganization
from shared.clock import oslo_today
from shared.contracts.events import NoticeReceiptAccepted, ReceiptPerson

log = structlog.get_logger("case_api.notices.receipts")

# The group role a recipient's contact gets, from the organization's type.
ROLE_BY_ORGANIZATION_TYPE: dict[str, GroupRole] = {
    "municipality": GroupRole.MUNICIPALITY_SOCIAL_SERVICES,
    "district": GroupRole.MUNICIPALITY_SOCIAL_SERVICES,  # a bydel provides the municipal services
    "nav_office": GroupRole.NAV,
    "health_trust": GroupRole.HEALTH,
}


def role_for(organization_type: str) -> GroupRole:
    return ROLE_BY_ORGANIZATION_TYPE.get(organization_type, GroupRole.OTHER)


async def _already_member(
    session: AsyncSession, case_id: uuid.UUID, organization_id: uuid.UUID, name: str
) -> bool:
    """The same person for the same organization is already an active member. Every milestone
    notice gets its own receipt, usually naming the same contact: the group gets them once."""
    today = oslo_today()
    found = await session.execute(
        select(col(GroupMember.id))
        .where(
            col(GroupMember.case_id) == case_id,
            col(GroupMember.organization_id) == organization_id,
            func.lower(func.trim(col(GroupMember.person_name))) == name.strip().lower(),
            or_(col(GroupMember.member_until).is_(None), col(GroupMember.member_until) >= today),
        )
        .limit(1)
    )
    return found.first() is not None


async def _add(
    session: AsyncSession,
    *,
    receipt: NoticeReceiptAccepted,
    case: Case,
    role: GroupRole,
    person: ReceiptPerson,
    which: str,
) -> GroupMember | None:
    ids = {"case_id": str(case.id), "receipt_id": str(receipt.receipt_id), "which": which}
    if await _already_member(session, case.id, receipt.recipient_organization_id, person.name):
        log.info("receipt.contact_already_member", **ids)
        return None
    try:
        member = await group.add_member_from_receipt(
            session,
            viewer_subject=f"notify-worker:receipt:{receipt.receipt_id}",
            case=case,
            organization_id=receipt.recipient_organization_id,
            person_name=person.name,
            role=role,
            contact_phone=person.phone,
            contact_email=person.email,
            # The contact is whom the person and the services call after release; the
            # substitute stands in for them and is not a contact of its own.
            post_release_contact=which == "contact",
        )
    except (InvalidMember, UnknownOrganization, CaseClosed) as exc:
        log.warning(
            "receipt.contact_skipped", reason=type(exc).__name__, field=exc.extensions.get("field"), **ids
        )
        return None
    log.info("receipt.contact_added", member_id=str(member.id), role=role.value, **ids)
    return member


async def add_contacts(session: AsyncSession, receipt: NoticeReceiptAccepted) -> list[GroupMember]:
    """Add the receipt's contact (a post-release contact) and its substitute (not one) to the
    group, acting for the recipient organization. Returns the members added."""
    ids = {"case_id": str(receipt.case_id), "receipt_id": str(receipt.receipt_id)}
    # Locked first, so two receipts naming the same contact cannot both find it missing.
    case = await session.get(Case, receipt.case_id, with_for_update=True)
    if case is None:
        log.warning("receipt.unknown_case", **ids)
        return []
    if case.status is CaseStatus.CLOSED:
        log.info("receipt.case_closed", **ids)
        return []
    organization = await organizations.get(session, receipt.recipient_organization_id)
    if organization is None:
        log.warning(
            "receipt.unknown_organization", organization_id=str(receipt.recipient_organization_id), **ids
        )
        return []
    role = role_for(organization.type)
    added: list[GroupMember] = []
    for which, person in (("contact", receipt.contact), ("substitute", receipt.substitute)):
        if person is None:
            continue
        member = await _add(session, receipt=receipt, case=case, role=role, person=person, which=which)
        if member is not None:
            added.append(member)
    return added
