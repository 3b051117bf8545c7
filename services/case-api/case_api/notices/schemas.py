from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import BaseModel, Field

from case_api.domains.models import Domain, DomainStatus
from case_api.group.models import GroupRole
from case_api.release_dates.models import ReleaseDateCertainty


class SharingField(StrEnum):
    """The case facts a data-sharing profile may release (agreement-api's ``SharingField``)."""

    RELEASE_DATE = "release_date"
    RELEASE_DATE_CERTAINTY = "release_date_certainty"
    UNIT = "unit"
    COORDINATOR_CONTACT = "coordinator_contact"
    DOMAIN_STATUS = "domain_status"
    DOMAIN_NEEDS = "domain_needs"
    DOMAIN_ACTIONS = "domain_actions"
    GROUP_CONTACTS = "group_contacts"


DOMAIN_FIELDS = frozenset(
    {SharingField.DOMAIN_STATUS, SharingField.DOMAIN_NEEDS, SharingField.DOMAIN_ACTIONS}
)


class Contact(BaseModel):
    """A member of staff (the case's coordinator); never the inmate."""

    name: str
    phone: str | None
    email: str | None
    organization_id: uuid.UUID | None


class NoticeFacts(BaseModel):
    """What a notice says beyond ids: no personal data of the inmate."""

    case_id: uuid.UUID
    effective_release_date: dt.date | None = Field(
        description="What planning aims at: the confirmed date, else the expected one."
    )
    release_date_certainty: ReleaseDateCertainty | None = Field(
        description="The certainty of the effective release date; null without one."
    )
    coordinator: Contact | None = Field(
        description="The active group member with role `coordinator` who was added first."
    )


class NoticeFactsList(BaseModel):
    """The notice facts of the asked cases that exist; an unknown id is simply not in ``items``."""

    items: list[NoticeFacts]


class Unit(BaseModel):
    id: uuid.UUID
    name: str | None = Field(
        description="From the organization directory; null if case-api does not know it."
    )


class ActionDetail(BaseModel):
    description: str
    responsible_organization_id: uuid.UUID | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    due_date: dt.date | None
    done: bool


class DomainDetail(BaseModel):
    """One shared domain; `status`, `needs` and `actions` only when the profile releases them."""

    domain: Domain
    status: DomainStatus | None = None
    needs: str | None = None
    actions: list[ActionDetail] | None = None


class GroupContact(BaseModel):
    """A post-release contact in the responsibility group who acts for an organization."""

    name: str
    role: GroupRole
    organization_id: uuid.UUID
    phone: str | None
    email: str | None


class NoticeDetail(BaseModel):
    """The case as one notice recipient may see it. Only the facts its data-sharing profile
    releases are present (a fact left out is not in the answer at all; one that is released but
    unknown is null). Never the inmate's name or identity number."""

    case_id: uuid.UUID
    organization_id: uuid.UUID = Field(description="The recipient whose view this is.")
    release_date: dt.date | None = None
    release_date_certainty: ReleaseDateCertainty | None = None
    unit: Unit | None = None
    coordinator: Contact | None = None
    domains: list[DomainDetail] | None = Field(
        None,
        description="The profile's domains that an active consent or legal basis covers for the "
        "recipient, in the documented order; present when the profile releases a domain fact.",
    )
    group_contacts: list[GroupContact] | None = None
