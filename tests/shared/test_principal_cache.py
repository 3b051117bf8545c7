"""Verified principals are kept per token string: a bounded LRU that never outlives the token's
``exp`` nor ``max_age``, and never keeps a refusal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from case_api.config import Settings
from shared.auth import Principal, PrincipalCache, Role, TokenVerifier, mint_token
from shared.errors import Unauthorized

POSTGRES_URL = "postgresql://x@y/z"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def principal(subject: str = "kari") -> Principal:
    return Principal(subject=subject, role=Role.NAV)


def counting_verifier() -> tuple[TokenVerifier, list[str]]:
    """A real verifier whose signature checks are counted."""
    verifier = TokenVerifier(Settings(env="test", database_url=POSTGRES_URL))
    checked: list[str] = []
    verify = verifier.verify

    async def counted(token: str) -> dict[str, Any]:
        checked.append(token)
        return await verify(token)

    verifier.verify = counted  # type: ignore[method-assign]
    return verifier, checked


async def test_a_token_sent_again_is_not_verified_again() -> None:
    verifier, checked = counting_verifier()
    token = mint_token(role=Role.COORDINATOR, subject="ola", organization_id="org-1")
    first = await verifier.principal(token)
    second = await verifier.principal(token)
    assert checked == [token]
    assert second == first
    assert (second.subject, second.role, second.organization_id) == ("ola", Role.COORDINATOR, "org-1")


async def test_another_token_is_verified_on_its_own() -> None:
    verifier, checked = counting_verifier()
    one, other = mint_token(role=Role.NAV, subject="a"), mint_token(role=Role.HEALTH, subject="b")
    assert (await verifier.principal(one)).role is Role.NAV
    assert (await verifier.principal(other)).role is Role.HEALTH
    assert checked == [one, other]


async def test_a_refused_token_is_refused_every_time() -> None:
    verifier, checked = counting_verifier()
    expired = mint_token(role=Role.ADMIN, ttl_seconds=-120)
    for _ in range(2):
        with pytest.raises(Unauthorized, match="expired"):
            await verifier.principal(expired)
    assert checked == [expired, expired]
    assert len(verifier.principals) == 0


async def test_a_cached_token_is_refused_once_it_expires() -> None:
    verifier = TokenVerifier(Settings(env="test", database_url=POSTGRES_URL, jwt_leeway_seconds=0))
    token = mint_token(role=Role.ADMIN, ttl_seconds=1)
    assert (await verifier.principal(token)).role is Role.ADMIN
    await asyncio.sleep(2.2)  # the JOSE library compares whole seconds
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.principal(token)


def test_an_entry_ends_at_the_tokens_exp() -> None:
    clock = Clock()
    cache = PrincipalCache(max_age=120, clock=clock)
    cache.put("t", principal(), expires_at=clock.now + 30)
    clock.now += 29.9
    assert cache.get("t") == principal()
    clock.now += 0.1
    assert cache.get("t") is None
    assert len(cache) == 0


def test_an_entry_ends_after_max_age_whatever_the_exp() -> None:
    clock = Clock()
    cache = PrincipalCache(max_age=120, clock=clock)
    cache.put("t", principal(), expires_at=clock.now + 3600)
    clock.now += 119
    assert cache.get("t") is not None
    clock.now += 1
    assert cache.get("t") is None


def test_a_token_already_expired_is_not_stored() -> None:
    clock = Clock()
    cache = PrincipalCache(clock=clock)
    cache.put("t", principal(), expires_at=clock.now)
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_first() -> None:
    clock = Clock()
    cache = PrincipalCache(size=2, clock=clock)
    cache.put("a", principal("a"), expires_at=clock.now + 60)
    cache.put("b", principal("b"), expires_at=clock.now + 60)
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", principal("c"), expires_at=clock.now + 60)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") == principal("a")
    assert cache.get("c") == principal("c")
