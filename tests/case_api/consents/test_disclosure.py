"""May organization X receive domain Y of a case at a moment: the decision at its boundaries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.access import consent_covers
from case_api.consents import service
from case_api.consents.schemas import Decision
from case_api.domains.models import Domain
from case_api.organizations.models import OrganizationRef
from tests.case_api.conftest import Directory, open_case
from tests.case_api.consents.helpers import give_consent, withdraw_consent

GIVEN_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.fixture
async def case(case_client: httpx.AsyncClient, directory: Directory) -> dict[str, Any]:
    return await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)


async def decide(
    sessionmaker: async_sessionmaker[AsyncSession],
    case_id: str,
    organization_id: uuid.UUID,
    domain: Domain,
    at: datetime | None = None,
) -> Decision:
    """The service's answer, checked against the rule the case visibility uses."""
    async with sessionmaker() as session:
        organization = await session.get(OrganizationRef, organization_id)
        assert organization is not None
        decision = await service.may_receive(
            session, case_id=uuid.UUID(case_id), organization=organization, domain=domain, at=at
        )
        covered = (
            await session.execute(
                select(
                    consent_covers(uuid.UUID(case_id), organization, at=decision.checked_at, domain=domain)
                )
            )
        ).scalar()
    assert decision.allowed is covered
    return decision


async def test_a_consent_covers_from_the_moment_it_was_given_until_it_is_withdrawn(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    given = await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_ids=[str(directory.oslo)],
        given_at=GIVEN_AT.isoformat(),
    )
    response = await withdraw_consent(case_client, directory.coordinator_east, case["id"], given["id"])
    withdrawn_at = datetime.fromisoformat(response.json()["withdrawn_at"])

    async def allowed_at(at: datetime | None) -> bool:
        return (await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING, at)).allowed

    assert await allowed_at(GIVEN_AT - TICK) is False
    assert await allowed_at(GIVEN_AT) is True
    just_before = await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING, withdrawn_at - TICK)
    assert just_before.allowed is True
    assert (just_before.basis, just_before.consent_id) == ("consent", uuid.UUID(given["id"]))
    assert just_before.checked_at == withdrawn_at - TICK
    assert await allowed_at(withdrawn_at) is False
    assert await allowed_at(withdrawn_at + timedelta(seconds=1)) is False
    now = await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING)
    assert (now.allowed, now.basis, now.consent_id, now.legal_reference) == (False, None, None, None)


async def test_a_past_consent_for_another_domain_does_not_cover_this_one(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_ids=[str(directory.oslo)],
        domains=["work"],
        given_at=GIVEN_AT.isoformat(),
    )
    assert (await decide(sessionmaker, case["id"], directory.oslo, Domain.WORK)).allowed is True
    assert (await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING)).allowed is False
    assert (await decide(sessionmaker, case["id"], directory.oslo, Domain.MENTAL_HEALTH)).allowed is False


