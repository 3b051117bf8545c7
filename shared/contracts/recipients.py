"""Who a notice's recipient is, decided once for notify-worker's schedule and case-api's detail view.

A rule names its recipient by type (``municipality``) or by id; agreement-api's resolution always
answers with the recipient's directory type, so a municipality named by id is a municipality.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from shared.directory import OrganizationType


class RecipientKind(StrEnum):
    MUNICIPALITY = "municipality"
    NAV = "nav"
    HEALTH = "health"
    OTHER = "other"


MUNICIPAL_TYPES = frozenset({OrganizationType.MUNICIPALITY, OrganizationType.DISTRICT})
HEALTH_TYPES = frozenset({OrganizationType.HEALTH_TRUST})
# No municipality is told about a release abroad or a deportation (docs/notices.md).
NO_MUNICIPAL_NOTICES = frozenset({"abroad", "deportation"})


def recipient_kind(
    organization_type: str | None, organization_id: uuid.UUID, *, nav_office_id: uuid.UUID | None
) -> RecipientKind:
    """The kind of recipient from its directory type; the case's own NAV office is NAV whatever
    the rule called it."""
    if organization_type in MUNICIPAL_TYPES:
        return RecipientKind.MUNICIPALITY
    if organization_type == OrganizationType.NAV_OFFICE or (
        nav_office_id is not None and organization_id == nav_office_id
    ):
        return RecipientKind.NAV
    if organization_type in HEALTH_TYPES:
        return RecipientKind.HEALTH
    return RecipientKind.OTHER


def is_told(kind: RecipientKind, release_destination: str | None) -> bool:
    """False for a municipal recipient of a case released abroad or deported."""
    return not (kind is RecipientKind.MUNICIPALITY and release_destination in NO_MUNICIPAL_NOTICES)
