"""Timeline (every change) and access log (every read of person data). Flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer, access_basis
from case_api.audit.models import AccessLogEntry, TimelineEntry
from shared.context import current_correlation_id
from shared.db import new_id, utcnow


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
        await session.execute(insert(AccessLogEntry), rows)
    return len(rows)
