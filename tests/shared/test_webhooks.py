from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared import webhooks
from shared.webhooks import SigningKey

BODY = '{"type":"webhook.test.v1","data":{}}'


def test_a_new_hmac_secret_is_whsec_and_24_random_bytes() -> None:
    first, second = webhooks.new_hmac_secret(), webhooks.new_hmac_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 24
    assert first != second


def test_v1_signature_matches_the_standard_webhooks_reference() -> None:
    secret = webhooks.new_hmac_secret()
    now = int(time.time())
    signature = webhooks.sign("msg_1", now, BODY, [secret])
    assert signature.startswith("v1,")
    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, tz=UTC), BODY)
    assert signature == reference
    Webhook(secret).verify(BODY, webhooks.headers("msg_1", now, signature))


def test_v1_signature_fails_for_another_body() -> None:
    secret = webhooks.new_hmac_secret()
    now = int(time.time())
    signature = webhooks.sign("msg_1", now, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + " ", webhooks.headers("msg_1", now, signature))


def test_v1a_signature_verifies_with_the_ed25519_public_key() -> None:
    private, public = webhooks.new_ed25519_keypair()
    assert private.startswith("whsk_")
    assert public.startswith("whpk_")
    signature = webhooks.sign("msg_2", 1700000000, BODY, [SigningKey(kind="ed25519", secret=private)])
    version, value = signature.split(",")
    assert version == "v1a"
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    key.verify(base64.b64decode(value), b"msg_2.1700000000." + BODY.encode())
    with pytest.raises(InvalidSignature):
        key.verify(base64.b64decode(value), b"msg_2.1700000001." + BODY.encode())
    assert webhooks.verify_ed25519("msg_2", 1700000000, BODY, signature, public)
    assert not webhooks.verify_ed25519("msg_3", 1700000000, BODY, signature, public)


def test_several_keys_give_one_space_separated_signature_each() -> None:
    old, new = webhooks.new_hmac_secret(), webhooks.new_hmac_secret()
    private, public = webhooks.new_ed25519_keypair()
    now = int(time.time())
    header = webhooks.sign(
        "msg_3",
        now,
        BODY,
        [SigningKey("hmac", old), SigningKey("hmac", new), SigningKey("ed25519", private)],
    )
    parts = header.split(" ")
    assert [part.split(",")[0] for part in parts] == ["v1", "v1", "v1a"]
    for secret in (old, new):
        Webhook(secret).verify(BODY, webhooks.headers("msg_3", now, header))
    assert webhooks.verify_ed25519("msg_3", now, BODY, header, public)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_hmac_secret()).verify(BODY, webhooks.headers("msg_3", now, header))


def test_signing_needs_a_key_and_a_whsec_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        webhooks.sign("msg", 1, BODY, [])
    with pytest.raises(ValueError, match="whsec_"):
        webhooks.sign("msg", 1, BODY, ["not-a-secret"])


def test_a_fingerprint_names_a_key_without_revealing_it() -> None:
    secret = webhooks.new_hmac_secret()
    fingerprint = webhooks.fingerprint("hmac", secret)
    assert fingerprint.startswith("sha256:")
    assert secret.removeprefix("whsec_") not in fingerprint
    private, public = webhooks.new_ed25519_keypair()
    assert webhooks.public_key_of(private) == public
    assert webhooks.fingerprint("ed25519", private) != webhooks.fingerprint("hmac", secret)
