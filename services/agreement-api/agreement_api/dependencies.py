"""Service-wide dependencies for agreement-api."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from agreement_api.models import AgreementIdempotency
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.idempotency import Idempotency, IdempotencyKeyHeader, parse_key


async def get_idempotency(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    key: str | None = IdempotencyKeyHeader,
) -> Idempotency:
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    return Idempotency(
        session=session,
        model=AgreementIdempotency,
        principal=principal.subject,
        key=parse_key(key),
        request=request,
        ttl=ttl,
    )


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
