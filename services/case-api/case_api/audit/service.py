"""Timeline (every change) and access log (every read of person data). Flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer, access_basis
from case_api.audit.models import AccessLogEntry, TimelineEntry
from shared.context import current_correlation_id
from shared.db import new_id, table_of, utcnow
from shared.pagination import as_uuid, aware_datetime, decode_cursor, encode_cursor


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of a model as JSON-safe values."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    if isinstance(obj, dict):
        return {name: _jsonable(obj.get(name)) for name in fields}
    return {name: _jsonable(getattr(obj, name, None)) for name in fields}


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def record_change(
    session: AsyncSession,
    viewer: Viewer,
    *,
    case_id: uuid.UUID,
    action: str,
    entity: str,
    entity_id: object | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> TimelineEntry:
    entry = TimelineEntry(
        case_id=case_id,
        actor=viewer.subject,
        actor_role=viewer.role.value,
        actor_organization_id=viewer.organization_id,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
        correlation_id=current_correlation_id(),
    )
    session.add(entry)
    return entry


async def record_access(
    session: AsyncSession,
    viewer: Viewer,
    *,
    reads: Iterable[tuple[uuid.UUID, uuid.UUID | None]],
    what: str,
    basis: str | None = None,
) -> int:
    """Log reads of person data: one row per (person, case) pair read."""
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "at": now,
            "person_id": person_id,
            "case_id": case_id,
            "actor": viewer.subject,
            "actor_role": viewer.role.value,
            "actor_organization_id": viewer.organization_id,
            "what": what,
            "basis": basis or access_basis(viewer),
            "correlation_id": current_correlation_id(),
        }
        for person_id, case_id in reads
    ]
    if rows:
        await session.execute(insert(table_of(AccessLogEntry)), rows)
    return len(rows)


async def _page(
    session: AsyncSession,
    model: type[TimelineEntry] | type[AccessLogEntry],
    condition: ColumnElement[bool],
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """Rows keyset-paginated on (at, id), oldest or newest first."""
    conditions = [condition]
    if cursor is not None:
        last_at, last_id = decode_cursor(cursor, aware_datetime, as_uuid)
        if newest_first:
            conditions.append(
                or_(col(model.at) < last_at, and_(col(model.at) == last_at, col(model.id) < last_id))
            )
        else:
            conditions.append(
                or_(col(model.at) > last_at, and_(col(model.at) == last_at, col(model.id) > last_id))
            )
    order = (col(model.at).desc(), col(model.id).desc()) if newest_first else (col(model.at), col(model.id))
    query = select(model).where(*conditions).order_by(*order).limit(limit + 1)
    rows: list[Any] = list((await session.execute(query)).scalars().all())
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor([last.at.isoformat(), str(last.id)])
    return rows[:limit], next_cursor


async def timeline_page(
    session: AsyncSession, *, case_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> tuple[list[TimelineEntry], str | None]:
    """The changes to a case, oldest first."""
    return await _page(
        session, TimelineEntry, col(TimelineEntry.case_id) == case_id, limit=limit, cursor=cursor
    )


async def access_log_page(
    session: AsyncSession,
    *,
    case_id: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AccessLogEntry], str | None]:
    """The reads of a case's or a person's data, newest first.

    Newest first because reading an access log is itself logged: oldest first, a client paging
    through would keep finding its own new reads at the end and never reach it."""
    if (case_id is None) == (person_id is None):
        raise ValueError("give exactly one of case_id and person_id")
    condition = (
        col(AccessLogEntry.case_id) == case_id
        if case_id is not None
        else col(AccessLogEntry.person_id) == person_id
    )
    return await _page(session, AccessLogEntry, condition, limit=limit, cursor=cursor, newest_first=True)
