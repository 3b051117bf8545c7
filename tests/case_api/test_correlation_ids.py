"""An ``X-Request-ID`` becomes the correlation id only in the services' own format (32 lowercase
hex digits, no identity number in it). Anything else is replaced, so a number sent there never
comes back in a response and is never logged or stored in an event or an audit row."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.logging import configure_logging
from tests.case_api.conftest import Directory, open_case

FNR = "08086740746"
REQUEST_IDS = [
    FNR,
    f"fnr{FNR}",
    f"{FNR[:6]}-{FNR[6:]}",
    f"{FNR[:6]} {FNR[6:]}",
    FNR + "a" * 21,  # 32 hex digits, the right format, with the number in it
    "0" * 21 + FNR,
]
OWN_FORMAT = re.compile(r"[0-9a-f]{32}")


def _leaks(text: str) -> list[str]:
    return [part for part in (FNR, FNR[:6], FNR[6:] + "a") if part in text]


async def test_an_identity_number_as_request_id_is_replaced_everywhere(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    headers = directory.coordinator_east
    configure_logging(level="INFO", json=True)
    try:
        responses = []
        for request_id in REQUEST_IDS:
            with_id = {**headers, "X-Request-ID": request_id}
            case = await open_case(case_client, with_id, unit=directory.unit_oslo)
            responses.append(await case_client.get(f"/api/v1/cases/{case['id']}", headers=with_id))
            responses.append(await case_client.get(f"/api/v1/cases/{case['id']}/timeline", headers=with_id))
            responses.append(await case_client.get(f"/api/v1/persons/{uuid.uuid4()}", headers=with_id))
        logged = capsys.readouterr().err
    finally:
        configure_logging(level="INFO", json=False)

    for response in responses:
        assert OWN_FORMAT.fullmatch(response.headers["x-request-id"]), response.headers["x-request-id"]
        assert not _leaks(response.text + json.dumps(dict(response.headers)))
    assert responses[-1].status_code == 404
    assert responses[-1].json()["correlation_id"] == responses[-1].headers["x-request-id"]
    assert "correlation_id" in logged
    assert not _leaks(logged)

    async with sessionmaker() as session:
        stored = {
            table: [
                row
                for row in (await session.execute(text(f"SELECT correlation_id FROM {table}"))).scalars()
                if row is not None
            ]
            for table in ("case_outbox", "case_timeline", "case_access_log")
        }
    for table, ids in stored.items():
        assert ids, f"the journey wrote no {table} row"
        assert all(OWN_FORMAT.fullmatch(value) for value in ids), (table, ids)
        assert not _leaks(" ".join(ids)), table


async def test_a_request_id_in_the_services_own_format_is_kept(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    request_id = uuid.uuid4().hex
    response = await case_client.get(
        "/api/v1/cases", headers={**directory.coordinator_east, "X-Request-ID": request_id}
    )
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "trace-42",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",  # a UUID, but not in the one format
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "4bf92f3577b34da6a3ce929d0e0e47360",
        "x" * 32,
    ],
)
async def test_any_other_request_id_is_replaced(case_client: httpx.AsyncClient, request_id: str) -> None:
    response = await case_client.get("/healthz", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] != request_id
    assert OWN_FORMAT.fullmatch(response.headers["x-request-id"])
