from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from case_api.access import ViewerDep, load_case_for_change
from case_api.cases.router import case_etag, case_response
from case_api.cases.schemas import CaseRead
from case_api.municipalities import service
from case_api.municipalities.schemas import MunicipalityChange, MunicipalityList, MunicipalityRead
from shared import municipalities as catalog
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match
from shared.openapi import response_headers

router = APIRouter(tags=["municipalities"])


@router.get(
    "/municipalities",
    response_model=MunicipalityList,
    responses=problem_responses(401, 422),
    summary="List current municipalities",
)
async def list_municipalities(
    _principal: PrincipalDep,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Part of the name (any case) or the start of the number."),
    ] = None,
) -> MunicipalityList:
    """Norway's municipalities in the bundled classification, by number, with the date it took effect."""
    return MunicipalityList(
        valid_from=catalog.VALID_FROM,
        classification=catalog.CLASSIFICATION,
        items=[
            MunicipalityRead(kommunenummer=m.kommunenummer, name=m.name, county_code=m.county_code)
            for m in catalog.search(q)
        ],
    )


@router.put(
    "/cases/{case_id}/municipality",
    response_model=CaseRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Set the case's municipalities",
)
@response_headers("ETag")
async def set_municipality(
    case_id: uuid.UUID, body: MunicipalityChange, if_match: IfMatch, session: SessionDep, viewer: ViewerDep
) -> Response:
    """Set the registered, intended and responsible municipality and where responsibility stands.
    Numbers must be current municipality numbers; proposed and confirmed need a responsible
    municipality, kommunelos forbids one, disputed needs a note. Needs `If-Match` with the case's ETag."""
    case = await load_case_for_change(session, viewer, case_id)
    check_if_match(if_match, case_etag(case))
    case = await service.set_municipality(session, viewer=viewer, case=case, data=body)
    return await case_response(session, case)
