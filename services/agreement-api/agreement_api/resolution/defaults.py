"""The default notice rule set: what applies when no active agreement covers a case."""

from __future__ import annotations

from typing import Any

from shared.contracts import events as contracts
from shared.directory import OrganizationType

_MILESTONES = [{"days_before_release": days, "business_days": False} for days in (90, 30, 7, 0)]
_PROFILE = {
    "domains": ["housing", "work", "income", "debt", "social_services"],
    "fields": ["release_date", "release_date_certainty", "unit", "coordinator_contact", "domain_status"],
}
_EVENT_TYPES = [
    contracts.CaseOpened.TYPE,
    contracts.CaseReleaseDateChanged.TYPE,
    contracts.CaseMunicipalityChanged.TYPE,
]

DEFAULT_RULES: tuple[dict[str, Any], ...] = tuple(
    {
        "recipient_organization_type": recipient,
        "milestones": _MILESTONES,
        "event_types": _EVENT_TYPES,
        "receipt_deadline_days": 5,
        "escalation": None,
        "data_sharing_profile": _PROFILE,
    }
    for recipient in (OrganizationType.MUNICIPALITY, OrganizationType.NAV_OFFICE)
)
"""The rules used when no active agreement applies (resolution ``source: "default"``).

Recipients: the municipality organization of the responsible kommunenummer, and the case's NAV
office. Each is told when the case opens, when the release date or the responsible municipality
changes, and at the milestones 90, 30 and 7 calendar days before release and on the release day
(0). A notice must be acknowledged within 5 days. The data-sharing profile releases the
``release_date``, ``release_date_certainty``, ``unit``, ``coordinator_contact`` and
``domain_status`` fields for the domains housing, work, income, debt and social_services (further
narrowed to the domains a resolution asks for). There is no escalation contact by default.
"""
