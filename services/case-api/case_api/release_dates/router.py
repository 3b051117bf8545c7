from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from case_api.access import ViewerDep, load_case, load_case_for_change
from case_api.audit import service as audit
from case_api.cases.models import Case
from case_api.cases.router import case_etag
from case_api.release_dates import service
from case_api.release_dates.schemas import (
    CurrentReleaseDates,
    ReleaseDateHistory,
    ReleaseDateHistoryEntry,
    ReleaseDateRead,
    ReleaseDates,
    ReleaseDateSet,
)
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match
from shared.openapi import response_headers

router = APIRouter(prefix="/cases/{case_id}/release-dates", tags=["release_dates"])


def _current(case: Case, current: service.Current) -> ReleaseDates:
    return ReleaseDates(
        case_id=case.id,
        effective_release_date=case.effective_release_date,
        current=CurrentReleaseDates(
            **{kind.value: ReleaseDateRead.model_validate(current[kind]) for kind in current}
        ),
    )


def _respond(case: Case, body: ReleaseDates) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), headers={"ETag": case_etag(case)})


@router.get(
    "",
    response_model=ReleaseDateHistory,
    responses=problem_responses(401, 403, 404),
    summary="Read the release dates",
)
@response_headers("ETag")
async def get_release_dates(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> Response:
    """The current date of each kind, the effective release date and every date ever recorded (who,
    when, which date it replaced), newest first. The `ETag` is the case's, for a later change."""
    case = await load_case(session, viewer, case_id)
    current = await service.current_dates(session, case.id)
    entries = await service.history(session, case.id)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="release_dates")
    body = ReleaseDateHistory(
        **_current(case, current).model_dump(),
        history=[
            ReleaseDateHistoryEntry(
                **ReleaseDateRead.model_validate(row).model_dump(),
                previous_date=previous,
                superseded_at=row.superseded_at,
                current=row.superseded_at is None,
            )
            for row, previous in entries
        ],
    )
    return _respond(case, body)


@router.post(
    "",
    response_model=ReleaseDates,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Set a release date",
)
@response_headers("ETag")
async def set_release_date(
    case_id: uuid.UUID, body: ReleaseDateSet, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Record a new date of one kind; the kind's earlier date stays in the history. Only cases in
    intake, planning or release_ready take dates. Dates must keep earliest <= two_thirds <= expected, may
    not lie before the case opened or more than 30 years ahead, and a confirmed date must be certain.
    Answers the current dates and the case's new `ETag`. Needs `If-Match` with the case's ETag."""
    case = await load_case_for_change(session, viewer, case_id)
    check_if_match(if_match, case_etag(case))
    current = await service.set_release_date(session, viewer=viewer, case=case, data=body)
    return _respond(case, _current(case, current))
