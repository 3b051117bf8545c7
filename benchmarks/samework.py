"""The same-work limit: case-api's create and read, the same statements on the same tables in the
same transactions, written in raw asyncpg in a bare FastAPI app.

Run by the suite as ``uvicorn benchmarks.samework:app`` (one worker) with ``BENCH_SAMEWORK_DSN``
and ``BENCH_SAMEWORK_REGION`` (the region a coordinator acts for; no token is checked). Beside the
one-statement baseline it shows what case-api's own SQL work costs without its framework layers:
the ORM, the dependency system, token verification, the problem handlers.

create: the person by id; INSERT of the case, its timeline entry and its outbox event; one
multi-row INSERT of the eleven domains (asyncpg's executemany, one round trip); one transaction.
read: the case with its person, scoped to the region; INSERT of the access-log row; one transaction.
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
from pydantic import BaseModel, ConfigDict

from case_api.domains.models import Domain

POOL_SIZE = 10  # case-api's default
ACTOR = "bench-coordinator"

SELECT_PERSON = "SELECT id, given_name, family_name, birth_date FROM case_person WHERE id = $1"
SELECT_UNIT = "SELECT parent_id FROM case_organization_ref WHERE id = $1 AND type = 'prison'"
INSERT_CASE = """
INSERT INTO case_case (id, person_id, current_unit_id, region_id, planning_basis, opened_at, status,
    status_changed_at, priority_groups, release_destination, municipality_status, created_by,
    created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, 'intake', $6, '[]'::jsonb, 'municipality', 'unresolved', $7, $6, $6, 1)
"""
INSERT_TIMELINE = """
INSERT INTO case_timeline (id, case_id, at, actor, actor_role, actor_organization_id, action, entity,
    entity_id, before, after, correlation_id)
VALUES ($1, $2, $3, $4, 'coordinator', $5, 'case.opened', 'case', $6, 'null'::jsonb, $7::jsonb, $8)
"""
INSERT_OUTBOX = """
INSERT INTO case_outbox (id, type, source, subject, correlation_id, occurred_at, data, attempts)
VALUES ($1, 'case.opened.v1', 'case-api', $2, $3, $4, $5::jsonb, 0)
"""
INSERT_DOMAIN = """
INSERT INTO case_domain (id, case_id, domain, status, hostel_only, updated_at, updated_by, version)
VALUES ($1, $2, $3, 'not_assessed', false, $4, $5, 1)
"""
SELECT_CASE = """
SELECT c.id, c.person_id, c.current_unit_id, c.region_id, c.planning_basis, c.opened_at, c.status,
    c.status_changed_at, c.priority_groups, c.release_destination, c.destination_note,
    c.registered_kommunenummer, c.intended_kommunenummer, c.responsible_kommunenummer,
    c.municipality_status, c.municipality_note, c.nav_office_id, c.effective_release_date,
    c.closed_at, c.created_at, c.updated_at, c.version,
    p.given_name, p.family_name, p.birth_date
FROM case_case c JOIN case_person p ON p.id = c.person_id
WHERE c.id = $1 AND c.region_id = $2
"""
INSERT_ACCESS = """
INSERT INTO case_access_log (id, at, person_id, case_id, actor, actor_role, actor_organization_id,
    what, basis, correlation_id)
VALUES ($1, $2, $3, $4, $5, 'coordinator', $6, 'case', 'role:coordinator', $7)
"""


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: uuid.UUID
    current_unit_id: uuid.UUID
    planning_basis: str


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
        person = await conn.fetchrow(SELECT_PERSON, body.person_id)
        if person is None:
            return _problem(422, "No such person")
        try:
            await conn.execute(
                INSERT_CASE,
                case_id,
                body.person_id,
                body.current_unit_id,
                region,
                body.planning_basis,
                now,
                ACTOR,
            )
        except asyncpg.UniqueViolationError:
            return _problem(409, "The person has an open case")
        facts = {
            "status": "intake",
            "current_unit_id": str(body.current_unit_id),
            "region_id": str(region),
            "priority_groups": [],
            "release_destination": "municipality",
            "destination_note": None,
            "nav_office_id": None,
        }
        await conn.execute(
            INSERT_TIMELINE,
            uuid.uuid4(),
            case_id,
            now,
            ACTOR,
            region,
            str(case_id),
            json.dumps(facts),
            correlation,
        )
        event = {
            "case_id": str(case_id),
            **facts,
            "responsible_kommunenummer": None,
            "municipality_status": "unresolved",
            "effective_release_date": None,
            "planning_basis": body.planning_basis,
            "opened_at": now.isoformat(),
        }
        await conn.execute(
            INSERT_OUTBOX, uuid.uuid4(), f"case/{case_id}", correlation, now, json.dumps(event)
        )
        await conn.executemany(INSERT_DOMAIN, [(uuid.uuid4(), case_id, d.value, now, ACTOR) for d in Domain])
    answer = {
        "id": str(case_id),
        "person": {
            "id": str(person["id"]),
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
        row = await conn.fetchrow(SELECT_CASE, case_id, app.state.region)
        if row is None:
            return _problem(404, "No case that you may see")
        await conn.execute(
            INSERT_ACCESS,
            uuid.uuid4(),
            datetime.now(UTC),
            row["person_id"],
            case_id,
            ACTOR,
            app.state.region,
            uuid.uuid4().hex,
        )
    person = {
        "id": str(row["person_id"]),
        "given_name": row["given_name"],
        "family_name": row["family_name"],
        "birth_date": row["birth_date"].isoformat() if row["birth_date"] else None,
    }
    return JSONResponse(_read(row, person), headers={"ETag": f'"case-{case_id}-{row["version"]}"'})
