"""What the ops surface shows of a notice: ids, dates and states only, never personal data."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from notify_worker.models import AgreementSource, HoldReason, NoticeKind, NoticeState, RecipientKind


class NoticeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    case_id: uuid.UUID
    recipient_organization_id: uuid.UUID
    recipient_kind: RecipientKind
    agreement_source: AgreementSource
    agreement_id: uuid.UUID | None
    agreement_version: int | None
    kind: NoticeKind
    milestone_days: int | None = Field(description="Days before release; null for a change notice.")
    business_days: bool
    release_date: date = Field(description="The release date the notice announces.")
    due_at: datetime = Field(description="08:00 Europe/Oslo on the due date, in UTC; now if that passed.")
    state: NoticeState
    hold_reason: HoldReason | None
    receipt_deadline_days: int
    profile: dict[str, Any] = Field(description="The data-sharing profile: domains and fields.")
    claimed_by: str | None
    claimed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class NoticeList(BaseModel):
    items: list[NoticeRead]
