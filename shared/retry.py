"""Which failures are worth waiting out: a peer or the database that is down, slow or dropped a
connection. Anything else a handler raises is treated as a fault in the message or the code."""

from __future__ import annotations

import asyncio

RETRY_DELAYS_SECONDS = (1.0, 5.0, 30.0, 120.0, 600.0, 1800.0)
"""Waits before each redelivery of a message whose handler failed for a transient reason: about 43
minutes in all, so an outage of a peer or the database of that length loses nothing."""

POISON_ATTEMPTS = 3
"""Attempts for a message whose handler fails for any other reason, before it is dead-lettered."""


class TransientError(Exception):
    """A failure that should pass by itself, such as another service answering 5xx or 503."""


def is_transient(exc: BaseException) -> bool:
    """True for failures that waiting can cure: another service unreachable, slow or answering
    with an error it calls temporary; the database unreachable or its connection dropped."""
    # Imported here: shared.settings reads RETRY_DELAYS_SECONDS, and `tilbake token` loads the
    # settings without needing an HTTP client or SQLAlchemy.
    import httpx
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, TransientError | httpx.TransportError | TimeoutError | asyncio.TimeoutError):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionError | OSError)
