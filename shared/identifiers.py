"""Norwegian identifiers: national identity numbers, organization numbers, kommunenummer."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date

_FNR_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return None if check == 10 else check


def birth_date_of(value: str) -> date:
    """The birth date encoded in a fødselsnummer or D-number (raises ValueError if impossible)."""
    if not re.fullmatch(r"[0-9]{11}", value):  # \d would take other scripts' digits too
        raise ValueError("an identity number has 11 digits")
    day, month, year2 = int(value[0:2]), int(value[2:4]), int(value[4:6])
    if day > 40:
        day -= 40  # D-number
    if month > 40:
        month -= 40  # synthetic numbers in the official test register
    individual = int(value[6:9])
    if individual < 500:
        century = 1900
    elif individual < 750 and year2 >= 54:
        century = 1800
    elif individual >= 900 and year2 >= 40:
        century = 1900
    else:
        century = 2000
    return date(century + year2, month, day)


def is_valid_national_identity_number(value: str) -> bool:
    """Fødselsnummer or D-number (day + 40): 11 digits, a real date, both check digits right."""
    try:
        birth_date_of(value)
    except ValueError:
        return False
    k1 = _mod11(value[:9], _FNR_WEIGHTS_1)
    if k1 is None or k1 != int(value[9]):
        return False
    k2 = _mod11(value[:10], _FNR_WEIGHTS_2)
    return k2 is not None and k2 == int(value[10])


def make_identity_number(
    birth_date: date, individual: int, *, d_number: bool = False, synthetic: bool = False
) -> str | None:
    """A valid identity number for test data (None when the check digit would be 10). ``synthetic``
    adds 40 to the month, as the official test register does, so it is nobody's real number."""
    individual = 500 + individual % 500 if birth_date.year >= 2000 else individual % 500
    day = birth_date.day + (40 if d_number else 0)
    month = birth_date.month + (40 if synthetic else 0)
    base = f"{day:02d}{month:02d}{birth_date.year % 100:02d}{individual:03d}"
    k1 = _mod11(base, _FNR_WEIGHTS_1)
    if k1 is None:
        return None
    k2 = _mod11(base + str(k1), _FNR_WEIGHTS_2)
    if k2 is None:
        return None
    return f"{base}{k1}{k2}"


# Where an identity number may stand in text: 11 digits not inside a longer digit run, split 6+5
# by nothing, a "-" or "." (spaces around it allowed) or spaces. Used by masking and free-text checks.
_WRITTEN_NUMBER = re.compile(r"(?<!\d)(\d{6})([ \t\u00a0]*[-.][ \t\u00a0]*|[ \t\u00a0]+)?(\d{5})(?!\d)")
_LETTER = re.compile(r"[A-Za-z]")
NIN_MASK = "***********"


def _masked(match: re.Match[str]) -> str:
    # \d finds digits of any script; the check digits are worked out on their ASCII equivalents.
    if is_valid_national_identity_number("".join(str(int(digit)) for digit in match[1] + match[3])):
        return NIN_MASK
    # Any 11 digits standing alone (or split 6+5 by one space) are masked whatever their check
    # digits; next to letters (hex ids, tokens) or split otherwise, only a valid number is.
    text, start, end = match.string, match.start(), match.end()
    alone = not (start > 0 and _LETTER.match(text[start - 1])) and not _LETTER.match(text[end : end + 1])
    return NIN_MASK if alone and match[2] in (None, " ") else match[0]


def mask_identity_numbers(text: str) -> str:
    """``text`` with everything that is, or is written like, a national identity number masked."""
    return _WRITTEN_NUMBER.sub(_masked, text)


def contains_identity_number(text: str) -> bool:
    """Whether :func:`mask_identity_numbers` would mask anything in ``text``."""
    return mask_identity_numbers(text) != text


def is_valid_organization_number(value: str) -> bool:
    """Nine digits with a correct mod-11 check digit (Brønnøysund)."""
    if not re.fullmatch(r"[0-9]{9}", value):
        return False
    check = _mod11(value[:8], _ORGNR_WEIGHTS)
    return check is not None and check == int(value[8])


def is_kommunenummer_format(value: str) -> bool:
    """Four digits whose first two are a county code (01-56). Whether it exists is a list lookup."""
    return bool(re.fullmatch(r"[0-9]{4}", value)) and 1 <= int(value[:2]) <= 56


def keyed_hash(value: str, *, key: bytes) -> str:
    """Deterministic lookup key for a secret identifier (HMAC-SHA256, hex)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
