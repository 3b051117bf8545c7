"""Bearer-token authentication: what is refused (401/403 problem+json) and what is accepted."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from case_api.config import Settings
from shared.auth import Role, TokenVerifier, mint_token, public_jwk
from shared.errors import Unauthorized
from shared.settings import DEV_JWT_ISSUER, DEV_JWT_PRIVATE_KEY_FILE, DEV_JWT_PUBLIC_KEY_FILE
from tests.conftest import auth

ME = "/api/v1/me"
POSTGRES_URL = "postgresql://x@y/z"


# --- token building by hand -------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode_segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims the services would accept (dev issuer, audience, a live exp/nbf)."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": DEV_JWT_ISSUER,
        "aud": "tilbake",
        "sub": "mallory",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "role": "admin",
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


@functools.cache
def rsa_private_pem(name: str) -> str:
    """A fresh 2048-bit RSA key per name (cached for the run)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign_rs256(payload: dict[str, Any], private_pem: str | None = None) -> str:
    """An RS256 token signed with cryptography directly (the dev key unless another is given)."""
    pem = private_pem if private_pem is not None else DEV_JWT_PRIVATE_KEY_FILE.read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = f"{encode_segment({'alg': 'RS256', 'typ': 'JWT'})}.{encode_segment(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def unsigned_token() -> str:
    """``alg: none`` with an empty signature."""
    return f"{encode_segment({'alg': 'none', 'typ': 'JWT'})}.{encode_segment(claims())}."


def hs256_with_public_key_as_secret() -> str:
    """Algorithm confusion: HMAC-SHA256 keyed with the RS256 public key PEM the service trusts."""
    secret = DEV_JWT_PUBLIC_KEY_FILE.read_bytes()
    signing_input = f"{encode_segment({'alg': 'HS256', 'typ': 'JWT'})}.{encode_segment(claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def with_tampered_signature() -> str:
    header, payload, signature = mint_token(role=Role.ADMIN).split(".")
    middle = len(signature) // 2
    flipped = "".join("B" if char == "A" else "A" for char in signature[middle : middle + 4])
    assert flipped != signature[middle : middle + 4]
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 4 :]}"


def with_tampered_payload() -> str:
    header, payload, signature = mint_token(role=Role.COORDINATOR).split(".")
    body = json.loads(b64url_decode(payload))
    assert body["role"] == "coordinator"
    body["role"] = "admin"
    return f"{header}.{encode_segment(body)}.{signature}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, path: str = ME) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("https://")
    assert body["title"] == "Unauthorized"
    assert body["status"] == 401
    assert body["instance"] == path
    return body


# --- the real app -----------------------------------------------------------------------------

REJECTED: list[Any] = [
    pytest.param(dict, "bearer token is required", id="no-token"),
    pytest.param(
        lambda: {"Authorization": "Basic ZGV2OmRldg=="}, "bearer token is required", id="basic-scheme"
    ),
    pytest.param(lambda: bearer("not-a-jwt"), "Malformed", id="malformed"),
    pytest.param(lambda: bearer(unsigned_token()), "algorithm not allowed", id="alg-none"),
    pytest.param(
        lambda: bearer(hs256_with_public_key_as_secret()),
        "algorithm not allowed",
        id="hs256-keyed-with-public-key",
    ),
    pytest.param(lambda: auth(Role.ADMIN, ttl_seconds=-120), "expired", id="expired-beyond-leeway"),
    pytest.param(
        lambda: auth(Role.ADMIN, not_before=int(time.time()) + 120), "not yet valid", id="not-yet-valid"
    ),
    pytest.param(lambda: auth(Role.ADMIN, audience="someone-else"), "audience", id="wrong-audience"),
    pytest.param(lambda: auth(Role.ADMIN, issuer="https://auth.example.org/"), "issuer", id="wrong-issuer"),
    pytest.param(lambda: bearer(with_tampered_signature()), "signature", id="tampered-signature"),
    pytest.param(lambda: bearer(with_tampered_payload()), "signature", id="tampered-payload"),
    pytest.param(
        lambda: auth(Role.ADMIN, private_key_pem=rsa_private_pem("stranger")),
        "signature",
        id="signed-by-another-key",
    ),
    pytest.param(lambda: bearer(sign_rs256(claims(exp=None))), None, id="no-exp-claim"),
    pytest.param(
        lambda: auth(Role.ADMIN, extra_claims={"role": "superuser"}), "no known role", id="unknown-role"
    ),
]


