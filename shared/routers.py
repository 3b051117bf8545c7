"""Small routers every service mounts under its version prefix."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from shared.auth import PrincipalDep, Role
from shared.errors import problem_responses
from shared.identifiers import mask_identity_numbers


class Me(BaseModel):
    subject: str
    role: Role
    organization_id: str | None
    scopes: list[str]


def identity_router() -> APIRouter:
    router = APIRouter(tags=["identity"])

    @router.get("/me", response_model=Me, responses=problem_responses(401), summary="Who am I")
    async def me(principal: PrincipalDep) -> Me:
        """The caller as the service sees it after verifying the bearer token."""
        return Me(
            subject=mask_identity_numbers(principal.subject),  # some providers put the fnr in sub
            role=principal.role,
            organization_id=principal.organization_id,
            scopes=sorted(principal.scopes),
        )

    return router
