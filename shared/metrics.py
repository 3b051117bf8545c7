"""Prometheus metrics shared by the services (labelled by service, so the embedded mode can run
all three in one process on one registry)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "tilbake_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "tilbake_http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("tilbake_outbox_published_total", "Outbox events published", ["table"])
OUTBOX_PUBLISH_FAILURES = Counter(
    "tilbake_outbox_publish_failures_total", "Outbox publish attempts that failed", ["table"]
)
EVENTS_CONSUMED = Counter(
    "tilbake_events_consumed_total", "Events handled by a consumer", ["service", "type", "outcome"]
)
EVENTS_RETRIED = Counter(
    "tilbake_events_retried_total",
    "Messages whose handler failed, sent back to their queue after a wait",
    ["queue", "type", "reason"],
)
EVENTS_DEAD_LETTERED = Counter(
    "tilbake_events_dead_lettered_total",
    "Messages sent to a queue's dead-letter queue at once, without retries (they can never succeed)",
    ["queue", "type", "reason"],
)


def route_template(scope: Scope) -> str | None:
    """The matched route as a template (``/api/v1/organizations/{organization_id}``).

    Included routers are mounted, so the matched route only knows its own part of the path;
    the mount prefix is whatever precedes the concrete form of that part.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if template is None:
        return None
    try:
        concrete = template.format(**{k: str(v) for k, v in (scope.get("path_params") or {}).items()})
    except (KeyError, IndexError, ValueError):
        return str(template)
    path = str(scope.get("path", ""))
    if path.endswith(concrete):
        return path[: len(path) - len(concrete)] + str(template)
    return str(template)


class MetricsMiddleware:
    """Counts requests and their latency by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        begin = time.perf_counter()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = route_template(scope) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - begin)


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
