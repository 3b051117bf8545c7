"""notify-worker's events, built from their contracts in :mod:`shared.contracts.events`. Ids, dates and states; the only names they ever
carry are the recipient's own staff named in an accepted receipt, never the inmate's.

The schedule's events (``notice.held``, ``released``, ``cancelled``) are emitted in
:mod:`notify_worker.notices.service`; delivery, receipts, escalation and endpoint alerts use
:func:`emit_notice` and :func:`emit`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import NoticeKind
from shared.contracts.events import EventPayload
from shared.events import EventEnvelope
from shared.outbox import add_event, add_events


class NoticeRef(Protocol):
    """The columns of a notice every notice event names (an ORM row or a Core row)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def case_id(self) -> uuid.UUID: ...
    @property
    def recipient_organization_id(self) -> uuid.UUID: ...
    @property
    def kind(self) -> NoticeKind: ...
    @property
    def milestone_days(self) -> int | None: ...


def notice_data(notice: NoticeRef) -> dict[str, Any]:
    """The references every notice event carries."""
    return {
        "notice_id": notice.id,
        "case_id": notice.case_id,
        "recipient_organization_id": notice.recipient_organization_id,
        "kind": notice.kind.value,
        "milestone_days": notice.milestone_days,
    }


def emit(session: AsyncSession, payload: EventPayload, *, subject: str) -> EventEnvelope:
    return add_event(session, NotifyOutbox, payload, subject=subject)


def emit_notice(
    session: AsyncSession, contract: type[EventPayload], notice: NoticeRef, **extra: Any
) -> EventEnvelope:
    """A ``contract`` event about ``notice`` (subject ``case/{id}``, so it sorts with the case's
    events)."""
    return emit(session, contract(**notice_data(notice), **extra), subject=f"case/{notice.case_id}")


def notice_event(contract: type[EventPayload], notice: NoticeRef, **extra: Any) -> tuple[EventPayload, str]:
    """:func:`emit_notice`'s event and subject, to stage with others by :func:`emit_all`."""
    return contract(**notice_data(notice), **extra), f"case/{notice.case_id}"


async def emit_all(session: AsyncSession, events: Sequence[tuple[EventPayload, str]]) -> list[EventEnvelope]:
    """Stage many (event, subject) pairs in one statement; their envelopes, in order."""
    return await add_events(session, NotifyOutbox, events)
