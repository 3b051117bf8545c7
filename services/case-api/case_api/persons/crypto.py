"""National identity numbers at rest: Fernet-encrypted (MultiFernet for key rotation) and found by
a keyed hash, so the clear number is never stored, indexed or compared in SQL. A token subject that
holds one is stored as a keyed pseudonym instead."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet

from shared.identifiers import contains_identity_number, keyed_hash

SUBJECT_PSEUDONYM_PREFIX = "pseudonym:"


class IdentityVault:
    def __init__(self, *, hash_key: str, encryption_keys: list[str]) -> None:
        if not encryption_keys:
            raise ValueError("at least one encryption key is needed")
        self._hash_key = hash_key.encode()
        self._fernet = MultiFernet([Fernet(key.encode()) for key in encryption_keys])

    def lookup_hash(self, identity_number: str) -> str:
        return keyed_hash(identity_number, key=self._hash_key)

    def subject_pseudonym(self, subject: str) -> str:
        """``subject`` itself, or a stable keyed pseudonym when it holds an identity number (some
        identity providers use the fødselsnummer as ``sub``). Kept apart from ``lookup_hash`` by a
        prefix, so a caller's pseudonym never equals the identity hash of a registered person."""
        if not contains_identity_number(subject):
            return subject
        return SUBJECT_PSEUDONYM_PREFIX + keyed_hash(f"token-subject:{subject}", key=self._hash_key)[:32]

    def encrypt(self, identity_number: str) -> str:
        return self._fernet.encrypt(identity_number.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()
