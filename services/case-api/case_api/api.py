from __future__ import annotations

from fastapi import APIRouter, Depends

from case_api.audit.router import router as audit_router
from case_api.cases.router import router as cases_router
from case_api.consents.router import router as consents_router
from case_api.domains.router import router as domains_router
from case_api.group.router import router as group_router
from case_api.market.router import router as market_router
from case_api.municipalities.router import router as municipalities_router
from case_api.notices.router import router as notices_router
from case_api.persons.router import router as persons_router
from case_api.readiness.router import router as readiness_router
from case_api.release_dates.router import router as release_dates_router
from shared.app import require_json_body
from shared.routers import identity_router

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json_body)])
api_router.include_router(identity_router())
api_router.include_router(persons_router)
api_router.include_router(cases_router)
api_router.include_router(release_dates_router)
api_router.include_router(municipalities_router)
api_router.include_router(domains_router)
api_router.include_router(group_router)
api_router.include_router(consents_router)
api_router.include_router(notices_router)
api_router.include_router(readiness_router)
api_router.include_router(audit_router)
api_router.include_router(market_router)
