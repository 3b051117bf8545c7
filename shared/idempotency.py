"""``Idempotency-Key`` on creates: the same key and body replay the first answer; the same key
with another body is a 422. The stored answer commits in the same transaction as the creation,
so a replay never points at something that was rolled back."""

from __future__ import annotations

import hashlib
import json
import re
import types
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col

from shared.auth import PrincipalDep
from shared.db import JSONType, SessionDep, UTCDateTime, utcnow
from shared.errors import BadRequest, UnprocessableEntity

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class IdempotencyRecord(SQLModel):
    principal: str = Field(primary_key=True, max_length=200)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(sa_type=JSONType)
    location: str | None = Field(default=None, max_length=500)
    etag: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


def idempotency_model(prefix: str, module: str) -> type[IdempotencyRecord]:
    def body(ns: dict[str, Any]) -> None:
        ns["__tablename__"] = f"{prefix}_idempotency"
        ns["__module__"] = module

    name = "".join(part.capitalize() for part in prefix.split("_")) + "Idempotency"
    return types.new_class(name, (IdempotencyRecord,), {"table": True}, body)


class IdempotencyReused(UnprocessableEntity):
    title = "Idempotency-Key reused"


class Idempotency:
    """Per-request helper: ``replay()`` before creating, ``respond()`` after."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        model: type[IdempotencyRecord],
        principal: str,
        key: str | None,
        request: Request,
        ttl: timedelta,
    ) -> None:
        self.session = session
        self.model = model
        self.principal = principal
        self.key = key
        self.request = request
        self.ttl = ttl
        self._hash: str | None = None

    def _request_hash(self, body: BaseModel | dict[str, Any] | None) -> str:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        canonical = json.dumps(
            {"method": self.request.method, "path": self.request.url.path, "body": payload},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    async def replay(self, body: BaseModel | dict[str, Any] | None) -> JSONResponse | None:
        """The stored answer for this key, or None when the request is new (or has no key)."""
        if self.key is None:
            return None
        self._hash = self._request_hash(body)
        model = self.model
        record = (
            await self.session.execute(
                select(model).where(col(model.principal) == self.principal, col(model.key) == self.key)
            )
        ).scalar_one_or_none()
        if record is None:
            return None
        if record.created_at < utcnow() - self.ttl:
            await self.session.delete(record)
            await self.session.flush()
            return None
        if record.request_hash != self._hash:
            raise IdempotencyReused("This Idempotency-Key was used for a different request")
        headers = {"Idempotent-Replayed": "true"}
        if record.location:
            headers["Location"] = record.location
        if record.etag:
            headers["ETag"] = record.etag
        return JSONResponse(record.body, status_code=record.status_code, headers=headers)

    async def respond(
        self,
        result: BaseModel,
        *,
        status_code: int = 201,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        """The answer to send, stored under the key in the current transaction."""
        body = result.model_dump(mode="json")
        if self.key is not None:
            assert self._hash is not None, "call replay() first"
            self.session.add(
                self.model(
                    principal=self.principal,
                    key=self.key,
                    request_hash=self._hash,
                    status_code=status_code,
                    body=body,
                    location=location,
                    etag=(headers or {}).get("ETag"),
                    created_at=utcnow(),
                )
            )
            await self.session.flush()
        out = dict(headers or {})
        if location:
            out["Location"] = location
        return JSONResponse(body, status_code=status_code, headers=out)


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.match(value):
        raise BadRequest(
            "Idempotency-Key must be 1-200 visible ASCII characters", invalid_param="Idempotency-Key"
        )
    return value


IdempotencyKeyHeader = Header(
    None,
    alias="Idempotency-Key",
    description="Makes a create safe to retry: the same key and body return the first answer.",
)


def idempotency_dependency(model: type[IdempotencyRecord]) -> Callable[..., Awaitable[Idempotency]]:
    """A service's ``Idempotency`` dependency: keys stored in its own ``model`` table, kept for the
    app's ``idempotency_ttl_hours``."""

    async def get_idempotency(
        request: Request,
        session: SessionDep,
        principal: PrincipalDep,
        key: str | None = IdempotencyKeyHeader,
    ) -> Idempotency:
        ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
        return Idempotency(
            session=session,
            model=model,
            principal=principal.subject,
            key=parse_key(key),
            request=request,
            ttl=ttl,
        )

    return get_idempotency
