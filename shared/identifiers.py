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


def is_valid_national_identity_number(value: str) -> bool:
    """Fødselsnummer or D-number (day + 40): 11 digits, a real date, both check digits right."""
    if not re.fullmatch(r"\d{11}", value):
        return False
    day, month, year2 = int(value[0:2]), int(value[2:4]), int(value[4:6])
    if day > 40:
        day -= 40  # D-number
    if month > 40:
        month -= 40  # synthetic test numbers from Skatteetaten's test register
    individual = int(value[6:9])
    century = 1900 if individual < 500 or (individual >= 900 and year2 >= 40) else 2000
    if 500 <= individual <= 749 and year2 >= 54:
        century = 1800
    try:
        date(century + year2, month, day)
    except ValueError:
        return False
    k1 = _mod11(value[:9], _FNR_WEIGHTS_1)
    if k1 is None or k1 != int(value[9]):
        return False
    k2 = _mod11(value[:10], _FNR_WEIGHTS_2)
    return k2 is not None and k2 == int(value[10])


def is_valid_organization_number(value: str) -> bool:
    """Nine digits with a correct mod-11 check digit (Brønnøysund)."""
    if not re.fullmatch(r"\d{9}", value):
        return False
    check = _mod11(value[:8], _ORGNR_WEIGHTS)
    return check is not None and check == int(value[8])


def is_kommunenummer_format(value: str) -> bool:
    """Four digits whose first two are a county code (01-56). Whether it exists is a list lookup."""
    return bool(re.fullmatch(r"\d{4}", value)) and 1 <= int(value[:2]) <= 56


def keyed_hash(value: str, *, key: bytes) -> str:
    """Deterministic lookup key for a secret identifier (HMAC-SHA256, hex)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
