"""The notices domain's tables: the case read model, the notice schedule and what each recipient
was last told.

``notify_case`` is the worker's read model of case-api's cases (the facts carried by the latest
``case.*`` event); ``notify_notice`` is the notice schedule: one row per recipient and milestone
(or per change notice), with its state, hold reason and claim; ``notify_told`` is, per case and
recipient, the date the latest delivered notice announced. See docs/notices.md.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Index, Integer, text
from sqlmodel import Field, SQLModel

from notify_worker.receipts.models import ReceiptStatus
from shared.contracts.recipients import RecipientKind
from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow


class AgreementSource(StrEnum):
    AGREEMENT = "agreement"
    DEFAULT = "default"


class NoticeKind(StrEnum):
    MILESTONE = "milestone"  # n days before release
    CHANGE = "change"  # the release date moved after a milestone notice was delivered


class NoticeState(StrEnum):
    SCHEDULED = "scheduled"  # waits for due_at
    HELD = "held"  # may not be sent yet (see HoldReason)
    CLAIMED = "claimed"  # a delivery worker has it
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    DEAD = "dead"  # delivery gave up


PENDING_STATES = (NoticeState.SCHEDULED, NoticeState.HELD)


class HoldReason(StrEnum):
    NO_CONSENT = "no_consent"
    MUNICIPALITY_UNKNOWN = "municipality_unknown"
    MUNICIPALITY_DISPUTED = "municipality_disputed"
    KOMMUNELOS = "kommunelos"


class NotifyCase(SQLModel, table=True):
    """The facts of one case as the latest ``case.*`` event told them."""

    __tablename__ = "notify_case"

    case_id: uuid.UUID = Field(primary_key=True)
    status: str = Field(max_length=32)
    current_unit_id: uuid.UUID
    release_destination: str = Field(max_length=32)
    responsible_kommunenummer: str | None = Field(default=None, max_length=4)
    municipality_status: str = Field(max_length=32)
    nav_office_id: uuid.UUID | None = Field(default=None)
    effective_release_date: date | None = Field(default=None)
    last_event_at: datetime = Field(sa_type=UTCDateTime)


_notice_version = Column("version", Integer, nullable=False)
_AWAITING_ANSWER = (
    "state = 'delivered' AND escalated_at IS NULL AND receipt_due_at IS NOT NULL"
    " AND (receipt_status IS NULL OR receipt_status = 'received')"
)
_DEAD_UNESCALATED = "state = 'dead' AND escalated_at IS NULL AND dead_at IS NOT NULL"


class NotifyNotice(SQLModel, table=True):
    """One notice to one recipient about one case."""

    __tablename__ = "notify_notice"
    __table_args__ = (
        # At most one milestone notice per case, recipient and milestone.
        Index(
            "uq_notify_notice_milestone",
            "case_id",
            "recipient_organization_id",
            "kind",
            "milestone_days",
            unique=True,
            postgresql_where=text("kind = 'milestone'"),
            sqlite_where=text("kind = 'milestone'"),
        ),
        # The claim query: scheduled notices by due time.
        Index(
            "ix_notify_notice_due",
            "due_at",
            postgresql_where=text("state = 'scheduled'"),
            sqlite_where=text("state = 'scheduled'"),
        ),
        Index("ix_notify_notice_claimed", "claimed_at", postgresql_where=text("state = 'claimed'")),
        # The escalation queries: delivered notices still waiting for an answer, by receipt
        # deadline; dead notices not yet escalated, by death. Answered and escalated notices drop out.
        Index(
            "ix_notify_notice_receipt_due",
            "receipt_due_at",
            postgresql_where=text(_AWAITING_ANSWER),
            sqlite_where=text(_AWAITING_ANSWER),
        ),
        Index(
            "ix_notify_notice_dead_unescalated",
            "dead_at",
            postgresql_where=text(_DEAD_UNESCALATED),
            sqlite_where=text(_DEAD_UNESCALATED),
        ),
        Index("ix_notify_notice_recipient_state", "recipient_organization_id", "state"),
        # Lists by state (the ops surface) and the claim query's generic plan (state as a parameter).
        Index("ix_notify_notice_state_due", "state", "due_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(index=True)
    recipient_organization_id: uuid.UUID
    recipient_kind: RecipientKind = Field(sa_type=enum_type(RecipientKind))
    agreement_source: AgreementSource = Field(sa_type=enum_type(AgreementSource))
    agreement_id: uuid.UUID | None = Field(default=None)
    agreement_version: int | None = Field(default=None)
    kind: NoticeKind = Field(sa_type=enum_type(NoticeKind))
    milestone_days: int | None = Field(default=None, description="Null for change notices.")
    business_days: bool = Field(default=False)
    release_date: date = Field(description="The release date the notice announces.")
    due_at: datetime = Field(sa_type=UTCDateTime)
    state: NoticeState = Field(default=NoticeState.SCHEDULED, sa_type=enum_type(NoticeState))
    hold_reason: HoldReason | None = Field(default=None, sa_type=enum_type(HoldReason))
    receipt_deadline_days: int
    profile: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Fixed when the notice is claimed, so every retry sends the same bytes.
    release_date_certainty: str | None = Field(default=None, max_length=32)
    coordinator_contact: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dead_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # delivered_at + receipt_deadline_days; no accepted/rejected receipt by then: escalation.
    receipt_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    receipt_status: ReceiptStatus | None = Field(default=None, sa_type=enum_type(ReceiptStatus))
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_notice_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _notice_version}


class NotifyTold(SQLModel, table=True):
    """What one recipient was last told about one case: the release date of the notice delivered
    to it last (by the moment of its first 2xx), that notice, and that moment.

    Written only in the transaction that marks a notice delivered (notify_worker.notices.told), so
    receipts, escalation or anything else that touches a notice never move it; the change-notice
    rule reads nothing else."""

    __tablename__ = "notify_told"

    case_id: uuid.UUID = Field(primary_key=True)
    recipient_organization_id: uuid.UUID = Field(primary_key=True)
    release_date: date = Field(description="The release date the recipient was last told.")
    notice_id: uuid.UUID = Field(foreign_key="notify_notice.id", description="The notice that told it.")
    told_at: datetime = Field(sa_type=UTCDateTime, description="That notice's delivered_at (its first 2xx).")
