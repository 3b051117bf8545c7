"""Standard Webhooks signatures (https://www.standardwebhooks.com), shared by agreement-api (test
deliveries) and notify-worker (every delivery).

The signed content is ``f"{msg_id}.{timestamp}.{body}"``. A symmetric key is a ``whsec_`` secret
(base64 after the prefix) and signs ``v1,<base64 HMAC-SHA256>``; an asymmetric key is an ed25519
private key and signs ``v1a,<base64 ed25519 signature>``. With several valid keys (during a
rotation) the ``webhook-signature`` header carries one signature per key, space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC_PREFIX = "whsec_"
ED25519_SECRET_PREFIX = "whsk_"
ED25519_PUBLIC_PREFIX = "whpk_"

KeyKind = Literal["hmac", "ed25519"]


@dataclass(frozen=True)
class SigningKey:
    """One key to sign with: an HMAC ``whsec_`` secret or an ed25519 private key."""

    kind: KeyKind
    secret: str
    """``whsec_<base64>`` for hmac; ``whsk_<base64 raw 32-byte private key>`` (or plain base64) for ed25519."""


def new_hmac_secret() -> str:
    """A fresh symmetric secret: ``whsec_`` + base64 of 24 random bytes."""
    return HMAC_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_ed25519_keypair() -> tuple[str, str]:
    """A fresh ed25519 key pair: (``whsk_`` + base64 private key, ``whpk_`` + base64 public key)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return (
        ED25519_SECRET_PREFIX + base64.b64encode(raw_private).decode(),
        ED25519_PUBLIC_PREFIX + base64.b64encode(raw_public).decode(),
    )


def _decode(value: str, prefix: str) -> bytes:
    return base64.b64decode(value.removeprefix(prefix), validate=True)


def hmac_key_bytes(secret: str) -> bytes:
    if not secret.startswith(HMAC_PREFIX):
        raise ValueError("an HMAC webhook secret starts with 'whsec_'")
    return _decode(secret, HMAC_PREFIX)


def ed25519_private_key(secret: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_decode(secret, ED25519_SECRET_PREFIX))


def ed25519_public_key(public: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_decode(public, ED25519_PUBLIC_PREFIX))


def public_key_of(secret: str) -> str:
    """The ``whpk_`` public key for an ed25519 ``whsk_`` private key."""
    raw = (
        ed25519_private_key(secret)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return ED25519_PUBLIC_PREFIX + base64.b64encode(raw).decode()


def fingerprint(kind: KeyKind, secret: str) -> str:
    """A short, non-reversible name for a key (SHA-256 of the public key or of the HMAC secret)."""
    material = public_key_of(secret).encode() if kind == "ed25519" else hmac_key_bytes(secret)
    return "sha256:" + hashlib.sha256(material).hexdigest()[:32]


def signed_content(msg_id: str, timestamp: int | str, body: str | bytes) -> bytes:
    text = body.decode() if isinstance(body, bytes) else body
    return f"{msg_id}.{timestamp}.{text}".encode()


def sign_one(kind: KeyKind, secret: str, content: bytes) -> str:
    if kind == "hmac":
        digest = hmac.new(hmac_key_bytes(secret), content, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()
    if kind == "ed25519":
        return "v1a," + base64.b64encode(ed25519_private_key(secret).sign(content)).decode()
    raise ValueError(f"unknown key kind {kind!r}")


def sign(msg_id: str, timestamp: int | str, body: str | bytes, keys: Iterable[SigningKey | str]) -> str:
    """The ``webhook-signature`` header value: one ``v1,…``/``v1a,…`` entry per key, space-separated.

    A bare string key is taken as an HMAC ``whsec_`` secret."""
    content = signed_content(msg_id, timestamp, body)
    parts = []
    for key in keys:
        signing_key = key if isinstance(key, SigningKey) else SigningKey(kind="hmac", secret=key)
        parts.append(sign_one(signing_key.kind, signing_key.secret, content))
    if not parts:
        raise ValueError("at least one signing key is needed")
    return " ".join(parts)


def verify_ed25519(
    msg_id: str, timestamp: int | str, body: str | bytes, header: str, public_key: str
) -> bool:
    """True when one ``v1a`` signature in ``header`` verifies under ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    content = signed_content(msg_id, timestamp, body)
    key = ed25519_public_key(public_key)
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(value), content)
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    """The three Standard Webhooks request headers."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
