"""The receipts domain's table: what a recipient answered to a notice."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel

from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow


class ReceiptStatus(StrEnum):
    RECEIVED = "received"  # the recipient's system has the notice; no answer yet
    ACCEPTED = "accepted"  # the recipient takes it on, naming a contact person and a substitute
    REJECTED = "rejected"  # the recipient declines, with a reason


class NotifyReceipt(SQLModel, table=True):
    """What a recipient answered to a notice. Several per notice (received, then accepted)."""

    __tablename__ = "notify_receipt"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    notice_id: uuid.UUID = Field(foreign_key="notify_notice.id", index=True)
    organization_id: uuid.UUID
    status: ReceiptStatus = Field(sa_type=enum_type(ReceiptStatus))
    # The recipient's own staff (never the inmate): who takes the case on, and who stands in.
    contact: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    substitute: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    reason: str | None = Field(default=None, max_length=2000)
    submitted_by: str = Field(max_length=200, description="The token's subject.")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
