"""The webhook receiver of the worker benchmark: ``uvicorn --factory benchmarks.receiver:create_app``.

A bare ASGI app (no framework: the receiver must not be what limits the worker). It stands for
several recipients' endpoints, one path each (``/hook/0``, ``/hook/1``, ...).
Every POST is verified with the reference ``standardwebhooks`` package against the secret of the
endpoint its path stands for (``BENCH_RECEIVER_SECRETS``, a JSON object path -> ``whsec_`` secret);
a request that fails verification is answered 401 and counted, never recorded as delivered. For each verified notice it records the wall-clock arrival time, the
``notice_id`` and the ``webhook-id``, so the suite can compute due-to-delivered lag and count
repeated POSTs. ``GET /results`` returns everything recorded so far. An endpoint named in
``BENCH_RECEIVER_DELAYS`` (a JSON object path -> seconds; optional) answers only that long after
its POST arrived: a slow receiver (its arrivals are recorded when they arrive).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Receiver:
    def __init__(self, secrets: dict[str, str], delays: dict[str, float] | None = None) -> None:
        self.webhooks = {path: Webhook(secret) for path, secret in secrets.items()}
        self.delays = delays or {}
        self.arrivals: list[tuple[str, str, float]] = []  # (notice_id, webhook-id, unix time)
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/results":
            body = json.dumps({"arrivals": self.arrivals, "rejected": self.rejected}).encode()
            await self._answer(send, 200, body)
            return
        if scope["method"] == "GET" and scope["path"] == "/healthz":
            await self._answer(send, 200, b"{}")
            return
        if scope["method"] != "POST":
            await self._answer(send, 405, b"")
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        arrived = time.time()
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        webhook = self.webhooks.get(scope["path"])
        try:
            if webhook is None:
                raise WebhookVerificationError("no endpoint at this path")
            notice = webhook.verify(b"".join(chunks), headers)
        except (WebhookVerificationError, ValueError):
            self.rejected += 1
            await self._answer(send, 401, b"")
            return
        self.arrivals.append((str(notice.get("notice_id")), headers.get("webhook-id", ""), arrived))
        delay = self.delays.get(scope["path"], 0.0)
        if delay:
            await asyncio.sleep(delay)  # the sender may have given up meanwhile: uvicorn drops the answer
        await self._answer(send, 204, b"")

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json")] if body else []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app() -> Receiver:
    """uvicorn's factory (``--factory``): the secrets and delays are read when the process starts."""
    return Receiver(
        json.loads(os.environ["BENCH_RECEIVER_SECRETS"]),
        json.loads(os.environ.get("BENCH_RECEIVER_DELAYS", "{}")),
    )
