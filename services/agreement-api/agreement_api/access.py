"""Who may do what in agreement-api.

| role              | organizations | agreements, rules, profiles      | webhook endpoints and keys       |
|-------------------|---------------|----------------------------------|----------------------------------|
| admin             | read, manage  | read, manage                     | read, manage (every organization)|
| coordinator       | read          | read, manage (in scope)          | read                             |
| integration_admin | read          | read                             | read, manage (own organization)  |
| service           | read          | read (resolution)                | read; disable (notify-worker)    |
| others            | read          | read                             | none                             |

A coordinator manages an agreement (its content, status and notice rules) when the token's
organization is one of its parties, or is the region a party lies in (a prison's parent region,
say); a change of parties must keep the agreement in scope. Otherwise 403: agreements are no secret,
everyone may read them.

The `service` role may disable any endpoint (notify-worker does so after a 410 or a sustained
failure) but may not enable, change or rotate one: turning deliveries back on is a person's call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.organizations.models import Organization, OrganizationType
from shared.auth import Principal, Role
from shared.errors import Forbidden

AGREEMENT_MANAGERS = frozenset({Role.ADMIN, Role.COORDINATOR})
ENDPOINT_READERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.INTEGRATION_ADMIN, Role.SERVICE})
# Far more than the directory's depth (region > unit); it only bounds a walk up a broken hierarchy.
_MAX_HIERARCHY_DEPTH = 8


def require(principal: Principal, roles: frozenset[Role], what: str) -> None:
    if principal.role not in roles:
        raise Forbidden(f"Role {principal.role.value!r} may not {what}")


def may_manage_endpoints_of(principal: Principal, organization_id: uuid.UUID) -> bool:
    """Admins manage every organization's endpoints; an integration admin only its own."""
    if principal.role is Role.ADMIN:
        return True
    return principal.role is Role.INTEGRATION_ADMIN and principal.organization_id == str(organization_id)


def require_endpoint_manager(principal: Principal, organization_id: uuid.UUID) -> None:
    if not may_manage_endpoints_of(principal, organization_id):
        raise Forbidden("Only an admin or this organization's own integration admin may manage its endpoints")


def require_endpoint_disabler(principal: Principal, organization_id: uuid.UUID) -> None:
    """An endpoint manager, or notify-worker (role `service`) stopping a failing endpoint."""
    if principal.role is Role.SERVICE:
        return
    require_endpoint_manager(principal, organization_id)


def require_endpoint_reader(principal: Principal, organization_id: uuid.UUID) -> None:
    if principal.role is Role.INTEGRATION_ADMIN and principal.organization_id != str(organization_id):
        raise Forbidden("An integration admin sees only its own organization's endpoints")
    require(principal, ENDPOINT_READERS, "read webhook endpoints")


async def regions_of(session: AsyncSession, organization_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The regions these organizations lie in: each one's nearest region above it (a region is its
    own). Organizations under no region, such as municipalities, add none."""
    regions: set[uuid.UUID] = set()
    seen: set[uuid.UUID] = set()
    pending = set(organization_ids)
    for _ in range(_MAX_HIERARCHY_DEPTH):
        if not pending:
            break
        seen |= pending
        rows = await session.execute(
            select(col(Organization.id), col(Organization.type), col(Organization.parent_id)).where(
                col(Organization.id).in_(pending)
            )
        )
        pending = set()
        for organization_id, organization_type, parent_id in rows.all():
            if organization_type == OrganizationType.REGION:
                regions.add(organization_id)
            elif parent_id is not None and parent_id not in seen:
                pending.add(parent_id)
    return regions


async def require_agreement_manager(
    session: AsyncSession, principal: Principal, party_ids: Iterable[uuid.UUID]
) -> None:
    """Admins change every agreement; a coordinator one whose parties include its organization or
    lie in its region (403 otherwise). The caller checks the role first (``AGREEMENT_MANAGERS``)."""
    if principal.role is Role.ADMIN:
        return
    require(principal, AGREEMENT_MANAGERS, "change agreements")
    parties = set(party_ids)
    try:
        organization_id = uuid.UUID(principal.organization_id or "")
    except ValueError:
        raise Forbidden("A coordinator changes agreements with a token naming its organization") from None
    if organization_id in parties or organization_id in await regions_of(session, parties):
        return
    raise Forbidden("Only a coordinator for a party of the agreement, or for a party's region, may change it")
