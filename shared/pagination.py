"""Opaque keyset cursors for list endpoints."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def aware_datetime(value: Any) -> datetime:
    """Cursor parser: an ISO datetime that carries its timezone."""
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("naive datetime in cursor")
    return parsed


def iso_date(value: Any) -> date:
    return date.fromisoformat(str(value))


def as_uuid(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))


def decode_cursor(cursor: str, *parsers: Callable[[Any], Any], length: int | None = None) -> list[Any]:
    """The values in a cursor, each run through its parser; any defect is a 400 naming the cursor."""
    expected = len(parsers) if parsers else length
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != expected:
            raise ValueError("wrong shape")
        return [parse(value) for parse, value in zip(parsers, values, strict=True)] if parsers else values
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not valid", invalid_param="cursor") from exc
