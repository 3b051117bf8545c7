"""Operators' view of the notice schedule (admin and auditor)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlmodel import col

from notify_worker.models import NotifyNotice
from notify_worker.schemas import NoticeList, NoticeRead
from shared.auth import Principal, Role, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(tags=["notices"])

OPERATORS = (Role.ADMIN, Role.AUDITOR)


@router.get(
    "/cases/{case_id}/notices",
    response_model=NoticeList,
    responses=problem_responses(401, 403),
    summary="The notice schedule of a case",
)
async def case_notices(
    case_id: uuid.UUID,
    session: SessionDep,
    _principal: Annotated[Principal, Depends(require_roles(*OPERATORS))],
) -> NoticeList:
    """Every notice of the case, by due time: recipient, milestone, due time, state and hold
    reason (admin, auditor). An unknown case has an empty schedule."""
    rows = await session.execute(
        select(NotifyNotice)
        .where(col(NotifyNotice.case_id) == case_id)
        .order_by(col(NotifyNotice.due_at), col(NotifyNotice.id))
    )
    return NoticeList(items=[NoticeRead.model_validate(row) for row in rows.scalars()])