async def test_a_type_wide_consent_covers_every_organization_of_that_type_only(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    given = await give_consent(
        case_client,
        directory.coordinator_east,
        case["id"],
        organization_types=["nav_office"],
        domains=["work"],
    )
    for nav_office in (directory.nav_grunerlokka, directory.nav_halden):
        decision = await decide(sessionmaker, case["id"], nav_office, Domain.WORK)
        assert (decision.allowed, decision.consent_id) == (True, uuid.UUID(given["id"]))
    assert (await decide(sessionmaker, case["id"], directory.oslo, Domain.WORK)).allowed is False
    assert (await decide(sessionmaker, case["id"], directory.health_trust, Domain.WORK)).allowed is False


async def test_a_named_organization_is_covered_but_not_its_neighbours_of_the_same_type(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_ids=[str(directory.nav_grunerlokka)]
    )
    assert (await decide(sessionmaker, case["id"], directory.nav_grunerlokka, Domain.HOUSING)).allowed is True
    assert (await decide(sessionmaker, case["id"], directory.nav_halden, Domain.HOUSING)).allowed is False


async def test_a_legal_basis_answers_with_its_reference(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    given = await give_consent(
        case_client,
        directory.admin,
        case["id"],
        basis="legal_basis",
        legal_reference="helsepersonelloven § 45",
        organization_ids=[str(directory.health_trust)],
        domains=["mental_health"],
    )
    decision = await decide(sessionmaker, case["id"], directory.health_trust, Domain.MENTAL_HEALTH)
    assert (decision.allowed, decision.basis, decision.consent_id, decision.legal_reference) == (
        True,
        "legal_basis",
        uuid.UUID(given["id"]),
        "helsepersonelloven § 45",
    )


async def test_the_inmates_consent_is_named_before_a_legal_basis_which_remains_after_withdrawal(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    legal = await give_consent(
        case_client,
        headers,
        case["id"],
        basis="legal_basis",
        legal_reference="straffegjennomføringsloven § 4",
        organization_types=["municipality"],
    )
    consent = await give_consent(
        case_client,
        headers,
        case["id"],
        organization_ids=[str(directory.oslo)],
        given_at=GIVEN_AT.isoformat(),
    )
    first = await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING)
    assert (first.basis, first.consent_id, first.legal_reference) == (
        "consent",
        uuid.UUID(consent["id"]),
        None,
    )
    await withdraw_consent(case_client, headers, case["id"], consent["id"])
    second = await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING)
    assert (second.allowed, second.basis, second.consent_id) == (True, "legal_basis", uuid.UUID(legal["id"]))


async def test_a_consent_on_another_case_does_not_count(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await give_consent(
        case_client, directory.coordinator_east, other["id"], organization_ids=[str(directory.oslo)]
    )
    assert (await decide(sessionmaker, other["id"], directory.oslo, Domain.HOUSING)).allowed is True
    assert (await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING)).allowed is False


async def test_a_naive_moment_is_refused(
    directory: Directory, case: dict[str, Any], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await decide(sessionmaker, case["id"], directory.oslo, Domain.HOUSING, datetime(2026, 1, 1))


def disclosure_url(case: dict[str, Any], organization_id: object, domain: str) -> str:
    return f"/api/v1/cases/{case['id']}/disclosure?organization_id={organization_id}&domain={domain}"


async def test_the_endpoint_answers_now_and_changes_at_once_on_withdrawal(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    given = await give_consent(case_client, headers, case["id"], organization_ids=[str(directory.oslo)])
    before = datetime.now(UTC)
    response = await case_client.get(disclosure_url(case, directory.oslo, "housing"), headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["allowed"], body["basis"], body["consent_id"], body["legal_reference"]) == (
        True,
        "consent",
        given["id"],
        None,
    )
    assert before <= datetime.fromisoformat(body["checked_at"]) <= datetime.now(UTC)
    await withdraw_consent(case_client, headers, case["id"], given["id"])
    after = await case_client.get(disclosure_url(case, directory.oslo, "housing"), headers=headers)
    assert after.json()["allowed"] is False
    assert after.json()["consent_id"] is None


@pytest.mark.parametrize(
    ("role", "org_name", "status"),
    [
        ("admin", None, 200),
        ("auditor", None, 200),
        ("coordinator", "region_east", 200),
        ("prison_staff", "unit_oslo", 200),
        ("municipality", "oslo", 403),
        ("nav", "nav_grunerlokka", 403),
        ("health", "health_trust", 403),
        ("service_market", "ngo", 403),
        ("coordinator", "region_south", 404),
    ],
)
async def test_only_writers_and_auditors_may_ask(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    role: str,
    org_name: str | None,
    status: int,
) -> None:
    await give_consent(
        case_client, directory.coordinator_east, case["id"], organization_types=["municipality"]
    )
    org = getattr(directory, org_name) if org_name else None
    response = await case_client.get(
        disclosure_url(case, directory.oslo, "housing"), headers=directory.headers(role, org)
    )
    assert response.status_code == status
    if status == 200:
        assert response.json()["allowed"] is True


async def test_an_unknown_organization_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    response = await case_client.get(
        disclosure_url(case, uuid.uuid4(), "housing"), headers=directory.coordinator_east
    )
    assert response.status_code == 422
    assert response.json()["field"] == "organization_id"


@pytest.mark.parametrize(
    "query", ["domain=housing", "organization_id={org}", "organization_id={org}&domain=astrology"]
)
async def test_a_missing_or_unknown_parameter_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], query: str
) -> None:
    response = await case_client.get(
        f"/api/v1/cases/{case['id']}/disclosure?{query.format(org=directory.oslo)}",
        headers=directory.coordinator_east,
    )
    assert response.status_code == 422
    assert response.json()["errors"]
