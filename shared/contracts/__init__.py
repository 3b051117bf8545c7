"""What the services promise each other: every event's payload, every answer one service gives
another, and the rules both sides of a seam must apply alike (docs/architecture.md, Contracts).

Producers build events from these models and consumers parse them with the same models; the
AsyncAPI document (docs/asyncapi.yaml) is generated from them.
"""

from shared.contracts.events import (
    EVENTS,
    EventPayload,
    MalformedEvent,
    parse_event,
)

__all__ = ["EVENTS", "EventPayload", "MalformedEvent", "parse_event"]
