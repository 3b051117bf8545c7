from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from case_api.cases.models import CaseStatus
from case_api.cases.schemas import PersonSummary
from case_api.domains.models import Domain, DomainStatus


class ReadinessGap(StrEnum):
    """Something not in place before release (see docs/domains.md)."""

    DOMAINS_NOT_SETTLED = "domains_not_settled"  # listed in unsettled_domains
    HOUSING_HOSTEL_ONLY = "housing_hostel_only"
    NO_CONFIRMED_RELEASE_DATE = "no_confirmed_release_date"
    RESPONSIBLE_MUNICIPALITY_UNRESOLVED = "responsible_municipality_unresolved"
    NO_CONSENT_FOR_RESPONSIBLE_MUNICIPALITY = "no_consent_for_responsible_municipality"
    NO_POST_RELEASE_CONTACT = "no_post_release_contact"


class UnsettledDomain(BaseModel):
    domain: Domain
    status: DomainStatus


class ReadinessRead(BaseModel):
    case_id: uuid.UUID
    person: PersonSummary
    status: CaseStatus
    current_unit_id: uuid.UUID
    responsible_kommunenummer: str | None
    effective_release_date: date | None
    days_until_release: int | None = Field(
        description="Days from today (Norwegian date) to the effective release date; negative once passed."
    )
    in_window: bool = Field(
        description="The case is still inside and its release date is within `days` or already passed: "
        "it is one the cross-case report lists."
    )
    ready: bool = Field(description="Nothing is missing and no domain was withheld from you.")
    gaps: list[ReadinessGap]
    unsettled_domains: list[UnsettledDomain] = Field(
        description="Domains whose status does not count as settled, in the documented order."
    )
    withheld_domains: list[Domain] = Field(
        description="Domains your consent does not cover; their state is not reported to you."
    )
