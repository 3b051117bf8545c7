from __future__ import annotations

from fastapi import APIRouter, Depends

from notify_worker.ops.router import router as ops_router
from notify_worker.receipts.router import router as receipts_router
from shared.app import require_json_body
from shared.routers import identity_router

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json_body)])
api_router.include_router(identity_router())
api_router.include_router(ops_router)
api_router.include_router(receipts_router)
