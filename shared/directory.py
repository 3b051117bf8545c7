"""The organization directory's vocabulary, shared by the service that owns the directory
(agreement-api) and the services that keep a read model of it."""

from __future__ import annotations

from enum import StrEnum


class OrganizationType(StrEnum):
    REGION = "region"
    PRISON = "prison"
    PROBATION_OFFICE = "probation_office"
    TRANSITIONAL_HOUSING = "transitional_housing"
    MUNICIPALITY = "municipality"
    DISTRICT = "district"  # bydel
    NAV_OFFICE = "nav_office"
    HEALTH_TRUST = "health_trust"
    COUNTY = "county"
    NGO = "ngo"
    OTHER = "other"


# Units of the Correctional Service where an inmate's case lives.
UNIT_TYPES = frozenset(
    {OrganizationType.PRISON, OrganizationType.PROBATION_OFFICE, OrganizationType.TRANSITIONAL_HOUSING}
)
