from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.audit.models import AccessLogEntry, TimelineEntry
from case_api.models import CaseOutbox
from case_api.release_dates.models import ReleaseDate
from tests.case_api.conftest import Directory, open_case


def dates_url(case_id: str) -> str:
    return f"/api/v1/cases/{case_id}/release-dates"


async def etag_of(client: httpx.AsyncClient, headers: dict[str, str], case_id: str) -> str:
    response = await client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.headers["etag"])


async def set_date(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    case_id: str,
    *,
    etag: str | None = None,
    kind: str = "expected",
    day: str = "2031-03-14",
    certainty: str = "probable",
    source: str = "prison_administration",
    **extra: Any,
) -> httpx.Response:
    """POST one release date; fetches the case ETag first unless one is given."""
    if etag is None:
        etag = await etag_of(client, headers, case_id)
    body = {"kind": kind, "date": day, "certainty": certainty, "source": source, **extra}
    return await client.post(dates_url(case_id), json=body, headers={**headers, "If-Match": etag})


async def outbox_events(
    sessionmaker: async_sessionmaker[AsyncSession], case_id: str, event_type: str
) -> list[CaseOutbox]:
    async with sessionmaker() as session:
        query = (
            select(CaseOutbox)
            .where(CaseOutbox.subject == f"case/{case_id}", CaseOutbox.type == event_type)
            .order_by(col(CaseOutbox.occurred_at))
        )
        return list((await session.execute(query)).scalars().all())


