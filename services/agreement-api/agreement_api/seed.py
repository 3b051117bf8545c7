"""Seeding the organization directory.

`load_directory` loads the five Correctional Service regions with their named units and every
current municipality from the bundled list (idempotent: what exists is left alone).
`load_demo` adds a few municipalities and illustrative NAV offices for the embedded mode.
Regions and unit names are real; NAV enhetsnummer in the demo set are illustrative."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agreement_api.organizations import service
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate
from shared import municipalities

REGION_UNITS: dict[str, list[tuple[str, OrganizationType, str | None]]] = {
    "Region øst": [
        ("Ila fengsel og forvaringsanstalt", OrganizationType.PRISON, "high"),
        ("Hedmark fengsel", OrganizationType.PRISON, None),
        ("Vestoppland fengsel", OrganizationType.PRISON, None),
        ("Kongsvinger fengsel", OrganizationType.PRISON, None),
        ("Ullersmo fengsel", OrganizationType.PRISON, "high"),
        ("Bredtveit fengsel", OrganizationType.PRISON, "high"),
        ("Indre Østfold fengsel", OrganizationType.PRISON, None),
        ("Ravneberget fengsel", OrganizationType.PRISON, None),
        ("Halden fengsel", OrganizationType.PRISON, "high"),
        ("Oslo fengsel", OrganizationType.PRISON, "high"),
    ],
    "Region sør": [
        ("Sem fengsel", OrganizationType.PRISON, None),
        ("Nordre Vestfold fengsel", OrganizationType.PRISON, None),
        ("Drammen fengsel", OrganizationType.PRISON, None),
        ("Søndre Vestfold fengsel", OrganizationType.PRISON, None),
    ],
    "Region sørvest": [
        ("Arendal fengsel", OrganizationType.PRISON, None),
        ("Kristiansand fengsel", OrganizationType.PRISON, None),
        ("Stavanger fengsel", OrganizationType.PRISON, None),
        ("Sandeid fengsel", OrganizationType.PRISON, None),
    ],
    "Region vest": [
        ("Hordaland friomsorgskontor", OrganizationType.PROBATION_OFFICE, None),
        ("Sogn og Fjordane friomsorgskontor", OrganizationType.PROBATION_OFFICE, None),
        ("Møre og Romsdal friomsorgskontor", OrganizationType.PROBATION_OFFICE, None),
    ],
    "Region nord": [
        ("Vadsø fengsel", OrganizationType.PRISON, None),
        ("Tromsø fengsel", OrganizationType.PRISON, None),
        ("Verdal fengsel", OrganizationType.PRISON, None),
        ("Trondheim fengsel", OrganizationType.PRISON, None),
        ("Sør-Trøndelag friomsorgskontor", OrganizationType.PROBATION_OFFICE, None),
    ],
}

MUNICIPALITIES = [
    ("0301", "Oslo kommune"),
    ("3101", "Halden kommune"),
    ("3105", "Sarpsborg kommune"),
    ("3107", "Fredrikstad kommune"),
    ("4601", "Bergen kommune"),
    ("5001", "Trondheim kommune"),
    ("5501", "Tromsø kommune"),
]

# Illustrative office numbers for the demo only.
NAV_OFFICES = [
    ("9301", "NAV Grünerløkka (demo)", "0301"),
    ("9310", "NAV Halden (demo)", "3101"),
    ("9346", "NAV Bergenhus (demo)", "4601"),
]


Progress = Callable[[str, int, int], None]


async def load_directory(session: AsyncSession, *, progress: Progress | None = None) -> dict[str, int]:
    """Regions, their units and all current municipalities; returns how many were created per kind."""
    report = progress or (lambda _stage, _done, _total: None)
    rows = list((await session.execute(select(Organization))).scalars())
    existing = {(row.type, row.name): row for row in rows}
    # By number, not by name: several municipalities share a name (Våler, Herøy).
    by_kommunenummer = {
        row.kommunenummer for row in rows if row.type is OrganizationType.MUNICIPALITY and row.kommunenummer
    }
    created = {"region": 0, "unit": 0, "municipality": 0}
    units_total = sum(len(units) + 1 for units in REGION_UNITS.values())
    done = 0
    for region_name, units in REGION_UNITS.items():
        region = existing.get((OrganizationType.REGION, region_name))
        if region is None:
            region = await service.create(
                session, data=OrganizationCreate(type=OrganizationType.REGION, name=region_name)
            )
            created["region"] += 1
        done += 1
        report("regions and units", done, units_total)
        for name, kind, security in units:
            if (kind, name) not in existing:
                await service.create(
                    session,
                    data=OrganizationCreate(
                        type=kind, name=name, security_level=security, parent_id=region.id
                    ),
                )
                created["unit"] += 1
            done += 1
            report("regions and units", done, units_total)
    everything = municipalities.all_municipalities()
    for index, municipality in enumerate(everything, start=1):
        if municipality.kommunenummer not in by_kommunenummer:
            await service.create(
                session,
                data=OrganizationCreate(
                    type=OrganizationType.MUNICIPALITY,
                    name=f"{municipality.name} kommune",
                    kommunenummer=municipality.kommunenummer,
                ),
            )
            created["municipality"] += 1
        report("municipalities", index, len(everything))
    return created


async def load_demo(session: AsyncSession) -> int:
    """Create the demo directory once; returns how many organizations were created."""
    if (await session.execute(select(func.count()).select_from(Organization))).scalar_one():
        return 0
    created = 0
    for region_name, units in REGION_UNITS.items():
        region = await service.create(
            session, data=OrganizationCreate(type=OrganizationType.REGION, name=region_name)
        )
        created += 1
        for name, kind, security in units:
            await service.create(
                session,
                data=OrganizationCreate(type=kind, name=name, security_level=security, parent_id=region.id),
            )
            created += 1
    municipality_ids = {}
    for number, name in MUNICIPALITIES:
        municipality = await service.create(
            session,
            data=OrganizationCreate(type=OrganizationType.MUNICIPALITY, name=name, kommunenummer=number),
        )
        municipality_ids[number] = municipality.id
        created += 1
    for enhetsnummer, name, kommunenummer in NAV_OFFICES:
        await service.create(
            session,
            data=OrganizationCreate(
                type=OrganizationType.NAV_OFFICE,
                name=name,
                enhetsnummer=enhetsnummer,
                kommunenummer=kommunenummer,
                parent_id=municipality_ids[kommunenummer],
            ),
        )
        created += 1
    return created
