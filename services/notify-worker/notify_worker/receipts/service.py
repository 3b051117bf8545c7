"""Receipts: what a recipient answers to a delivered notice. Flushes, never commits.

A notice takes at most one ``received`` and one final answer (``accepted`` or ``rejected``). A
receiver that retries gets its stored receipt back instead of a conflict, so an answer can be sent
again safely when the first reply was lost; only a *different* second answer is refused. The
notice row is locked while answering, so two answers for one notice are taken one after the other,
and escalation (``FOR UPDATE SKIP LOCKED``) never sees a half-written answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notify_worker.notices.events import emit_notice
from notify_worker.notices.models import NoticeState, NotifyNotice
from notify_worker.receipts.errors import NoticeNotDelivered, NoticeNotFound, ReceiptAlreadyFinal
from notify_worker.receipts.models import NotifyReceipt, ReceiptStatus
from notify_worker.receipts.schemas import AcceptedCreate, ReceivedCreate, RejectedCreate
from shared.auth import RECIPIENT_ROLES, Principal, Role
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.errors import Forbidden

log = structlog.get_logger("notify_worker.receipts")

# Read every notice's receipts; answer none.
RECEIPT_READERS = frozenset({Role.ADMIN, Role.AUDITOR})

EVENT_BY_STATUS: dict[ReceiptStatus, type[contracts.EventPayload]] = {
    ReceiptStatus.RECEIVED: contracts.NoticeReceiptReceived,
    ReceiptStatus.ACCEPTED: contracts.NoticeReceiptAccepted,
    ReceiptStatus.REJECTED: contracts.NoticeReceiptRejected,
}


@dataclass(frozen=True)
class Submitted:
    receipt: NotifyReceipt
    created: bool  # False: an identical answer was already stored and is returned as it was


def _organization_of(principal: Principal) -> uuid.UUID | None:
    if not principal.organization_id:
        return None
    try:
        return uuid.UUID(principal.organization_id)
    except ValueError:
        return None


def _not_found(notice_id: uuid.UUID) -> NoticeNotFound:
    return NoticeNotFound(f"No notice {notice_id} to your organization")


async def _recipients_notice(
    session: AsyncSession, organization_id: uuid.UUID, notice_id: uuid.UUID, *, lock: bool
) -> NotifyNotice:
    # Another organization's notice is "not found", never "forbidden": its existence must not leak.
    query = select(NotifyNotice).where(
        col(NotifyNotice.id) == notice_id, col(NotifyNotice.recipient_organization_id) == organization_id
    )
    if lock:
        query = query.with_for_update()
    notice = (await session.execute(query)).scalar_one_or_none()
    if notice is None:
        raise _not_found(notice_id)
    return notice


def _recipient_organization(principal: Principal, what: str) -> uuid.UUID:
    """The organization a recipient role acts for (``RECIPIENT_ROLES``, the roles that read the
    notice detail view too); 403 for other roles and without an organization."""
    organization_id = _organization_of(principal)
    if principal.role not in RECIPIENT_ROLES:
        raise Forbidden(f"Role {principal.role.value!r} may not {what}: it does not receive notices")
    if organization_id is None:
        raise Forbidden(f"Only the notice's recipient may {what}, with a token naming its organization")
    return organization_id


async def notice_to_answer(session: AsyncSession, principal: Principal, notice_id: uuid.UUID) -> NotifyNotice:
    """The caller's own notice, locked for answering: 403 for a role that receives no notices or a
    token without an organization, 404 if not theirs."""
    organization_id = _recipient_organization(principal, "answer notices")
    return await _recipients_notice(session, organization_id, notice_id, lock=True)


async def notice_to_read(session: AsyncSession, principal: Principal, notice_id: uuid.UUID) -> NotifyNotice:
    """Admins and auditors read any notice's receipts; a recipient only its own."""
    if principal.role in RECEIPT_READERS:
        notice = await session.get(NotifyNotice, notice_id)
        if notice is None:
            raise NoticeNotFound(f"No notice {notice_id}")
        return notice
    organization_id = _recipient_organization(principal, "read receipts")
    return await _recipients_notice(session, organization_id, notice_id, lock=False)


