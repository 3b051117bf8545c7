"""Who may do what at the service market.

| role           | sessions, appointments, day list, statistics | providers        | requests |
|----------------|----------------------------------------------|------------------|----------|
| admin          | every unit, may change                       | read and change  | all      |
| auditor        | every unit, read only                        | read             | read     |
| coordinator    | units of their region, may change            | read and change  | region   |
| prison_staff   | their unit, may change                       | read and change  | unit     |
| service_market | their unit, may change (names, times only)   | read and change  | no       |
| others         | 403                                          | 403              | 403      |

A unit, session or appointment outside the caller's scope answers 404. A unit named in a body
outside the caller's scope answers 403, as when opening a case. So does a token whose organization
does not fit its role: a coordinator's must be a region, prison staff's and service-market staff's
a unit (``case_api.access.ACTS_FOR``).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer, require_acting_organization
from case_api.market.errors import UnitNotFound, UnitOutsideScope
from case_api.organizations import service as organizations
from case_api.organizations.models import OrganizationRef
from shared.auth import Role
from shared.directory import UNIT_TYPES
from shared.errors import Forbidden

MARKET_READERS = frozenset(
    {Role.ADMIN, Role.AUDITOR, Role.COORDINATOR, Role.PRISON_STAFF, Role.SERVICE_MARKET}
)
MARKET_WRITERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.PRISON_STAFF, Role.SERVICE_MARKET})
REQUEST_READERS = frozenset({Role.ADMIN, Role.AUDITOR, Role.COORDINATOR, Role.PRISON_STAFF})
REQUEST_WRITERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.PRISON_STAFF})


def require_market_reader(viewer: Viewer) -> None:
    if viewer.role not in MARKET_READERS:
        raise Forbidden(f"Role {viewer.role.value!r} has no access to the service market")
    require_acting_organization(viewer)


def require_market_writer(viewer: Viewer) -> None:
    if viewer.role not in MARKET_WRITERS:
        raise Forbidden(f"Role {viewer.role.value!r} may not change the service market")
    require_acting_organization(viewer)


def require_request_reader(viewer: Viewer) -> None:
    if viewer.role not in REQUEST_READERS:
        raise Forbidden(f"Role {viewer.role.value!r} has no access to service market requests")
    require_acting_organization(viewer)


def require_request_writer(viewer: Viewer) -> None:
    if viewer.role not in REQUEST_WRITERS:
        raise Forbidden(f"Role {viewer.role.value!r} may not change service market requests")
    require_acting_organization(viewer)


def sees_case_details(viewer: Viewer) -> bool:
    """Service market staff see names, units, times and providers: never domains or outcomes."""
    return viewer.role is not Role.SERVICE_MARKET


async def in_scope(session: AsyncSession, viewer: Viewer, unit_id: uuid.UUID) -> bool:
    """Whether the unit is one whose service market this viewer may see."""
    role = viewer.role
    if role in (Role.ADMIN, Role.AUDITOR):
        return True
    if role in (Role.PRISON_STAFF, Role.SERVICE_MARKET):
        return viewer.organization_id == unit_id
    if role is Role.COORDINATOR:
        if viewer.region_id is None:
            return False
        unit = await viewer.organization_facts.facts(
            session, unit_id
        )  # cached: asked on every market request
        return unit is not None and unit.region_id == viewer.region_id
    return False


async def require_unit(session: AsyncSession, viewer: Viewer, unit_id: uuid.UUID) -> None:
    """A unit named in the path or query: 404 when unknown or outside the viewer's scope."""
    require_market_reader(viewer)
    unit = await viewer.organization_facts.facts(session, unit_id)
    if unit is None or unit.type not in UNIT_TYPES or not await in_scope(session, viewer, unit_id):
        raise UnitNotFound(f"No unit {unit_id} whose service market you may see")


async def require_unit_for_change(
    session: AsyncSession, viewer: Viewer, unit_id: uuid.UUID, *, field: str
) -> OrganizationRef:
    """A unit named in a body: 422 when unknown, 403 when outside the viewer's scope."""
    require_market_writer(viewer)
    unit = await organizations.require(session, unit_id, field=field, types=set(UNIT_TYPES))
    if not await in_scope(session, viewer, unit_id):
        raise UnitOutsideScope("The unit is not in your scope")
    return unit
