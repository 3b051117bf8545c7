from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from agreement_api.organizations import service
from agreement_api.organizations.models import OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate, OrganizationRead
from shared.auth import Principal, PrincipalDep, Role, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.pagination import Page

router = APIRouter(prefix="/organizations", tags=["organizations"])


@router.get("", response_model=Page[OrganizationRead], responses=problem_responses(400, 401))
async def list_organizations(
    session: SessionDep,
    _principal: PrincipalDep,
    type: OrganizationType | None = None,
    kommunenummer: Annotated[str | None, Query(pattern=r"^\d{4}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> Page[OrganizationRead]:
    """List organizations, optionally by type or kommunenummer, ordered by name."""
    rows, next_cursor = await service.list_page(
        session, type=type, kommunenummer=kommunenummer, limit=limit, cursor=cursor
    )
    return Page(items=[OrganizationRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get("/{organization_id}", response_model=OrganizationRead, responses=problem_responses(401, 404))
async def get_organization(
    organization_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep
) -> OrganizationRead:
    """One organization."""
    return OrganizationRead.model_validate(await service.get(session, organization_id=organization_id))


@router.post(
    "",
    response_model=OrganizationRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 409, 415, 422),
)
async def create_organization(
    body: OrganizationCreate,
    session: SessionDep,
    response: Response,
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> OrganizationRead:
    """Register an organization (admin). 409 names the existing one when identifiers clash."""
    organization = await service.create(session, data=body)
    response.headers["Location"] = f"/api/v1/organizations/{organization.id}"
    return OrganizationRead.model_validate(organization)
