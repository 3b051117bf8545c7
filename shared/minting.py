"""Roles and token minting without the web framework: `tilbake token` signs a development token
without loading FastAPI. :mod:`shared.auth` re-exports both names; import them from there."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from jose import jwt

from shared.settings import DEV_JWT_ISSUER, DEV_JWT_PRIVATE_KEY_FILE


class Role(StrEnum):
    COORDINATOR = "coordinator"
    PRISON_STAFF = "prison_staff"
    NAV = "nav"
    MUNICIPALITY = "municipality"
    HEALTH = "health"
    SERVICE_MARKET = "service_market"
    INTEGRATION_ADMIN = "integration_admin"
    ADMIN = "admin"
    AUDITOR = "auditor"
    SERVICE = "service"


def mint_token(
    *,
    role: Role | str,
    subject: str = "dev-user",
    organization_id: str | None = None,
    organization_number: str | None = None,
    scopes: list[str] | None = None,
    ttl_seconds: int = 3600,
    issuer: str = DEV_JWT_ISSUER,
    audience: str = "tilbake",
    private_key_pem: str | None = None,
    algorithm: str = "RS256",
    not_before: int | None = None,
    extra_claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """Sign a token (development key unless another is given). For dev tooling and tests."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now if not_before is None else not_before,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "role": Role(role).value,
    }
    if organization_id:
        claims["org"] = organization_id
    if organization_number:
        claims["consumer"] = {"authority": "iso6523-actorid-upis", "orgno": organization_number}
    if scopes:
        claims["scope"] = " ".join(scopes)
    claims.update(extra_claims or {})
    key = private_key_pem if private_key_pem is not None else DEV_JWT_PRIVATE_KEY_FILE.read_text()
    return str(jwt.encode(claims, key, algorithm=algorithm, headers=headers))
