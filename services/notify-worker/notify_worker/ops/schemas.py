"""What the ops surface shows of notices, deliveries and attempts: ids, dates and states; of people
only the coordinator's work contact that the notice carried (staff, never the inmate)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from notify_worker.deliveries.models import DeliveryState
from notify_worker.notices.models import AgreementSource, HoldReason, NoticeKind, NoticeState, RecipientKind
from notify_worker.receipts.models import ReceiptStatus
from shared.contracts.events import ReleaseDateCertainty


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
    release_date_certainty: ReleaseDateCertainty | None = Field(
        description="How sure the announced date was when the notice was sent (case-api); null before."
    )
    coordinator_contact: dict[str, Any] | None = Field(
        description="The case's coordinator as the notice told the recipient: name, phone, email."
    )
    delivered_at: datetime | None = Field(description="When the first endpoint of the recipient took it.")
    dead_at: datetime | None = Field(description="When delivery gave up.")
    receipt_due_at: datetime | None = Field(description="delivered_at + receipt_deadline_days.")
    receipt_status: ReceiptStatus | None
    escalated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class NoticeList(BaseModel):
    items: list[NoticeRead]


class DeliveryRead(BaseModel):
    """One notice to one webhook endpoint of its recipient."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    notice_id: uuid.UUID
    endpoint_id: uuid.UUID
    organization_id: uuid.UUID = Field(description="The endpoint's organization: the notice's recipient.")
    url: str = Field(
        description="The URL its latest attempt went to (every attempt takes the endpoint's URL as it is "
        "then); before the first, the endpoint's URL when the delivery was made."
    )
    webhook_id: str = Field(description="`webhook-id`: the same on every attempt and every redelivery.")
    state: DeliveryState
    attempts: int = Field(description="Every attempt ever made, redeliveries included.")
    next_attempt_at: datetime = Field(description="When the next attempt is due (meaningful while pending).")
    last_status: int | None
    last_error_class: str | None
    redeliveries: int = Field(description="How often an operator sent it again.")
    ended_at: datetime | None = Field(description="When it left `pending`; null while pending.")
    created_at: datetime
    updated_at: datetime = Field(
        description="When its state last changed (created, ended, redelivered): while pending, when "
        "its current run of attempts began."
    )


class NoticeDetail(NoticeRead):
    deliveries: list[DeliveryRead]


class AttemptRead(BaseModel):
    """One POST of a delivery, whatever came of it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when nothing was answered.")
    duration_ms: int
    error_class: str | None = Field(description="Null for a 2xx; see docs/notices.md for the classes.")


SINCE_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


class RedeliverSince(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"since": "2027-02-27T08:00:00+01:00"}]}, extra="forbid"
    )

    since: AwareDatetime = Field(
        description=(
            "Every dead letter of the endpoint that ended at or after this moment: an RFC 3339 "
            "date-time with an offset, not before 2000-01-01."
        ),
        examples=["2027-02-27T08:00:00+01:00"],
    )

    @field_validator("since", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        # FastAPI validates the parsed body: a number would otherwise count as seconds since 1970.
        if not isinstance(value, str):
            raise ValueError("since must be an RFC 3339 date-time string")
        return value

    @field_validator("since")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        # No delivery ended before the service existed: an earlier moment (0 read as 1970, year 1
        # that no longer converts to UTC) is a mistake. A later one merely selects nothing.
        if value < SINCE_EARLIEST:
            raise ValueError("since must not be before 2000-01-01T00:00:00Z")
        return value


class Redelivered(BaseModel):
    count: int
    delivery_ids: list[uuid.UUID]
