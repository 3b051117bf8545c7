"""JWT bearer authentication: with :mod:`shared.minting`, the only modules that import python-jose.

Tokens are checked against an explicit algorithm allow-list (``none`` is never accepted), the
configured issuer and audience, and ``exp``/``nbf`` (both required to be present where a token
carries them; ``exp`` is mandatory). Keys come from a PEM public key (or an HMAC secret for HS*
allow-lists) or a JWKS document, selected by ``kid``. Swapping the JOSE library touches this file.

A client sends the same token with every request until it expires, and checking an RS256 signature
is the dearest step of a request that is otherwise a few indexed statements. So the principal of a
verified token is kept per token string (:class:`PrincipalCache`): a bounded LRU whose entries end
at the token's ``exp`` and at most :data:`PRINCIPAL_CACHE_SECONDS` after they were verified. A
token is never accepted longer than it would have been without the cache; a key withdrawn from the
JWKS stops tokens already seen at most that many seconds later (the key set itself is refetched at
most every five minutes, so the window was already there). Failed verifications are not cached.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import httpx
from cachetools import TLRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jwk, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError, JWTError
from pydantic import BaseModel, Field, ValidationError

from shared.errors import Forbidden, Unauthorized
from shared.minting import Role as Role
from shared.minting import mint_token as mint_token
from shared.settings import ServiceSettings

PRINCIPAL_CACHE_SECONDS = 120.0
PRINCIPAL_CACHE_SIZE = 1024

_SYMMETRIC = {"HS256", "HS384", "HS512"}
_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}


# The roles a notice recipient's staff and systems act in: they read the notice detail view
# (case-api) and answer notices with receipts (notify-worker). One table, so the two agree.
RECIPIENT_ROLES = frozenset({Role.MUNICIPALITY, Role.NAV, Role.HEALTH})


class Principal(BaseModel):
    """Who is calling: taken from a verified token only."""

    subject: str
    role: Role
    organization_id: str | None = Field(None, description="Organization the caller acts for.")
    organization_number: str | None = Field(
        None, description="Maskinporten-style consumer organization number (9 digits)."
    )
    scopes: frozenset[str] = frozenset()
    token_id: str | None = None


class PrincipalCache:
    """Principals of verified tokens by token string: least recently used out first, each entry
    until its token's ``exp`` or ``max_age`` seconds after it was stored, whichever comes first
    (cachetools' time-aware LRU, with that deadline per entry)."""

    def __init__(
        self,
        *,
        size: int = PRINCIPAL_CACHE_SIZE,
        max_age: float = PRINCIPAL_CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.size = size
        self.max_age = max_age
        self.clock = clock
        self._entries: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=max(size, 1), ttu=self._until, timer=clock
        )

    def _until(self, _token: str, entry: tuple[Principal, float], now: float) -> float:
        return min(entry[1], now + self.max_age)

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        return entry[0] if entry is not None else None

    def put(self, token: str, principal: Principal, *, expires_at: float) -> None:
        if self.size > 0:  # an entry already past its deadline is not stored
            self._entries[token] = (principal, expires_at)

    def clear(self) -> None:
        self._entries.clear()


class TokenVerifier:
    """Verifies bearer tokens for one service's settings."""

    def __init__(self, settings: ServiceSettings, *, http_client: httpx.AsyncClient | None = None) -> None:
        self.algorithms = list(settings.jwt_algorithms)
        unknown = set(self.algorithms) - _SYMMETRIC - _ASYMMETRIC
        if unknown:
            raise ValueError(f"unsupported JWT algorithm(s): {sorted(unknown)}")
        if set(self.algorithms) & _SYMMETRIC and set(self.algorithms) & _ASYMMETRIC:
            # One key cannot safely serve both families (algorithm confusion).
            raise ValueError("do not mix HMAC and public-key algorithms in one allow-list")
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.pem = settings.jwt_public_key_pem
        self.jwks_url = settings.jwt_jwks_url
        self._jwks: dict[str, Any] | None = None
        self._jwks_fetched_at = 0.0
        self._http = http_client
        self.principals = PrincipalCache()

    async def _jwks_keys(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        assert self.jwks_url is not None
        stale = time.monotonic() - self._jwks_fetched_at > 300
        if self._jwks is None or refresh or stale:
            if self.jwks_url.startswith(("file://", "/")):
                raw = await asyncio.to_thread(Path(self.jwks_url.removeprefix("file://")).read_text)
                self._jwks = json.loads(raw)
            else:
                client = self._http or httpx.AsyncClient(timeout=5.0)
                try:
                    response = await client.get(self.jwks_url)
                    response.raise_for_status()
                    self._jwks = response.json()
                finally:
                    if self._http is None:
                        await client.aclose()
            self._jwks_fetched_at = time.monotonic()
        assert self._jwks is not None
        return list(self._jwks.get("keys", []))

    async def _key_for(self, header: dict[str, Any]) -> Any:
        if not self.jwks_url:
            return self.pem
        kid = header.get("kid")
        # An unknown kid refreshes the key set once (rotation), at most every 30 seconds.
        for refresh in (False, time.monotonic() - self._jwks_fetched_at > 30):
            keys = await self._jwks_keys(refresh=refresh)
            if kid is None and len(keys) == 1:
                return keys[0]
            for key in keys:
                if kid is not None and key.get("kid") == kid:
                    return key
        raise Unauthorized("Token signed with an unknown key")

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims or raise :class:`Unauthorized`."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise Unauthorized("Malformed token") from exc
        alg = str(header.get("alg", ""))
        if alg not in self.algorithms:
            raise Unauthorized("Token algorithm not allowed")
        key = await self._key_for(header)
        if isinstance(key, dict) and key.get("alg") and key["alg"] != alg:
            raise Unauthorized("Token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require_exp": True,
                    "require_iat": False,
                    "require_nbf": False,
                    "verify_at_hash": False,
                    "leeway": self.leeway,
                },
            )
        except ExpiredSignatureError as exc:
            raise Unauthorized("Token has expired") from exc
        except JWTClaimsError as exc:
            raise Unauthorized(f"Token claims rejected: {exc}") from exc
        except (JWTError, JOSEError, ValueError, TypeError) as exc:
            # TypeError: a time claim that is an array or an object (python-jose calls int() on it).
            raise Unauthorized("Token signature or format is invalid") from exc
        return claims

    async def principal(self, token: str) -> Principal:
        """The caller a token names: from the cache when this token was verified recently."""
        cached = self.principals.get(token)
        if cached is not None:
            return cached
        claims = await self.verify(token)
        try:
            role = Role(claims.get("role", ""))
        except ValueError as exc:
            raise Unauthorized("Token carries no known role") from exc
        scope = claims.get("scope", "")
        consumer = claims.get("consumer")
        try:
            principal = self._principal(claims, role, scope, consumer)
        except ValidationError as exc:
            raise Unauthorized("Token claims have the wrong shape") from exc
        expires_at = claims.get("exp")
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
            self.principals.put(token, principal, expires_at=float(expires_at))
        return principal

    @staticmethod
    def _principal(claims: dict[str, Any], role: Role, scope: Any, consumer: Any) -> Principal:
        return Principal(
            subject=str(claims.get("sub", "")),
            role=role,
            organization_id=claims.get("org"),
            organization_number=consumer.get("orgno") if isinstance(consumer, dict) else None,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            token_id=claims.get("jti"),
        )


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", description="JWT bearer token")


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.principal(credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """Dependency: the caller must hold one of ``roles`` (403 otherwise)."""
    allowed = frozenset(roles)

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"Role {principal.role.value!r} may not do this")
        return principal

    return check


def public_jwk(public_key_pem: str, *, kid: str, algorithm: str = "RS256") -> dict[str, Any]:
    """The JWKS entry for a PEM public key (for serving or testing JWKS)."""
    entry: dict[str, Any] = jwk.construct(public_key_pem, algorithm).to_dict()
    entry.update({"kid": kid, "use": "sig", "alg": algorithm})
    return entry
