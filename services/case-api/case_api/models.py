"""Every case-api table, for Alembic and for the outbox/inbox/idempotency helpers.

Never reads settings at import."""

from __future__ import annotations

from case_api.audit.models import AccessLogEntry, TimelineEntry
from case_api.cases.models import Case
from case_api.consents.models import Consent, ConsentDomain, ConsentRecipient
from case_api.domains.models import CaseDomain, DomainAction
from case_api.group.models import GroupMember, Meeting, MeetingDecision, MeetingParticipant
from case_api.market.models import (
    MarketAppointment,
    MarketCheckin,
    MarketProvider,
    MarketRequest,
    MarketSession,
    MarketUnitCapacity,
)
from case_api.organizations.models import OrganizationRef
from case_api.persons.models import Person
from case_api.release_dates.models import ReleaseDate
from shared.idempotency import idempotency_model
from shared.outbox import inbox_model, outbox_model

CaseOutbox = outbox_model("case", __name__)
CaseInbox = inbox_model("case", __name__)
CaseIdempotency = idempotency_model("case", __name__)

__all__ = [
    "AccessLogEntry",
    "Case",
    "CaseDomain",
    "CaseIdempotency",
    "CaseInbox",
    "CaseOutbox",
    "Consent",
    "ConsentDomain",
    "ConsentRecipient",
    "DomainAction",
    "GroupMember",
    "MarketAppointment",
    "MarketCheckin",
    "MarketProvider",
    "MarketRequest",
    "MarketSession",
    "MarketUnitCapacity",
    "Meeting",
    "MeetingDecision",
    "MeetingParticipant",
    "OrganizationRef",
    "Person",
    "ReleaseDate",
    "TimelineEntry",
]
