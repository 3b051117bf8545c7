from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse

from agreement_api.organizations import service
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.organizations.schemas import (
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
    ServiceArea,
)
from shared.auth import Principal, PrincipalDep, Role, require_roles
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
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


def organization_etag(organization: Organization) -> str:
    return etag_for(f"organization-{organization.id}", organization.version)


async def organization_response(
    session: SessionDep, organization: Organization, *, status_code: int = 200
) -> JSONResponse:
    read = OrganizationRead.model_validate(organization)
    read.serves_kommunenummer = await service.service_area(session, organization.id)
    return JSONResponse(
        read.model_dump(mode="json"),
        status_code=status_code,
        headers={"ETag": organization_etag(organization)},
    )


@router.get("/{organization_id}", response_model=OrganizationRead, responses=problem_responses(401, 404))
@response_headers("ETag")
async def get_organization(
    organization_id: uuid.UUID, session: SessionDep, _principal: PrincipalDep
) -> Response:
    """One organization, with its `ETag` and, for a NAV office, the municipalities it serves."""
    return await organization_response(session, await service.get(session, organization_id=organization_id))


@router.patch(
    "/{organization_id}",
    response_model=OrganizationRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
)
@response_headers("ETag")
async def update_organization(
    organization_id: uuid.UUID,
    body: OrganizationUpdate,
    if_match: IfMatch,
    session: SessionDep,
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> Response:
    """Change an organization (admin). Needs `If-Match`; emits `organization.changed.v1`."""
    organization = await service.get(session, organization_id=organization_id)
    check_if_match(if_match, organization_etag(organization))
    organization = await service.update(session, organization=organization, data=body)
    return await organization_response(session, organization)


@router.put(
    "/{organization_id}/service-area",
    response_model=OrganizationRead,
    responses=problem_responses(401, 403, 404, 412, 415, 422, 428),
)
@response_headers("ETag")
async def set_service_area(
    organization_id: uuid.UUID,
    body: ServiceArea,
    if_match: IfMatch,
    session: SessionDep,
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> Response:
    """Replace the municipalities a NAV office serves (admin). Needs `If-Match`."""
    organization = await service.get(session, organization_id=organization_id)
    check_if_match(if_match, organization_etag(organization))
    await service.set_service_area(session, organization=organization, kommunenummer=body.kommunenummer)
    return await organization_response(session, organization)


@router.post(
    "",
    response_model=OrganizationRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 409, 415, 422),
)
@response_headers("ETag", "Location")
async def create_organization(
    body: OrganizationCreate,
    session: SessionDep,
    response: Response,
    _principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
) -> OrganizationRead:
    """Register an organization (admin). 409 names the existing one when identifiers clash."""
    organization = await service.create(session, data=body)
    response.headers["Location"] = f"/api/v1/organizations/{organization.id}"
    response.headers["ETag"] = organization_etag(organization)
    return OrganizationRead.model_validate(organization)
