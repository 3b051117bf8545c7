"""Opaque keyset cursors for list endpoints."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select, inspect, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped

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


async def keyset_page(
    session: AsyncSession,
    query: Select[Any],
    *,
    time_column: Mapped[datetime],
    id_column: Mapped[uuid.UUID],
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows, oldest first on (time, id), and the cursor for the next page."""
    if cursor is not None:
        after_time, after_id = decode_cursor(cursor, aware_datetime, as_uuid)
        query = query.where(tuple_(time_column, id_column) > (after_time, after_id))
    query = query.order_by(time_column, id_column).limit(limit + 1)
    rows = list((await session.execute(query)).scalars().all())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        time_key, id_key = inspect(time_column).key, inspect(id_column).key
        next_cursor = encode_cursor([getattr(last, time_key).isoformat(), str(getattr(last, id_key))])
    return rows[:limit], next_cursor
