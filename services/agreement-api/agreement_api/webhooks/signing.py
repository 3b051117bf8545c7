"""Webhook signing keys at rest: generated here, Fernet-encrypted (MultiFernet, so the encryption
keys can rotate) before they are stored; the clear secret leaves only in the create/rotate answer
and to notify-worker (role ``service``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from fastapi import Request

from agreement_api.webhooks.models import KeyKind
from shared import webhooks


@dataclass(frozen=True)
class NewKey:
    kind: KeyKind
    secret: str
    public_key: str | None
    fingerprint: str


def generate(kind: KeyKind) -> NewKey:
    if kind is KeyKind.ED25519:
        secret, public = webhooks.new_ed25519_keypair()
        return NewKey(kind, secret, public, webhooks.fingerprint("ed25519", secret))
    secret = webhooks.new_hmac_secret()
    return NewKey(kind, secret, None, webhooks.fingerprint("hmac", secret))


class KeyVault:
    """Encrypts and decrypts signing secrets; the first encryption key encrypts, all decrypt."""

    def __init__(self, encryption_keys: list[str]) -> None:
        if not encryption_keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in encryption_keys])

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


@lru_cache(maxsize=8)
def vault_for(encryption_keys: tuple[str, ...]) -> KeyVault:
    return KeyVault(list(encryption_keys))


def get_vault(request: Request) -> KeyVault:
    return vault_for(tuple(request.app.state.settings.webhook_key_encryption_keys))
