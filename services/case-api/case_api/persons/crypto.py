"""National identity numbers at rest: Fernet-encrypted (MultiFernet for key rotation) and found by
a keyed hash, so the clear number is never stored, indexed or compared in SQL."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet

from shared.identifiers import keyed_hash


class IdentityVault:
    def __init__(self, *, hash_key: str, encryption_keys: list[str]) -> None:
        if not encryption_keys:
            raise ValueError("at least one encryption key is needed")
        self._hash_key = hash_key.encode()
        self._fernet = MultiFernet([Fernet(key.encode()) for key in encryption_keys])

    def lookup_hash(self, identity_number: str) -> str:
        return keyed_hash(identity_number, key=self._hash_key)

    def encrypt(self, identity_number: str) -> str:
        return self._fernet.encrypt(identity_number.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()
