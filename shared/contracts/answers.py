"""Answers one service gives another over HTTP, as the asking side reads them.

The answering service's own response models may say more; these list what the asker relies on.
Unknown fields are ignored, so a producer may add one without breaking its consumers; the
contract tests check each producer's real answers against these models.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.events import CoordinatorContact, KeyKind, ReleaseDateCertainty


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- agreement-api: GET /api/v1/resolution -------------------------------------------------------


class Milestone(_Answer):
    days_before_release: int = Field(ge=0)
    business_days: bool = False


class SharingProfile(_Answer):
    """What a recipient may see: case facts (``fields``) for the listed domains."""

    domains: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)


class ResolvedRule(_Answer):
    """One notice rule, its recipient resolved to one organization for the case."""

    agreement_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    recipient_organization_id: uuid.UUID
    recipient_organization_type: str | None = Field(
        default=None, description="The recipient's type in the directory, however the rule named it."
    )
    milestones: list[Milestone] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    receipt_deadline_days: int = 5
    data_sharing_profile: SharingProfile = Field(default_factory=SharingProfile)


class AgreementRef(_Answer):
    id: uuid.UUID
    version: int


class Resolution(_Answer):
    """Who is told what for a case."""

    source: Literal["agreement", "default", "none"]
    explanation: str | None = None
    agreements: list[AgreementRef] = Field(default_factory=list)
    rules: list[ResolvedRule] = Field(default_factory=list)

    def agreement_version(self, agreement_id: uuid.UUID | None) -> int | None:
        for agreement in self.agreements:
            if agreement.id == agreement_id:
                return agreement.version
        return None


# --- agreement-api: webhook endpoints and signing keys ------------------------------------------


class WebhookEndpoint(_Answer):
    """An endpoint as ``GET /api/v1/organizations/{id}/webhooks`` lists it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    event_types: list[str] = Field(default_factory=list)
    state: str

    def wants(self, event_type: str) -> bool:
        """Active, and subscribed to ``event_type`` (an empty list means every type)."""
        return self.state == "active" and (not self.event_types or event_type in self.event_types)


class WebhookEndpointPage(_Answer):
    items: list[WebhookEndpoint]
    next_cursor: str | None = None


class SigningKey(_Answer):
    """A key valid at the moment asked for, with its secret (never logged)."""

    id: uuid.UUID
    kind: KeyKind
    secret: str


class SigningKeys(_Answer):
    """``GET /api/v1/webhooks/{id}/signing-keys``."""

    keys: list[SigningKey]


# --- case-api: disclosure and notice facts ------------------------------------------------------


class Disclosure(_Answer):
    """``GET /api/v1/cases/{id}/disclosure``: may this organization be told about this domain."""

    allowed: bool


class NoticeFacts(_Answer):
    """What a notice's payload says beyond ids (``GET /api/v1/notice-facts``)."""

    case_id: uuid.UUID
    effective_release_date: date | None = None
    release_date_certainty: ReleaseDateCertainty | None = None
    coordinator: CoordinatorContact | None = None


class NoticeFactsList(_Answer):
    items: list[NoticeFacts]
