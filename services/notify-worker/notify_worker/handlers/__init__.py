"""Registry: event type -> handler. One module per message type.

A handler runs inside the consumer's unit of work and never commits; raising rolls back the
whole message (including its inbox row) so it is redelivered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import EventEnvelope

EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]

HANDLERS: dict[str, EventHandler] = {}


def handles(event_type: str) -> Callable[[EventHandler], EventHandler]:
    def register(handler: EventHandler) -> EventHandler:
        if event_type in HANDLERS:
            raise ValueError(f"{event_type} already has a handler")
        HANDLERS[event_type] = handler
        return handler

    return register


def load_handlers() -> None:
    """Import the handler modules so they register themselves."""
    from notify_worker.handlers import agreement_events, case_events  # noqa: F401
