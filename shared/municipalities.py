"""Norway's current municipalities, from the bundled, dated classification (shared/data/README.md).

Shared because case-api validates responsible municipalities and agreement-api seeds its directory
and validates municipality organizations against the same list.

Read once per process and cached; every lookup after that is a dictionary access.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from datetime import date
from importlib import resources

VALID_FROM = date(2024, 1, 1)
CLASSIFICATION = "SSB classification of municipalities (Standard for kommuneinndeling)"
_FILE = "kommuner_2024.csv"


@dataclass(frozen=True)
class Municipality:
    kommunenummer: str
    name: str
    county_code: str


@functools.cache
def _by_number() -> dict[str, Municipality]:
    text = resources.files("shared.data").joinpath(_FILE).read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return {
        row["kommunenummer"]: Municipality(
            kommunenummer=row["kommunenummer"], name=row["name"], county_code=row["county_code"]
        )
        for row in rows
    }


def all_municipalities() -> list[Municipality]:
    """Every current municipality, by number."""
    return sorted(_by_number().values(), key=lambda municipality: municipality.kommunenummer)


def is_current_kommunenummer(number: str | None) -> bool:
    return number is not None and number in _by_number()


def municipality_name(number: str) -> str | None:
    """The municipality's name, or None when the number is not a current one."""
    municipality = _by_number().get(number)
    return municipality.name if municipality else None


def search(query: str | None) -> list[Municipality]:
    """Municipalities whose name contains ``query`` (any case) or whose number starts with it."""
    if not query or not query.strip():
        return all_municipalities()
    needle = query.strip().casefold()
    return [
        municipality
        for municipality in all_municipalities()
        if needle in municipality.name.casefold() or municipality.kommunenummer.startswith(needle)
    ]
