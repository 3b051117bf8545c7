from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from agreement_api.access import AGREEMENT_MANAGERS
from agreement_api.agreements.models import ReintegrationDomain
from agreement_api.resolution import service
from agreement_api.resolution.schemas import CoverageRow, Resolution
from shared.auth import Principal, PrincipalDep, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(tags=["resolution"])


@router.get(
    "/resolution",
    response_model=Resolution,
    responses=problem_responses(401, 422),
    summary="Resolve who is told what for a case",
)
async def resolve(
    session: SessionDep,
    _principal: PrincipalDep,
    unit_id: Annotated[uuid.UUID, Query(description="The prison or office where the case lives.")],
    kommunenummer: Annotated[
        str | None, Query(pattern=r"^\d{4}$", description="The responsible municipality.")
    ] = None,
    nav_office_id: Annotated[uuid.UUID | None, Query(description="The case's NAV office.")] = None,
    domains: Annotated[
        list[ReintegrationDomain] | None, Query(description="Domains in question (repeat); none means all.")
    ] = None,
) -> Resolution:
    """The notice rules, recipients and webhook endpoints for a case (any role, incl. `service`):
    from the active agreements between the unit (or its region) and the municipality or NAV
    office (`source: "agreement"`), else the default rule set (`"default"`), or `"none"` with an
    explanation when no recipient exists. Data-sharing profiles are narrowed to the domains asked for."""
    return await service.resolve(
        session,
        unit_id=unit_id,
        kommunenummer=kommunenummer,
        nav_office_id=nav_office_id,
        domains=domains or [],
    )


@router.get(
    "/coverage",
    response_model=list[CoverageRow],
    responses=problem_responses(401, 403),
    summary="Municipalities with cases but no active agreement",
)
async def coverage(
    session: SessionDep, _principal: Annotated[Principal, Depends(require_roles(*AGREEMENT_MANAGERS))]
) -> list[CoverageRow]:
    """Municipalities responsible for open cases that no active agreement covers, most cases first
    (admin, coordinator). Cases are known from case-api's `case.*` events."""
    return await service.coverage(session)
