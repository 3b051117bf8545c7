"""Hypothesis strategies for Norwegian identifiers, with check digits computed here rather than by
the code under test, and the settings every property test uses (few examples, no randomness)."""

from __future__ import annotations

from datetime import date

from hypothesis import assume, settings
from hypothesis import strategies as st

# Deterministic (the same examples on every run and machine), modest in size, no example database.
PROPERTIES = settings(max_examples=200, deadline=None, derandomize=True, database=None)

FNR_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
FNR_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The mod-11 check digit, or None where it would be 10 (no valid number has that base)."""
    check = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11
    return None if check == 10 else check


def with_check_digits(base: str) -> str | None:
    k1 = check_digit(base, FNR_WEIGHTS_1)
    if k1 is None:
        return None
    k2 = check_digit(base + str(k1), FNR_WEIGHTS_2)
    return None if k2 is None else f"{base}{k1}{k2}"


# Individual numbers by birth year (the Skatteetaten ranges the century is read from).
_INDIVIDUALS = (
    (1854, 1899, 500, 749),
    (1900, 1999, 0, 499),
    (1940, 1999, 900, 999),
    (2000, 2039, 500, 999),
)


@st.composite
def identity_numbers(draw: st.DrawFn, *, d_number: bool | None = None) -> str:
    """A valid fødselsnummer or D-number (day + 40); ``d_number`` picks one kind."""
    first, last, low, high = draw(st.sampled_from(_INDIVIDUALS))
    born = draw(st.dates(min_value=date(first, 1, 1), max_value=date(last, 12, 31)))
    individual = draw(st.integers(low, high))
    is_d = draw(st.booleans()) if d_number is None else d_number
    day = born.day + (40 if is_d else 0)
    number = with_check_digits(f"{day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}")
    assume(number is not None)  # about one base in five has a check digit of 10
    assert number is not None
    return number


@st.composite
def organization_numbers(draw: st.DrawFn) -> str:
    """A valid nine-digit organization number (first digit 8 or 9, as Brønnøysund assigns)."""
    base = str(draw(st.integers(80_000_000, 99_999_999)))
    check = check_digit(base, ORGNR_WEIGHTS)
    assume(check is not None)
    return f"{base}{check}"
