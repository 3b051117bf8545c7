"""notify-worker's events (docs/asyncapi.yaml). Ids, dates and states; the only names they ever
carry are the recipient's own staff named in an accepted receipt, never the inmate's.

The schedule's events (``notice.held``, ``released``, ``cancelled``) are emitted in
:mod:`notify_worker.notices.service`; delivery, receipts, escalation and endpoint alerts use
:func:`emit_notice` and :func:`emit`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import NotifyNotice
from shared.events import EventEnvelope
from shared.outbox import add_event

NOTICE_DELIVERED = "notice.delivered.v1"  # at least one endpoint of the recipient answered 2xx
NOTICE_DEAD = "notice.dead.v1"  # nothing could be delivered: the coordinator must act
NOTICE_RECEIPT_RECEIVED = "notice.receipt_received.v1"
NOTICE_RECEIPT_ACCEPTED = "notice.receipt_accepted.v1"  # case-api adds the contact to the group
NOTICE_RECEIPT_REJECTED = "notice.receipt_rejected.v1"
NOTICE_ESCALATED = "notice.escalated.v1"  # no accepted/rejected receipt by the deadline
ENDPOINT_DELIVERY_DISABLED = "notice.endpoint_disabled.v1"  # the worker disabled a failing endpoint


def notice_data(notice: NotifyNotice) -> dict[str, Any]:
    """The references every notice event carries."""
    return {
        "notice_id": str(notice.id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(notice.recipient_organization_id),
        "kind": notice.kind.value,
        "milestone_days": notice.milestone_days,
    }


def emit(session: AsyncSession, event_type: str, *, subject: str, **data: Any) -> EventEnvelope:
    return add_event(
        session, NotifyOutbox, type=event_type, source="notify-worker", subject=subject, data=data
    )


def emit_notice(session: AsyncSession, event_type: str, notice: NotifyNotice, **extra: Any) -> EventEnvelope:
    """A notice event about ``notice`` (subject ``case/{id}``, so it sorts with the case's events)."""
    return emit(session, event_type, subject=f"case/{notice.case_id}", **notice_data(notice), **extra)
