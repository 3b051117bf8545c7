"""Demo webhook receiver: verifies Standard Webhooks signatures and prints what it gets.

``v1`` (HMAC) is verified with the public ``standardwebhooks`` library unchanged; ``v1a``
(ed25519) with ``cryptography`` over the same signed content (``{id}.{timestamp}.{body}``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verify_v1a(public_key: Ed25519PublicKey, headers: Mapping[str, str], body: bytes) -> bool:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for item in headers.get("webhook-signature", "").split():
        version, _, signature = item.partition(",")
        if version != "v1a":
            continue
        try:
            public_key.verify(base64.b64decode(signature), signed)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def create_receiver(*, secret: str, ed25519_public_key: Ed25519PublicKey | None = None) -> FastAPI:
    app = FastAPI(title="demo webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.received = []
    verifier = Webhook(secret)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        schemes = {item.partition(",")[0] for item in headers.get("webhook-signature", "").split()}
        try:
            if "v1" in schemes:
                verifier.verify(body, headers)
            elif "v1a" in schemes and ed25519_public_key is not None:
                if not verify_v1a(ed25519_public_key, headers, body):
                    raise WebhookVerificationError("no matching v1a signature")
            else:
                raise WebhookVerificationError("no signature this receiver can check")
        except (WebhookVerificationError, KeyError) as exc:
            print(f"[receiver] REJECTED {headers.get('webhook-id')}: {exc}", flush=True)
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        payload = json.loads(body)
        app.state.received.append(payload)
        print(
            f"[receiver] verified {headers['webhook-id']}: {json.dumps(payload, ensure_ascii=False)}",
            flush=True,
        )
        return JSONResponse({"status": "received"}, status_code=200)

    return app
