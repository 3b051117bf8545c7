"""Masking finds a valid identity number however it is written into text: alone, next to letters,
or split 6+5 by a dash, a dot or spaces. Any 11 digits standing alone are masked whatever their
check digits; the other forms only when the check digits are right, so hex ids stay readable."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.logging import NIN_MASK, mask_identity_numbers
from tests.identity_numbers import PROPERTIES, identity_numbers

FNR = "08086740746"  # valid check digits


@pytest.mark.parametrize(
    "written",
    [
        "fnr08086740746",
        "08086740746x",
        "080867-40746",
        "080867.40746",
        "080867 40746",
        "080867  40746",
        "080867 - 40746",
        "id:080867-40746;",
        "fnr.080867.40746.",
    ],
)
def test_a_valid_number_is_masked_in_every_written_form(written: str) -> None:
    masked = mask_identity_numbers(written)
    assert FNR not in masked
    assert "080867" not in masked
    assert NIN_MASK in masked


def test_a_valid_number_in_another_scripts_digits_is_masked_next_to_letters() -> None:
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in FNR)
    assert mask_identity_numbers(f"fnr{arabic_indic}") == f"fnr{NIN_MASK}"


def test_invalid_numbers_next_to_letters_or_split_by_punctuation_stay() -> None:
    # Not identity numbers (wrong check digits): a hex id, a dashed or dotted reference.
    assert mask_identity_numbers("71f79898ff1444188402c60178156077") == "71f79898ff1444188402c60178156077"
    assert mask_identity_numbers("ref-123456-12345") == "ref-123456-12345"
    assert mask_identity_numbers("v123456.12345") == "v123456.12345"
    # Standalone 11 digits are masked whatever their check digits (the policy the logs had).
    assert mask_identity_numbers("01017012345") == NIN_MASK
    assert mask_identity_numbers("010170 12345") == NIN_MASK
    # Longer digit runs are other numbers (accounts, timestamps).
    assert mask_identity_numbers("108086740746") == "108086740746"


_SEPARATORS = {
    "alone": "",
    "dash": "-",
    "dot": ".",
    "space": " ",
    "spaces": "   ",
    "spaced dash": " - ",
}


def _not_digit_at(index: int) -> Callable[[str], bool]:
    # Text around a number must not extend its digit run: 12 digits are not an identity number.
    return lambda text: not text or not re.match(r"\d", text[index])


surrounding = st.text(max_size=30)


@PROPERTIES
@given(
    number=identity_numbers(),
    separator=st.sampled_from(sorted(_SEPARATORS.values())),
    glued=st.booleans(),
    before=surrounding.filter(_not_digit_at(-1)),
    after=surrounding.filter(_not_digit_at(0)),
)
def test_valid_numbers_in_any_text_are_masked(
    number: str, separator: str, glued: bool, before: str, after: str
) -> None:
    written = number[:6] + separator + number[6:]
    if glued:  # letters right next to the digits, as in "fnr08086740746x"
        before, after = before + "fnr", "x" + after
    masked = mask_identity_numbers(before + written + after)
    assert number not in masked
    assert written not in masked
    assert NIN_MASK in masked


@PROPERTIES
@given(d_number=identity_numbers(d_number=True), separator=st.sampled_from(sorted(_SEPARATORS.values())))
def test_d_numbers_are_masked_like_fodselsnumre(d_number: str, separator: str) -> None:
    assert int(d_number[:2]) > 40
    masked = mask_identity_numbers(f"Dnr{d_number[:6]}{separator}{d_number[6:]} ble registrert")
    assert d_number[:6] not in masked
    assert d_number[6:] not in masked


@PROPERTIES
@given(
    st.lists(
        st.one_of(st.text(alphabet="abcdefæøå ABC-./:", max_size=12), st.integers(0, 99_999).map(str)),
        max_size=20,
    )
)
def test_text_without_an_identity_number_is_left_alone(parts: list[str]) -> None:
    # No run of more than five digits can form an identity number in any of its written forms.
    text = ",".join(parts)
    assert mask_identity_numbers(text) == text
