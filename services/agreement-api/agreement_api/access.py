"""Who may do what in agreement-api.

| role              | organizations | agreements, rules, profiles | webhook endpoints and keys       |
|-------------------|---------------|-----------------------------|----------------------------------|
| admin             | read, manage  | read, manage                | read, manage (every organization)|
| coordinator       | read          | read, manage                | read                             |
| integration_admin | read          | read                        | read, manage (own organization)  |
| service           | read          | read (resolution)           | read; disable (notify-worker)    |
| others            | read          | read                        | none                             |

The `service` role may disable any endpoint (notify-worker does so after a 410 or a sustained
failure) but may not enable, change or rotate one: turning deliveries back on is a person's call.
"""

from __future__ import annotations

import uuid

from shared.auth import Principal, Role
from shared.errors import Forbidden

AGREEMENT_MANAGERS = frozenset({Role.ADMIN, Role.COORDINATOR})
ENDPOINT_READERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.INTEGRATION_ADMIN, Role.SERVICE})


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