async def receipts_of(session: AsyncSession, notice_id: uuid.UUID) -> list[NotifyReceipt]:
    rows = await session.execute(
        select(NotifyReceipt)
        .where(col(NotifyReceipt.notice_id) == notice_id)
        .order_by(col(NotifyReceipt.received_at), col(NotifyReceipt.id))
    )
    return list(rows.scalars().all())


def _content(data: AcceptedCreate | ReceivedCreate | RejectedCreate) -> dict[str, Any]:
    """The stored columns of an answer besides its status (JSON-ready, so it compares with stored rows)."""
    if isinstance(data, AcceptedCreate):
        return {
            "contact": data.contact.model_dump(mode="json"),
            "substitute": data.substitute.model_dump(mode="json"),
            "reason": None,
        }
    if isinstance(data, RejectedCreate):
        return {"contact": None, "substitute": None, "reason": data.reason}
    return {"contact": None, "substitute": None, "reason": None}


def _same(receipt: NotifyReceipt, status: ReceiptStatus, content: dict[str, Any]) -> bool:
    stored = {"contact": receipt.contact, "substitute": receipt.substitute, "reason": receipt.reason}
    return receipt.status is status and stored == content


def _event_data(receipt: NotifyReceipt, notice: NotifyNotice) -> dict[str, Any]:
    # The recipient's kind lets case-api choose the group role of an accepted receipt's contact.
    data: dict[str, Any] = {"receipt_id": str(receipt.id), "recipient_kind": notice.recipient_kind.value}
    if receipt.status is ReceiptStatus.ACCEPTED:
        data |= {"contact": receipt.contact, "substitute": receipt.substitute}
    elif receipt.status is ReceiptStatus.REJECTED:
        data["reason"] = receipt.reason
    return data


async def submit(
    session: AsyncSession,
    *,
    principal: Principal,
    notice_id: uuid.UUID,
    data: AcceptedCreate | ReceivedCreate | RejectedCreate,
    now: datetime | None = None,
) -> Submitted:
    """Store the recipient's answer, set the notice's ``receipt_status`` and emit its event.

    ``received`` may come any time before a final answer; ``accepted`` and ``rejected`` are final.
    An answer identical to one already stored returns that receipt (``created`` false) and emits
    nothing; any other answer after a final one is a 409."""
    now = now or utcnow()
    notice = await notice_to_answer(session, principal, notice_id)
    if notice.state is not NoticeState.DELIVERED:
        raise NoticeNotDelivered(
            f"Only a delivered notice takes a receipt; this one is {notice.state.value}",
            state=notice.state.value,
        )
    status = ReceiptStatus(data.status)
    content = _content(data)
    existing = await receipts_of(session, notice.id)
    for receipt in existing:
        if _same(receipt, status, content):
            return Submitted(receipt=receipt, created=False)
    final = next((r for r in existing if r.status is not ReceiptStatus.RECEIVED), None)
    if final is not None:
        raise ReceiptAlreadyFinal(
            f"This notice was already {final.status.value}; that answer is final",
            receipt_status=final.status.value,
            receipt_id=str(final.id),
        )
    receipt = NotifyReceipt(
        notice_id=notice.id,
        organization_id=notice.recipient_organization_id,
        status=status,
        submitted_by=principal.subject[:200],
        received_at=now,
        **content,
    )
    session.add(receipt)
    notice.receipt_status = status
    notice.updated_at = now
    await session.flush()
    emit_notice(session, EVENT_BY_STATUS[status], notice, **_event_data(receipt, notice))
    log.info("receipt.stored", notice_id=str(notice.id), receipt_id=str(receipt.id), status=status.value)
    return Submitted(receipt=receipt, created=True)
