from __future__ import annotations

from fastapi import APIRouter, Depends

from case_api.cases.router import router as cases_router
from case_api.persons.router import router as persons_router
from shared.app import require_json_body
from shared.routers import identity_router

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json_body)])
api_router.include_router(identity_router())
api_router.include_router(persons_router)
api_router.include_router(cases_router)
