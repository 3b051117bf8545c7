"""Correlation id carried from request to event to webhook."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from shared.identifiers import is_valid_national_identity_number

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# What the services generate: a uuid4 as 32 lowercase hex digits. Nothing else is taken from a caller.
_FORMAT = re.compile(r"[0-9a-f]{32}")


def _holds_identity_number(value: str) -> bool:
    return any(is_valid_national_identity_number(value[i : i + 11]) for i in range(len(value) - 10))


def is_correlation_id(value: str) -> bool:
    """A caller's ``X-Request-ID`` is used only in the services' own format, and only when no 11
    digits in it form an identity number: it is echoed, logged and stored in events and audit rows."""
    return bool(_FORMAT.fullmatch(value)) and not _holds_identity_number(value)


def new_correlation_id() -> str:
    while True:
        value = uuid.uuid4().hex
        if not _holds_identity_number(value):  # about one in 5,000 would; the logs would mask it
            return value


def current_correlation_id() -> str | None:
    return correlation_id_var.get()
