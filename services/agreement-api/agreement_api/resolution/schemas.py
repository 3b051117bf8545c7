from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from agreement_api.agreements.models import AgreementLevel
from agreement_api.agreements.schemas import DataSharingProfile, Escalation, Milestone
from shared.directory import OrganizationType


class ResolvedAgreement(BaseModel):
    id: uuid.UUID
    title: str
    version: int = Field(description="The agreement version the rules come from.")
    level: AgreementLevel
    parties: list[uuid.UUID]


class ResolvedRule(BaseModel):
    """A notice rule with its recipient resolved to one organization for this case."""

    agreement_id: uuid.UUID | None = Field(description="Null for the default rule set.")
    rule_id: uuid.UUID | None = Field(description="Null for the default rule set.")
    recipient_organization_id: uuid.UUID
    recipient_organization_type: OrganizationType | None = Field(
        description="The recipient's type in the directory, whether the rule named it by type or by id; "
        "null only for an organization the directory no longer holds."
    )
    milestones: list[Milestone]
    event_types: list[str]
    receipt_deadline_days: int
    escalation: Escalation | None
    data_sharing_profile: DataSharingProfile = Field(description="Domains narrowed to those requested.")


class ResolvedEndpoint(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    event_types: list[str]


class Resolution(BaseModel):
    """Who must be told what for a case: from active agreements, else the default rule set."""

    source: Literal["agreement", "default", "none"]
    explanation: str | None = None
    agreements: list[ResolvedAgreement] = Field(default_factory=list)
    rules: list[ResolvedRule] = Field(default_factory=list)
    endpoints: list[ResolvedEndpoint] = Field(default_factory=list)


class CoverageRow(BaseModel):
    kommunenummer: str = Field(examples=["3101"])
    name: str | None = Field(examples=["Halden"])
    open_cases: int
    has_active_agreement: bool = False