@pytest.mark.parametrize(("make_headers", "reason"), REJECTED)
async def test_me_rejects_bad_credentials_with_401_problem(
    case_client: httpx.AsyncClient, make_headers: Callable[[], dict[str, str]], reason: str | None
) -> None:
    response = await case_client.get(ME, headers=make_headers())
    body = assert_unauthorized(response)
    if reason is not None:
        assert reason in body["detail"]


async def test_hand_signed_token_is_accepted_so_rejections_are_about_the_defect(
    case_client: httpx.AsyncClient,
) -> None:
    response = await case_client.get(ME, headers=bearer(sign_rs256(claims(role="nav"))))
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "nav"


async def test_valid_dev_token_returns_the_principal(case_client: httpx.AsyncClient) -> None:
    response = await case_client.get(ME, headers=auth(Role.COORDINATOR, org="org-oslo", scopes=["b", "a"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == "coordinator"
    assert body["organization_id"] == "org-oslo"
    assert body["subject"] == "dev-user"
    assert body["scopes"] == ["a", "b"]


async def test_clock_skew_within_leeway_is_tolerated(case_client: httpx.AsyncClient) -> None:
    just_expired = await case_client.get(ME, headers=auth(Role.NAV, ttl_seconds=-10))
    almost_valid = await case_client.get(ME, headers=auth(Role.NAV, not_before=int(time.time()) + 10))
    assert just_expired.status_code == 200, just_expired.text
    assert almost_valid.status_code == 200, almost_valid.text


async def test_same_valid_token_works_on_the_agreement_api(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.get(ME, headers=auth(Role.MUNICIPALITY, org="org-halden"))
    assert response.status_code == 200
    assert response.json()["organization_id"] == "org-halden"


async def test_role_without_permission_gets_403_problem(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.post(
        "/api/v1/organizations",
        json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
        headers=auth(Role.COORDINATOR),
    )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body = response.json()
    assert body["type"].startswith("https://")
    assert body["title"] == "Forbidden"
    assert body["status"] == 403
    assert body["instance"] == "/api/v1/organizations"
    assert "coordinator" in body["detail"]


# --- TokenVerifier with a JWKS ----------------------------------------------------------------


def jwks_document() -> dict[str, Any]:
    return {
        "keys": [
            public_jwk(public_pem(rsa_private_pem("jwks-one")), kid="key-one"),
            public_jwk(public_pem(rsa_private_pem("jwks-two")), kid="key-two"),
        ]
    }


@pytest.fixture(params=["path", "file-uri"])
def jwks_file(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_document()))
    return str(path) if request.param == "path" else path.as_uri()


async def test_jwks_file_verifies_a_token_for_each_kid(jwks_file: str) -> None:
    verifier = TokenVerifier(Settings(env="test", database_url=POSTGRES_URL, jwt_jwks_url=jwks_file))
    for kid, key_name, role in [("key-one", "jwks-one", Role.NAV), ("key-two", "jwks-two", Role.HEALTH)]:
        token = mint_token(role=role, headers={"kid": kid}, private_key_pem=rsa_private_pem(key_name))
        principal = await verifier.principal(token)
        assert principal.role is role


async def test_jwks_refuses_unknown_kid_wrong_key_and_missing_kid(jwks_file: str) -> None:
    verifier = TokenVerifier(Settings(env="test", database_url=POSTGRES_URL, jwt_jwks_url=jwks_file))
    unknown_kid = mint_token(
        role=Role.ADMIN, headers={"kid": "key-three"}, private_key_pem=rsa_private_pem("jwks-three")
    )
    kid_of_another_key = mint_token(
        role=Role.ADMIN, headers={"kid": "key-one"}, private_key_pem=rsa_private_pem("jwks-two")
    )
    no_kid = mint_token(role=Role.ADMIN, private_key_pem=rsa_private_pem("jwks-one"))
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(unknown_kid)
    with pytest.raises(Unauthorized):
        await verifier.verify(kid_of_another_key)
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(no_kid)


async def test_jwks_over_http_is_fetched_with_the_given_client() -> None:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(200, json=jwks_document())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        settings = Settings(
            env="test",
            database_url=POSTGRES_URL,
            jwt_jwks_url="https://idp.example.org/.well-known/jwks.json",
        )
        verifier = TokenVerifier(settings, http_client=client)
        token = mint_token(
            role=Role.AUDITOR, headers={"kid": "key-two"}, private_key_pem=rsa_private_pem("jwks-two")
        )
        assert (await verifier.principal(token)).role is Role.AUDITOR
        assert (await verifier.principal(token)).role is Role.AUDITOR
    assert requested == ["https://idp.example.org/.well-known/jwks.json"]


# --- settings guards --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithms", [["none"], ["RS256", "none"], "RS256,NONE", ["None"]])
def test_settings_refuse_the_none_algorithm(algorithms: Any) -> None:
    with pytest.raises(ValidationError, match="none"):
        Settings(env="test", database_url=POSTGRES_URL, jwt_algorithms=algorithms)


def test_verifier_refuses_none_even_if_settings_validation_was_bypassed() -> None:
    settings = Settings(env="test", database_url=POSTGRES_URL).model_copy(update={"jwt_algorithms": ["none"]})
    with pytest.raises(ValueError, match="unsupported"):
        TokenVerifier(settings)


def test_verifier_refuses_mixing_hmac_and_public_key_algorithms() -> None:
    settings = Settings(env="test", database_url=POSTGRES_URL, jwt_algorithms=["RS256", "HS256"])
    with pytest.raises(ValueError, match="do not mix"):
        TokenVerifier(settings)


def test_production_settings_need_a_verification_key() -> None:
    with pytest.raises(ValidationError, match="production needs"):
        Settings(env="production", database_url=POSTGRES_URL)


def test_production_settings_refuse_the_development_key() -> None:
    with pytest.raises(ValidationError, match="development JWT key"):
        Settings(
            env="production",
            database_url=POSTGRES_URL,
            jwt_public_key_pem=DEV_JWT_PUBLIC_KEY_FILE.read_text(),
        )


def test_production_settings_accept_another_key() -> None:
    pem = public_pem(rsa_private_pem("production"))
    settings = Settings(
        env="production",
        database_url=POSTGRES_URL,
        amqp_url="amqp://broker/",
        jwt_public_key_pem=pem,
        identity_hash_key="production-hash-key-0123456789",
        identity_encryption_keys=["cHJvZHVjdGlvbi1rZXktMzItYnl0ZXMtbG9uZy0hISE="],
    )
    assert settings.jwt_public_key_pem == pem


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [[1], {"at": 1}], ids=["array", "object"])
async def test_a_signed_token_with_a_time_claim_of_the_wrong_type_is_401_on_every_service(
    case_client: httpx.AsyncClient, agreement_client: httpx.AsyncClient, claim: str, value: object
) -> None:
    """Validly signed, but ``exp``, ``nbf`` or ``iat`` an array or an object: the JOSE library
    raises TypeError, which is a refused token like any other, never a 500."""
    from notify_worker.config import Settings as WorkerSettings

    verifier = TokenVerifier(WorkerSettings(env="test", database_url=POSTGRES_URL))
    token = mint_token(role="admin", extra_claims={claim: value})
    with pytest.raises(Unauthorized):
        await verifier.principal(token)
    headers = {"Authorization": f"Bearer {token}"}
    for client in (case_client, agreement_client):
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
