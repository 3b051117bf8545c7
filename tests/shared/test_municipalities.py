from __future__ import annotations

import collections
import csv
from importlib import resources

import pytest

from shared import municipalities as catalog

COUNTY_COUNTS = {
    "03": 1,
    "11": 23,
    "15": 27,
    "18": 41,
    "31": 12,
    "32": 21,
    "33": 18,
    "34": 46,
    "39": 6,
    "40": 17,
    "42": 25,
    "46": 43,
    "50": 38,
    "55": 21,
    "56": 18,
}


def raw_rows() -> list[dict[str, str]]:
    text = resources.files("shared.data").joinpath("kommuner_2024.csv").read_text("utf-8")
    return list(csv.DictReader(text.splitlines()))


def test_the_file_lists_357_municipalities_with_unique_four_digit_numbers() -> None:
    rows = raw_rows()
    assert list(rows[0]) == ["kommunenummer", "name", "county_code"]
    assert len(rows) == 357
    numbers = [row["kommunenummer"] for row in rows]
    assert len(set(numbers)) == 357
    assert all(len(number) == 4 and number.isdigit() for number in numbers)
    assert all(row["name"].strip() == row["name"] and row["name"] for row in rows)
    assert all(row["county_code"] == row["kommunenummer"][:2] for row in rows)


def test_each_county_has_its_2024_number_of_municipalities() -> None:
    counts = collections.Counter(row["county_code"] for row in raw_rows())
    assert dict(counts) == COUNTY_COUNTS


@pytest.mark.parametrize(
    ("number", "name"),
    [
        ("0301", "Oslo"),
        ("4601", "Bergen"),
        ("5001", "Trondheim"),
        ("1103", "Stavanger"),
        ("4204", "Kristiansand"),
        ("5501", "Tromsø"),
        ("3301", "Drammen"),
        ("4003", "Skien"),
        ("3107", "Fredrikstad"),
        ("3101", "Halden"),
        ("3105", "Sarpsborg"),
        ("1508", "Ålesund"),
        ("1580", "Haram"),
        ("5601", "Alta"),
        ("3905", "Tønsberg"),
        ("3201", "Bærum"),
    ],
)
def test_well_known_municipalities_have_their_2024_numbers(number: str, name: str) -> None:
    assert catalog.is_current_kommunenummer(number)
    assert catalog.municipality_name(number) == name


@pytest.mark.parametrize("number", ["0000", "1507", "3001", "5401", "3803", "301", "", None])
def test_numbers_that_are_not_current_are_rejected(number: str | None) -> None:
    assert not catalog.is_current_kommunenummer(number)
    if number is not None:
        assert catalog.municipality_name(number) is None


def test_the_list_is_read_once() -> None:
    assert catalog.all_municipalities() == catalog.all_municipalities()
    assert catalog._by_number.cache_info().misses <= 1


def test_search_matches_name_in_any_case_or_the_start_of_the_number() -> None:
    assert [m.kommunenummer for m in catalog.search("TROMSØ")] == ["5501"]
    assert {m.name for m in catalog.search("toten")} == {"Østre Toten", "Vestre Toten"}
    assert [m.kommunenummer for m in catalog.search("39")] == ["3901", "3903", "3905", "3907", "3909", "3911"]
    assert len(catalog.search(None)) == len(catalog.search("  ")) == 357
