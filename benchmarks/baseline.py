"""The bare baseline: FastAPI + asyncpg, one INSERT and one SELECT by primary key.

Run by the suite as ``uvicorn benchmarks.baseline:app`` (one worker) with ``BENCH_BASELINE_DSN``
pointing at the scratch database. Same pool size as case-api's default (10), JSON in and out,
a validated request body: the framework and driver cost without case-api's work.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

POOL_SIZE = 10

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_item (
    id uuid PRIMARY KEY,
    person_id uuid NOT NULL,
    unit_id uuid NOT NULL,
    planning_basis text NOT NULL,
    created_at timestamptz NOT NULL
)
"""


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: uuid.UUID
    current_unit_id: uuid.UUID
    planning_basis: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(os.environ["BENCH_BASELINE_DSN"], min_size=1, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        await conn.execute(CREATE_TABLE)
    app.state.pool = pool
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/items", status_code=201)
async def create_item(body: ItemCreate) -> dict[str, Any]:
    item_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with app.state.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO bench_item (id, person_id, unit_id, planning_basis, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            item_id,
            body.person_id,
            body.current_unit_id,
            body.planning_basis,
            now,
        )
    return {
        "id": str(item_id),
        "person_id": str(body.person_id),
        "current_unit_id": str(body.current_unit_id),
        "planning_basis": body.planning_basis,
        "created_at": now.isoformat(),
    }


@app.get("/items/{item_id}")
async def read_item(item_id: uuid.UUID) -> dict[str, Any]:
    async with app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, person_id, unit_id, planning_basis, created_at FROM bench_item WHERE id = $1",
            item_id,
        )
    if row is None:
        raise HTTPException(status_code=404)
    return {
        "id": str(row["id"]),
        "person_id": str(row["person_id"]),
        "current_unit_id": str(row["unit_id"]),
        "planning_basis": row["planning_basis"],
        "created_at": row["created_at"].isoformat(),
    }