async def change_status(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, status: str
) -> None:
    etag = await etag_of(client, headers, case_id)
    response = await client.post(
        f"/api/v1/cases/{case_id}/status", json={"status": status}, headers={**headers, "If-Match": etag}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
async def case(case_client: httpx.AsyncClient, directory: Directory) -> dict[str, Any]:
    return await open_case(
        case_client, directory.coordinator_east, unit=directory.unit_oslo, opened_at="2024-01-10T09:00:00Z"
    )


async def test_setting_a_date_answers_the_current_set_and_bumps_the_case_etag(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    before = await etag_of(case_client, headers, case["id"])
    response = await set_date(
        case_client, headers, case["id"], etag=before, kind="expected", day="2031-03-14"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current"]["expected"]["date"] == "2031-03-14"
    assert body["current"]["expected"]["certainty"] == "probable"
    assert body["current"]["confirmed"] is None
    assert body["effective_release_date"] == "2031-03-14"
    assert response.headers["etag"] != before
    assert response.headers["etag"] == await etag_of(case_client, headers, case["id"])
    read = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).json()
    assert read["version"] == case["version"] + 1


async def test_a_new_date_of_a_kind_supersedes_the_old_one_and_both_stay_in_the_history(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    other = directory.headers("coordinator", directory.region_east, subject="coordinator-2")
    first = await set_date(case_client, headers, case["id"], day="2031-03-14", note="first estimate")
    second = await set_date(case_client, other, case["id"], day="2031-04-01", certainty="certain")
    assert first.status_code == second.status_code == 200

    response = await case_client.get(dates_url(case["id"]), headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["current"]["expected"]["date"] == "2031-04-01"
    history = body["history"]
    assert [(entry["date"], entry["previous_date"], entry["current"]) for entry in history] == [
        ("2031-04-01", "2031-03-14", True),
        ("2031-03-14", None, False),
    ]
    assert history[1]["superseded_at"] == history[0]["recorded_at"]
    assert history[0]["superseded_at"] is None
    assert history[1]["note"] == "first estimate"
    assert [entry["recorded_by"] for entry in history] == ["coordinator-2", "dev-user"]
    assert response.headers["etag"] == await etag_of(case_client, headers, case["id"])
    async with sessionmaker() as session:
        rows = (
            (await session.execute(select(ReleaseDate).where(ReleaseDate.case_id == case["id"])))
            .scalars()
            .all()
        )
    assert sorted((str(row.date), row.superseded_at is None) for row in rows) == [
        ("2031-03-14", False),
        ("2031-04-01", True),
    ]


@pytest.mark.parametrize(
    ("existing", "new", "conflicts_with"),
    [
        (("two_thirds", "2031-06-01"), ("expected", "2031-05-01"), "two_thirds"),
        (("expected", "2031-05-01"), ("two_thirds", "2031-06-01"), "expected"),
        (("two_thirds", "2031-06-01"), ("earliest", "2031-07-01"), "two_thirds"),
        (("earliest", "2031-07-01"), ("two_thirds", "2031-06-01"), "earliest"),
        (("expected", "2031-05-01"), ("earliest", "2031-05-02"), "expected"),
    ],
)
async def test_contradicting_dates_are_422_naming_the_conflicting_kind(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    existing: tuple[str, str],
    new: tuple[str, str],
    conflicts_with: str,
) -> None:
    headers = directory.coordinator_east
    ok = await set_date(case_client, headers, case["id"], kind=existing[0], day=existing[1])
    assert ok.status_code == 200, ok.text
    response = await set_date(case_client, headers, case["id"], kind=new[0], day=new[1])
    assert response.status_code == 422
    problem = response.json()
    assert problem["reason"] == "date_order"
    assert problem["conflicts_with"] == conflicts_with
    assert problem["conflicting_date"] == existing[1]
    assert problem["field"] == "date"
    current = (await case_client.get(dates_url(case["id"]), headers=headers)).json()["current"]
    assert current[new[0]] is None


async def test_dates_in_order_and_equal_dates_are_accepted(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    for kind, day in [("expected", "2031-06-01"), ("earliest", "2031-02-01"), ("two_thirds", "2031-06-01")]:
        response = await set_date(case_client, headers, case["id"], kind=kind, day=day)
        assert response.status_code == 200, response.text
    current = response.json()["current"]
    assert [current[kind]["date"] for kind in ("earliest", "two_thirds", "expected")] == [
        "2031-02-01",
        "2031-06-01",
        "2031-06-01",
    ]


@pytest.mark.parametrize("certainty", ["estimated", "probable"])
async def test_a_confirmed_date_that_is_not_certain_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], certainty: str
) -> None:
    response = await set_date(
        case_client,
        directory.coordinator_east,
        case["id"],
        kind="confirmed",
        certainty=certainty,
        source="parole_decision",
    )
    assert response.status_code == 422
    assert response.json()["field"] == "certainty"
    assert response.json()["reason"] == "confirmed_not_certain"


async def test_a_date_before_the_case_opened_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    response = await set_date(case_client, headers, case["id"], day="2024-01-09")
    assert response.status_code == 422
    assert response.json()["reason"] == "before_case_opened"
    assert response.json()["case_opened"] == "2024-01-10"
    same_day = await set_date(case_client, headers, case["id"], day="2024-01-10")
    assert same_day.status_code == 200, same_day.text


async def test_a_date_more_than_30_years_ahead_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    today = date.today()
    far = today.replace(year=today.year + 31, day=1)
    response = await set_date(case_client, headers, case["id"], day=far.isoformat())
    assert response.status_code == 422
    assert response.json()["reason"] == "too_far_ahead"
    near = today.replace(year=today.year + 29, day=1)
    assert (await set_date(case_client, headers, case["id"], day=near.isoformat())).status_code == 200


async def test_effective_release_date_is_the_confirmed_date_else_the_expected_one(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east

    async def effective() -> str | None:
        read = await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)
        return read.json()["effective_release_date"]  # type: ignore[no-any-return]

    assert await effective() is None
    await set_date(case_client, headers, case["id"], kind="two_thirds", day="2031-01-01")
    assert await effective() is None
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-03-14")
    assert await effective() == "2031-03-14"
    response = await set_date(
        case_client,
        headers,
        case["id"],
        kind="confirmed",
        day="2031-02-20",
        certainty="certain",
        source="parole_decision",
    )
    assert response.json()["effective_release_date"] == "2031-02-20"
    assert await effective() == "2031-02-20"
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-04-01")
    assert await effective() == "2031-02-20"
    listed = await case_client.get(
        f"/api/v1/cases?release_from=2031-02-20&release_to=2031-02-20&unit_id={directory.unit_oslo}",
        headers=headers,
    )
    assert [item["id"] for item in listed.json()["items"]] == [case["id"]]


async def test_every_change_emits_release_date_changed_with_old_and_new_dates(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-03-14", note="Kari says")
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-04-01")
    events = await outbox_events(sessionmaker, case["id"], "case.release_date_changed.v1")
    assert [
        (
            event.data["kind"],
            event.data["old_date"],
            event.data["new_date"],
            event.data["old_effective_release_date"],
            event.data["new_effective_release_date"],
        )
        for event in events
    ] == [
        ("expected", None, "2031-03-14", None, "2031-03-14"),
        ("expected", "2031-03-14", "2031-04-01", "2031-03-14", "2031-04-01"),
    ]
    assert events[1].data["certainty"] == "probable"
    assert events[1].data["source"] == "prison_administration"
    assert events[1].data["effective_release_date"] == "2031-04-01"
    assert "Kari" not in str([event.data for event in events])
    assert "Nordmann" not in str([event.data for event in events])


async def test_each_change_is_on_the_timeline_with_before_and_after(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-03-14")
    await set_date(case_client, headers, case["id"], kind="expected", day="2031-04-01", certainty="certain")
    async with sessionmaker() as session:
        entries = (
            (
                await session.execute(
                    select(TimelineEntry)
                    .where(TimelineEntry.case_id == case["id"], TimelineEntry.entity == "release_date")
                    .order_by(TimelineEntry.at)
                )
            )
            .scalars()
            .all()
        )
    assert [entry.action for entry in entries] == ["release_date.set", "release_date.set"]
    assert entries[0].before is None
    assert entries[1].before is not None
    assert entries[1].after is not None
    assert (entries[1].before["date"], entries[1].before["certainty"]) == ("2031-03-14", "probable")
    assert (entries[1].after["date"], entries[1].after["certainty"]) == ("2031-04-01", "certain")
    assert entries[1].after["effective_release_date"] == "2031-04-01"
    assert entries[1].actor_role == "coordinator"


async def test_sending_the_current_values_again_changes_nothing(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    first = await set_date(case_client, headers, case["id"], day="2031-03-14")
    again = await set_date(case_client, headers, case["id"], etag=first.headers["etag"], day="2031-03-14")
    assert again.status_code == 200
    assert again.headers["etag"] == first.headers["etag"]
    history = (await case_client.get(dates_url(case["id"]), headers=headers)).json()["history"]
    assert len(history) == 1
    assert len(await outbox_events(sessionmaker, case["id"], "case.release_date_changed.v1")) == 1


async def test_a_stale_if_match_is_412_and_a_missing_one_428(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    stale = await etag_of(case_client, headers, case["id"])
    assert (await set_date(case_client, headers, case["id"], etag=stale)).status_code == 200
    response = await set_date(case_client, headers, case["id"], etag=stale, day="2031-05-05")
    assert response.status_code == 412
    missing = await case_client.post(
        dates_url(case["id"]),
        json={"kind": "expected", "date": "2031-05-05", "certainty": "probable", "source": "other"},
        headers=headers,
    )
    assert missing.status_code == 428
    history = (await case_client.get(dates_url(case["id"]), headers=headers)).json()["history"]
    assert [entry["date"] for entry in history] == ["2031-03-14"]
    assert len(await outbox_events(sessionmaker, case["id"], "case.release_date_changed.v1")) == 1


async def test_a_case_etag_from_a_case_change_makes_an_old_release_dates_etag_stale(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    read = await case_client.get(dates_url(case["id"]), headers=headers)
    patched = await case_client.patch(
        f"/api/v1/cases/{case['id']}",
        json={"priority_groups": ["woman"]},
        headers={**headers, "If-Match": read.headers["etag"]},
    )
    assert patched.status_code == 200
    response = await set_date(case_client, headers, case["id"], etag=read.headers["etag"])
    assert response.status_code == 412


async def test_a_closed_case_is_409(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    await change_status(case_client, headers, case["id"], "closed")
    response = await set_date(case_client, headers, case["id"])
    assert response.status_code == 409
    assert response.json()["title"] == "Case is closed"


@pytest.mark.parametrize("kind", ["expected", "confirmed"])
async def test_a_released_case_takes_no_release_dates(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], kind: str
) -> None:
    headers = directory.coordinator_east
    await change_status(case_client, headers, case["id"], "planning")
    assert (await set_date(case_client, headers, case["id"], day="2031-01-01")).status_code == 200
    await change_status(case_client, headers, case["id"], "released")
    response = await set_date(case_client, headers, case["id"], kind=kind, certainty="certain")
    assert response.status_code == 409
    assert response.json()["current_status"] == "released"


async def test_reading_release_dates_is_written_to_the_access_log(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await case_client.get(dates_url(case["id"]), headers=directory.coordinator_east)
    assert response.status_code == 200
    assert response.json() == {
        "case_id": case["id"],
        "effective_release_date": None,
        "current": {"earliest": None, "two_thirds": None, "expected": None, "confirmed": None},
        "history": [],
    }
    async with sessionmaker() as session:
        entries = (
            (
                await session.execute(
                    select(AccessLogEntry).where(
                        AccessLogEntry.case_id == case["id"], AccessLogEntry.what == "release_dates"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(entry.person_id, entry.actor_role) for entry in entries] == [
        (entries[0].person_id, "coordinator")
    ]
    assert str(entries[0].person_id) == case["person"]["id"]


async def test_a_read_only_role_may_not_set_dates_and_others_do_not_see_the_case(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    etag = await etag_of(case_client, directory.coordinator_east, case["id"])
    auditor = await set_date(case_client, directory.headers("auditor"), case["id"], etag=etag)
    assert auditor.status_code == 403
    south = directory.headers("coordinator", directory.region_south)
    assert (await set_date(case_client, south, case["id"], etag=etag)).status_code == 404
    assert (await case_client.get(dates_url(case["id"]), headers=south)).status_code == 404
    assert (await case_client.get(dates_url(case["id"]))).status_code == 401


async def test_unknown_fields_and_kinds_are_rejected(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    unknown_kind = await set_date(case_client, headers, case["id"], kind="released")
    assert unknown_kind.status_code == 422
    extra = await set_date(case_client, headers, case["id"], released_by="someone")
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "body.released_by"
