from __future__ import annotations

from fastapi import APIRouter, Depends

from agreement_api.agreements.router import router as agreements_router
from agreement_api.organizations.router import router as organizations_router
from agreement_api.webhooks.router import router as webhooks_router
from shared.app import require_json_body
from shared.routers import identity_router

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json_body)])
api_router.include_router(identity_router())
api_router.include_router(organizations_router)
api_router.include_router(agreements_router)
api_router.include_router(webhooks_router)
