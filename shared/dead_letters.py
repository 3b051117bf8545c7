"""Operators' view of a service's dead-letter queue: how many, which events, and redrive.

Mounted by :func:`shared.app.build_app` on every service that consumes events. The same is on the
command line as ``tilbake dead-letters``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from shared.auth import Principal, Role, require_roles
from shared.bus import MessageBus
from shared.errors import ServiceUnavailable, problem_responses

router = APIRouter(prefix="/api/v1/ops/dead-letters", tags=["operations"])

OperatorDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


class DeadLetterRead(BaseModel):
    """A dead-lettered event by its references; its data is never shown."""

    event_id: str | None = Field(description="Null when the message was not a valid envelope.")
    type: str | None
    subject: str | None
    occurred_at: str | None
    reason: str | None = Field(
        description="The error class of the last failed attempt, or the broker's reason "
        "(`rejected` for a malformed event)."
    )


class DeadLettersRead(BaseModel):
    queue: str
    count: int = Field(description="Messages in the dead-letter queue.")
    items: list[DeadLetterRead] = Field(description="The first messages, oldest first.")


class Redriven(BaseModel):
    queue: str
    redriven: int = Field(description="Messages moved back to the queue, each with a fresh retry schedule.")


def _queue(request: Request) -> tuple[MessageBus, str]:
    queue: str | None = getattr(request.app.state, "consumer_queue", None)
    if queue is None:  # pragma: no cover - mounted only on services that consume
        raise ServiceUnavailable("This service consumes no events")
    bus: MessageBus = request.app.state.bus
    return bus, queue


T = TypeVar("T")


async def _ask(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except Exception as exc:
        raise ServiceUnavailable(
            f"The broker could not be asked for {what}; try again",
            headers={"Retry-After": "5"},
            retryable=True,
            retry_after_seconds=5,
        ) from exc


@router.get(
    "",
    response_model=DeadLettersRead,
    summary="List the dead-letter queue",
    responses=problem_responses(401, 403, 503),
)
async def list_dead_letters(
    request: Request, _principal: OperatorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> DeadLettersRead:
    """How many events this service's consumer gave up on, and the first ``limit`` of them."""
    bus, queue = _queue(request)
    found = await _ask("the dead letters", bus.dead_letters(queue, limit=limit))
    return DeadLettersRead(
        queue=found.queue,
        count=found.count,
        items=[DeadLetterRead(**item.__dict__) for item in found.items],
    )


@router.post(
    "/redrive",
    response_model=Redriven,
    summary="Redrive the dead-letter queue",
    responses=problem_responses(401, 403, 503),
)
async def redrive_dead_letters(
    request: Request, _principal: AdminDep, limit: Annotated[int | None, Query(ge=1, le=100000)] = None
) -> Redriven:
    """Move dead letters (all, or the first ``limit``) back to the consumer's queue. Consumers
    are idempotent, so an event that was in fact handled is recorded once."""
    bus, queue = _queue(request)
    moved = await _ask("a redrive", bus.redrive(queue, limit=limit))
    return Redriven(queue=queue, redriven=moved)
