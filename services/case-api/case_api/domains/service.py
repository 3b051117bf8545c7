"""Reintegration domains of a case and their actions. Flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer, visible_domains
from case_api.audit import service as audit
from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus
from case_api.domains.errors import ActionNotFound, DomainNotFound, InvalidDomainChange
from case_api.domains.models import CaseDomain, Domain, DomainAction
from case_api.domains.schemas import ActionCreate, ActionUpdate, DomainUpdate
from case_api.organizations import service as organizations
from case_api.organizations.service import UnknownOrganization
from shared.clock import oslo_today
from shared.db import utcnow

DOMAIN_FIELDS = ("status", "needs", "goals", "hostel_only")
ACTION_FIELDS = (
    "description",
    "responsible_organization_id",
    "contact_name",
    "contact_phone",
    "contact_email",
    "due_date",
    "done_at",
)
DOMAIN_ORDER = {domain: index for index, domain in enumerate(Domain)}


def local_today() -> date:
    """Today's date in Norway, which is what due and release dates mean."""
    return oslo_today()


def is_overdue(action: DomainAction, *, today: date | None = None) -> bool:
    return (
        action.done_at is None and action.due_date is not None and action.due_date < (today or local_today())
    )


def _ensure_open(case: Case) -> None:
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot change")


async def _actions_of(
    session: AsyncSession, case_domains: Iterable[CaseDomain]
) -> dict[uuid.UUID, list[DomainAction]]:
    ids = [case_domain.id for case_domain in case_domains]
    actions: dict[uuid.UUID, list[DomainAction]] = {domain_id: [] for domain_id in ids}
    if not ids:
        return actions
    rows = (
        (
            await session.execute(
                select(DomainAction)
                .where(col(DomainAction.case_domain_id).in_(ids))
                .order_by(col(DomainAction.created_at), col(DomainAction.id))
            )
        )
        .scalars()
        .all()
    )
    for action in rows:
        actions[action.case_domain_id].append(action)
    return actions


async def list_domains(
    session: AsyncSession, *, viewer: Viewer, case: Case
) -> list[tuple[CaseDomain, list[DomainAction]]]:
    """The case's domains the viewer may see, in the documented order, each with its actions."""
    allowed = await visible_domains(session, viewer, case)
    rows = (
        (await session.execute(select(CaseDomain).where(col(CaseDomain.case_id) == case.id))).scalars().all()
    )
    shown = sorted((row for row in rows if row.domain in allowed), key=lambda row: DOMAIN_ORDER[row.domain])
    actions = await _actions_of(session, shown)
    return [(row, actions[row.id]) for row in shown]


async def load_domain(session: AsyncSession, *, viewer: Viewer, case: Case, domain: Domain) -> CaseDomain:
    """One domain of a visible case; 404 when the viewer's consent does not cover it."""
    if domain not in await visible_domains(session, viewer, case):
        raise DomainNotFound(f"No domain {domain.value!r} on this case that you may see")
    row = (
        await session.execute(
            select(CaseDomain).where(col(CaseDomain.case_id) == case.id, col(CaseDomain.domain) == domain)
        )
    ).scalar_one_or_none()
    if row is None:  # pragma: no cover - every case gets every domain when opened
        raise DomainNotFound(f"The case has no domain {domain.value!r}")
    return row


async def actions_of(session: AsyncSession, case_domain: CaseDomain) -> list[DomainAction]:
    return (await _actions_of(session, [case_domain]))[case_domain.id]


async def update_domain(
    session: AsyncSession, *, viewer: Viewer, case: Case, case_domain: CaseDomain, data: DomainUpdate
) -> CaseDomain:
    """Change status, needs, goals or the hostel-only flag (the caller checked If-Match)."""
    _ensure_open(case)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("hostel_only") and case_domain.domain is not Domain.HOUSING:
        raise InvalidDomainChange(
            "Only the housing domain can be marked hostel-only",
            field="hostel_only",
            domain=case_domain.domain,
        )
    before = audit.snapshot(case_domain, DOMAIN_FIELDS)
    after = {**before, **audit.snapshot(changes, changes.keys())}
    old, new = audit.changed(before, after)
    if not new:
        return case_domain
    for name in new:
        setattr(case_domain, name, changes[name])
    case_domain.updated_at = utcnow()
    case_domain.updated_by = viewer.subject
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="domain.updated",
        entity="domain",
        entity_id=case_domain.id,
        before={"domain": case_domain.domain.value, **old},
        after={"domain": case_domain.domain.value, **new},
    )
    await session.flush()
    return case_domain


async def _check_organization(session: AsyncSession, organization_id: uuid.UUID | None) -> None:
    if organization_id is not None and await organizations.get(session, organization_id) is None:
        raise UnknownOrganization(
            f"No organization {organization_id} in the directory", field="responsible_organization_id"
        )


async def add_action(
    session: AsyncSession, *, viewer: Viewer, case: Case, case_domain: CaseDomain, data: ActionCreate
) -> DomainAction:
    _ensure_open(case)
    await _check_organization(session, data.responsible_organization_id)
    action = DomainAction(
        case_domain_id=case_domain.id,
        description=data.description,
        responsible_organization_id=data.responsible_organization_id,
        contact_name=data.contact_name,
        contact_phone=data.contact_phone,
        contact_email=data.contact_email,
        due_date=data.due_date,
        created_by=viewer.subject,
        updated_by=viewer.subject,
    )
    session.add(action)
    await session.flush()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="domain_action.created",
        entity="domain_action",
        entity_id=action.id,
        after={"domain": case_domain.domain.value, **audit.snapshot(action, ACTION_FIELDS)},
    )
    await session.flush()
    return action


async def load_action(
    session: AsyncSession, *, case_domain: CaseDomain, action_id: uuid.UUID
) -> DomainAction:
    action = await session.get(DomainAction, action_id)
    if action is None or action.case_domain_id != case_domain.id:
        raise ActionNotFound(f"No action {action_id} in domain {case_domain.domain.value!r} of this case")
    return action


async def update_action(
    session: AsyncSession,
    *,
    viewer: Viewer,
    case: Case,
    case_domain: CaseDomain,
    action: DomainAction,
    data: ActionUpdate,
) -> DomainAction:
    """Change an action's fields, mark it done or reopen it."""
    _ensure_open(case)
    changes = data.model_dump(exclude_unset=True)
    done = changes.pop("done", None)
    if "responsible_organization_id" in changes:
        await _check_organization(session, changes["responsible_organization_id"])
    if done is True and action.done_at is None:
        changes["done_at"] = utcnow()
    elif done is False:
        changes["done_at"] = None
    before = audit.snapshot(action, ACTION_FIELDS)
    after = {**before, **audit.snapshot(changes, changes.keys())}
    old, new = audit.changed(before, after)
    if not new:
        return action
    for name in new:
        setattr(action, name, changes[name])
    action.updated_at = utcnow()
    action.updated_by = viewer.subject
    if set(new) == {"done_at"}:
        verb = "completed" if action.done_at is not None else "reopened"
    else:
        verb = "updated"
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action=f"domain_action.{verb}",
        entity="domain_action",
        entity_id=action.id,
        before={"domain": case_domain.domain.value, **old},
        after={"domain": case_domain.domain.value, **new},
    )
    await session.flush()
    return action
