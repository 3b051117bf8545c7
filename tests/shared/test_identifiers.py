"""Property tests of the identifier rules: every valid value generated here (check digits computed
by the test, not by shared.identifiers) is accepted, and the errors a check digit exists to catch
are refused."""

from __future__ import annotations

from datetime import date

from hypothesis import assume, given
from hypothesis import strategies as st

from shared.identifiers import (
    birth_date_of,
    is_kommunenummer_format,
    is_valid_national_identity_number,
    is_valid_organization_number,
    make_identity_number,
)
from shared.municipalities import all_municipalities
from tests.identity_numbers import PROPERTIES, identity_numbers, organization_numbers

# The same digit in other scripts (Arabic-Indic, Devanagari, fullwidth): int() and \d take them, but
# a number written with them hashes differently, so a person could be registered twice.
_OTHER_DIGITS = ("\u0660", "\u0966", "\uff10")


def _in_another_script(number: str, position: int, zero: str) -> str:
    return number[:position] + chr(ord(zero) + int(number[position])) + number[position + 1 :]


def _substitutions(number: str) -> list[str]:
    return [
        number[:i] + digit + number[i + 1 :]
        for i in range(len(number))
        for digit in "0123456789"
        if digit != number[i]
    ]


# --- fødselsnummer and D-number --------------------------------------------------------------


@PROPERTIES
@given(identity_numbers())
def test_valid_identity_numbers_are_accepted(number: str) -> None:
    assert is_valid_national_identity_number(number)
    day = int(number[:2])
    assert birth_date_of(number).day == (day - 40 if day > 40 else day)


@PROPERTIES
@given(identity_numbers())
def test_every_single_digit_change_is_refused(number: str) -> None:
    # Every weight is 1-9 and 11 is prime, so a changed digit always changes a check digit.
    for changed in _substitutions(number):
        assert not is_valid_national_identity_number(changed), changed


@PROPERTIES
@given(identity_numbers(), st.integers(0, 7))
def test_swapped_neighbours_before_the_check_digits_are_refused(number: str, i: int) -> None:
    assume(number[i] != number[i + 1])  # neighbouring weights differ, so the first check digit changes
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    assert not is_valid_national_identity_number(swapped)


@PROPERTIES
@given(identity_numbers(), st.sampled_from(["", "0", "00"]), st.sampled_from(["", "1", " "]))
def test_other_lengths_and_characters_are_refused(number: str, prefix: str, suffix: str) -> None:
    assume(prefix or suffix)
    assert not is_valid_national_identity_number(prefix + number + suffix)
    assert not is_valid_national_identity_number(number[:10])
    assert not is_valid_national_identity_number(number[:5] + "-" + number[6:])


@PROPERTIES
@given(identity_numbers(), st.integers(0, 10), st.sampled_from(_OTHER_DIGITS))
def test_digits_of_other_scripts_are_refused(number: str, position: int, zero: str) -> None:
    assert not is_valid_national_identity_number(_in_another_script(number, position, zero))


@PROPERTIES
@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2039, 12, 31)),
    st.integers(0, 999),
    st.booleans(),
)
def test_made_test_numbers_are_valid_and_carry_their_birth_date(
    born: date, individual: int, d_number: bool
) -> None:
    number = make_identity_number(born, individual, d_number=d_number)
    assume(number is not None)
    assert number is not None
    assert is_valid_national_identity_number(number)
    assert birth_date_of(number) == born
    assert (int(number[:2]) > 40) is d_number


@PROPERTIES
@given(st.integers(0, 99_999_999_999).map(lambda n: f"{n:011d}"))
def test_an_impossible_date_is_refused_whatever_the_check_digits(number: str) -> None:
    day, month = int(number[:2]), int(number[2:4])
    if day > 40:
        day -= 40
    if month > 40:
        month -= 40
    if not (1 <= day <= 31 and 1 <= month <= 12):
        assert not is_valid_national_identity_number(number)


# --- organization number ----------------------------------------------------------------------


@PROPERTIES
@given(organization_numbers())
def test_valid_organization_numbers_are_accepted(number: str) -> None:
    assert is_valid_organization_number(number)


@PROPERTIES
@given(organization_numbers())
def test_every_single_digit_change_of_an_organization_number_is_refused(number: str) -> None:
    for changed in _substitutions(number):
        assert not is_valid_organization_number(changed), changed


@PROPERTIES
@given(organization_numbers(), st.integers(0, 6))
def test_swapped_neighbours_of_an_organization_number_are_refused(number: str, i: int) -> None:
    assume(number[i] != number[i + 1])  # weights 3,2,7,6,5,4,3,2: neighbours differ
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    assert not is_valid_organization_number(swapped)


@PROPERTIES
@given(organization_numbers(), st.integers(0, 8), st.sampled_from(_OTHER_DIGITS))
def test_organization_numbers_in_other_scripts_are_refused(number: str, position: int, zero: str) -> None:
    assert not is_valid_organization_number(_in_another_script(number, position, zero))


@PROPERTIES
@given(organization_numbers())
def test_organization_numbers_of_other_lengths_are_refused(number: str) -> None:
    assert not is_valid_organization_number(number[:8])
    assert not is_valid_organization_number(number + "0")
    assert not is_valid_organization_number(f"{number[:3]} {number[3:6]} {number[6:]}")


# --- kommunenummer ----------------------------------------------------------------------------
# No check digit: the format says four digits in a county (01-56); the list says whether it exists.


def test_every_current_municipality_has_the_format() -> None:
    numbers = [municipality.kommunenummer for municipality in all_municipalities()]
    assert len(numbers) > 300
    assert all(is_kommunenummer_format(number) for number in numbers)


@PROPERTIES
@given(st.integers(0, 9999))
def test_four_digits_are_a_kommunenummer_exactly_when_the_county_is_01_to_56(value: int) -> None:
    number = f"{value:04d}"
    assert is_kommunenummer_format(number) is (1 <= value // 100 <= 56)


@PROPERTIES
@given(
    st.sampled_from(all_municipalities()).map(lambda municipality: municipality.kommunenummer),
    st.integers(0, 3),
    st.sampled_from(_OTHER_DIGITS),
)
def test_a_kommunenummer_in_another_script_is_refused(number: str, position: int, zero: str) -> None:
    assert not is_kommunenummer_format(_in_another_script(number, position, zero))


@PROPERTIES
@given(st.text(max_size=6))
def test_anything_but_four_ascii_digits_is_refused(text: str) -> None:
    assume(not (len(text) == 4 and text.isascii() and text.isdigit()))
    assert not is_kommunenummer_format(text)
