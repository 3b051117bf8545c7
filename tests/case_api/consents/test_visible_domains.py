"""The domains a consent-gated viewer may read follow the consents active now, in one query."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from case_api.access import Viewer, visible_domains
from case_api.cases.models import Case
from case_api.domains.models import Domain
from case_api.organizations.models import OrganizationRef
from shared.auth import Principal, Role
from tests.case_api.conftest import Directory, open_case
from tests.case_api.consents.helpers import give_consent, withdraw_consent


async def viewer_for(session: AsyncSession, role: Role, organization_id: uuid.UUID) -> Viewer:
    organization = await session.get(OrganizationRef, organization_id)
    principal = Principal(subject="viewer", role=role, organization_id=str(organization_id))
    return Viewer(principal=principal, organization=organization, region_id=None)


async def test_visible_domains_are_those_of_active_consents_naming_the_viewer_or_its_type(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
) -> None:
    headers = directory.coordinator_east
    case: dict[str, Any] = await open_case(case_client, headers, unit=directory.unit_oslo)
    other = await open_case(case_client, headers, unit=directory.unit_oslo)
    await give_consent(
        case_client, headers, case["id"], organization_ids=[str(directory.oslo)], domains=["housing", "work"]
    )
    withdrawn = await give_consent(
        case_client, headers, case["id"], organization_types=["municipality"], domains=["income"]
    )
    await withdraw_consent(case_client, headers, case["id"], withdrawn["id"])
    await give_consent(
        case_client,
        headers,
        case["id"],
        basis="legal_basis",
        legal_reference="straffegjennomføringsloven § 4",
        organization_types=["municipality"],
        domains=["id_papers"],
    )
    await give_consent(case_client, headers, case["id"], organization_types=["nav_office"], domains=["debt"])
    await give_consent(
        case_client, headers, other["id"], organization_ids=[str(directory.oslo)], domains=["education"]
    )

    selects: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    async with sessionmaker() as session:
        row = await session.get(Case, uuid.UUID(case["id"]))
        assert row is not None
        municipality = await viewer_for(session, Role.MUNICIPALITY, directory.oslo)
        nav = await viewer_for(session, Role.NAV, directory.nav_grunerlokka)
        coordinator = await viewer_for(session, Role.COORDINATOR, directory.region_east)
        event.listen(connection.sync_connection, "before_cursor_execute", count)
        try:
            seen_by_municipality = await visible_domains(session, municipality, row)
            queries = len(selects)
            seen_by_nav = await visible_domains(session, nav, row)
            seen_by_coordinator = await visible_domains(session, coordinator, row)
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", count)

    assert seen_by_municipality == {Domain.HOUSING, Domain.WORK, Domain.ID_PAPERS}
    assert queries == 1
    assert seen_by_nav == {Domain.DEBT}
    assert seen_by_coordinator == frozenset(Domain)
