"""The same-work limit: case-api's create and read, the same statements on the same tables in the
same transactions, written in raw asyncpg in a bare FastAPI app.

Run by the suite as ``uvicorn benchmarks.samework:app`` (one worker) with ``BENCH_SAMEWORK_DSN``
and ``BENCH_SAMEWORK_REGION`` (the region a coordinator acts for; no token is checked). Beside the
one-statement baseline it shows what case-api's own SQL work costs without its framework layers:
the ORM, the dependency system, token verification, the problem handlers.

The statements are case-api's own text (``case_api.cases.opening`` and ``case_api.cases.reads``),
so the two cannot drift: create, one statement inserting the case, its timeline entry, its outbox
event and its eleven domains, gated on the person; read, one statement selecting the case with its
person in the region and inserting the access-log row; each in a transaction of its own.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from benchmarks.baseline import ItemCreate as CaseCreate  # the same body, validated the same way
from case_api.cases.opening import OPEN_CASE
from case_api.cases.reads import READ_CASE
from case_api.domains.models import Domain

POOL_SIZE = 10  # case-api's default
ACTOR = "bench-coordinator"

SELECT_UNIT = "SELECT parent_id FROM case_organization_ref WHERE id = $1 AND type = 'prison'"
DOMAINS = [domain.value for domain in Domain]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_SAMEWORK_DSN"], min_size=1, max_size=POOL_SIZE
    )
    app.state.region = uuid.UUID(os.environ["BENCH_SAMEWORK_REGION"])
    app.state.units = {}  # unit id -> region id, as case-api's organization facts cache
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _problem(status: int, detail: str) -> Response:
    return JSONResponse({"status": status, "detail": detail}, status_code=status)


def _read(row: asyncpg.Record, person: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "person": person,
        "current_unit_id": str(row["current_unit_id"]),
        "region_id": str(row["region_id"]),
        "planning_basis": row["planning_basis"],
        "opened_at": row["opened_at"].isoformat(),
        "status": row["status"],
        "status_changed_at": row["status_changed_at"].isoformat(),
        "priority_groups": json.loads(row["priority_groups"]),
        "release_destination": row["release_destination"],
        "destination_note": row["destination_note"],
        "municipality": {
            "registered_kommunenummer": row["registered_kommunenummer"],
            "intended_kommunenummer": row["intended_kommunenummer"],
            "responsible_kommunenummer": row["responsible_kommunenummer"],
            "status": row["municipality_status"],
            "note": row["municipality_note"],
        },
        "nav_office_id": str(row["nav_office_id"]) if row["nav_office_id"] else None,
        "effective_release_date": row["effective_release_date"].isoformat()
        if row["effective_release_date"]
        else None,
        "closed_at": row["closed_at"].isoformat() if row["closed_at"] else None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "version": row["version"],
    }


@app.post("/api/v1/cases", status_code=201)
async def open_case(body: CaseCreate) -> Response:
    now = datetime.now(UTC)
    case_id, correlation = uuid.uuid4(), uuid.uuid4().hex
    pool: asyncpg.Pool = app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        region = app.state.units.get(body.current_unit_id)
        if region is None:
            region = await conn.fetchval(SELECT_UNIT, body.current_unit_id)
            if region != app.state.region:
                return _problem(403, "The unit is outside the region")
            app.state.units[body.current_unit_id] = region
        facts = {
            "status": "intake",
            "current_unit_id": str(body.current_unit_id),
            "region_id": str(region),
            "priority_groups": [],
            "release_destination": "municipality",
            "destination_note": None,
            "nav_office_id": None,
        }
        event = {
            "case_id": str(case_id),
            **facts,
            "responsible_kommunenummer": None,
            "municipality_status": "unresolved",
            "effective_release_date": None,
            "planning_basis": body.planning_basis,
            "opened_at": now.isoformat(),
        }
        try:
            person = await conn.fetchrow(
                OPEN_CASE,
                case_id,
                body.person_id,
                body.current_unit_id,
                region,
                body.planning_basis,
                now,
                "intake",
                now,
                "[]",
                "municipality",
                None,
                "unresolved",
                None,
                ACTOR,
                uuid.uuid4(),
                "coordinator",
                region,
                json.dumps(facts),
                correlation,
                uuid.uuid4(),
                "case.opened.v1",
                "case-api",
                f"case/{case_id}",
                correlation,
                now,
                json.dumps(event),
                "not_assessed",
                [uuid.uuid4() for _ in DOMAINS],
                DOMAINS,
            )
        except asyncpg.UniqueViolationError:
            return _problem(409, "The person has an open case")
        if person is None:
            return _problem(422, "No such person")
    answer = {
        "id": str(case_id),
        "person": {
            "id": str(body.person_id),
            "given_name": person["given_name"],
            "family_name": person["family_name"],
            "birth_date": person["birth_date"].isoformat() if person["birth_date"] else None,
        },
        **facts,
        "planning_basis": body.planning_basis,
        "opened_at": now.isoformat(),
        "version": 1,
    }
    headers = {"ETag": f'"case-{case_id}-1"', "Location": f"/api/v1/cases/{case_id}"}
    return JSONResponse(answer, status_code=201, headers=headers)


@app.get("/api/v1/cases/{case_id}")
async def get_case(case_id: uuid.UUID) -> Response:
    pool: asyncpg.Pool = app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            READ_CASE["region"],
            case_id,
            uuid.uuid4(),
            datetime.now(UTC),
            ACTOR,
            "coordinator",
            app.state.region,
            "role:coordinator",
            uuid.uuid4().hex,
            app.state.region,
        )
        if row is None:
            return _problem(404, "No case that you may see")
    person = {
        "id": str(row["person_id"]),
        "given_name": row["given_name"],
        "family_name": row["family_name"],
        "birth_date": row["birth_date"].isoformat() if row["birth_date"] else None,
    }
    return JSONResponse(_read(row, person), headers={"ETag": f'"case-{case_id}-{row["version"]}"'})
