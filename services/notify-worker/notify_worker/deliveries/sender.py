"""Sending one notice to one webhook endpoint: the thin payload, Standard Webhooks signatures and
the HTTP call with its timeouts (docs/notices.md, "Delivery"). Before every call the URL is checked
against the worker's URL policy and the connection goes to an address that check allowed
(shared/ssrf.py; docs/notices.md, "The URL at send time").

The payload carries ids, dates, the coordinator's work contact and a link back to case-api, never
the inmate's name or identity number: a receiver that may see more fetches it from ``detail_url``
with its own credentials.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from notify_worker.clients import SigningKey
from notify_worker.notices.models import NoticeKind
from notify_worker.notices.told import NoticeDate
from shared import ssrf, webhooks
from shared.contracts import events as contracts

USER_AGENT = "tilbake-notify-worker/webhook"

URL_REFUSED = "url_refused"  # the URL broke the policy at send time: nothing was sent
DNS_ERROR = "dns_error"  # the URL's host did not resolve: nothing was sent, retried


class NoticeView(NoticeDate, Protocol):
    """The columns of a notice its webhook body is built from (an ORM row or a Core row)."""

    @property
    def release_date_certainty(self) -> str | None: ...
    @property
    def coordinator_contact(self) -> dict[str, Any] | None: ...


def contract_for(
    notice: NoticeView,
) -> type[contracts.NoticeReleaseUpcoming | contracts.NoticeReleaseDateChanged]:
    """The webhook body's contract: a change notice or a milestone notice."""
    return (
        contracts.NoticeReleaseDateChanged
        if notice.kind is NoticeKind.CHANGE
        else contracts.NoticeReleaseUpcoming
    )


def event_type_for(notice: NoticeView) -> str:
    return contract_for(notice).TYPE


def detail_url(case_api_public_url: str, case_id: uuid.UUID) -> str:
    """case-api's view of the case for a notice's recipient (fetched with the recipient's own token)."""
    return f"{case_api_public_url.rstrip('/')}/api/v1/cases/{case_id}/notice-detail"


def payload(notice: NoticeView, *, case_api_public_url: str) -> dict[str, Any]:
    """The thin body of a notice: ids, the milestone, the date and how sure it is, whom to call
    (the case's coordinator, a member of staff) and where to read more.

    Built only from the notice row: the certainty and the coordinator were stored when the notice
    was planned, so every retry and every redelivery sends the same bytes."""
    return {
        "type": event_type_for(notice),
        "notice_id": str(notice.id),
        "case_id": str(notice.case_id),
        "recipient_organization_id": str(notice.recipient_organization_id),
        "milestone_days": notice.milestone_days,
        "release_date": notice.release_date.isoformat(),
        "release_date_certainty": notice.release_date_certainty,
        "coordinator": notice.coordinator_contact,
        "detail_url": detail_url(case_api_public_url, notice.case_id),
    }


def encode(body: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the same notice gives the same bytes on every retry."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    status_code: int | None
    duration_ms: int
    error_class: str | None  # None only for a 2xx answer
    retry_after_seconds: float | None = None
    refusal: str | None = None  # why the URL was refused (URL_REFUSED), for the log

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def permanent(self) -> bool:
        """Never worth another attempt: 410 Gone, or a URL the policy refuses."""
        return self.status_code == 410 or self.error_class == URL_REFUSED


def error_class_of(status_code: int) -> str | None:
    if 200 <= status_code < 300:
        return None
    if status_code == 410:
        return "gone"
    if status_code == 429:
        return "rate_limited"
    if status_code >= 500:
        return "server_error"
    if status_code >= 400:
        return "client_error"
    return "unexpected_status"  # 1xx/3xx: redirects are not followed


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


# The most of an answer's body read so that its connection can be kept; a longer one closes it.
MAX_ANSWER_BYTES = 64 * 1024


class WebhookSender:
    """POSTs signed notices to URLs that pass ``policy``. Owns its HTTP session (aiohttp:
    docs/benchmarks.md measures it against httpx for these POSTs): connections only to the addresses
    the check allowed, no redirects, no proxies from the environment, connect and read timeouts
    from the settings."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        policy: ssrf.UrlPolicy,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.policy = policy
        self._resolve_timeout = connect_timeout
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._verify = verify
        self._http: aiohttp.ClientSession | None = None  # made in the event loop, at the first send

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = ssrf.pinned_session(
                connect_timeout=self._connect_timeout, read_timeout=self._read_timeout, verify=self._verify
            )
        return self._http

    async def send(self, url: str, webhook_id: str, body: bytes, keys: Sequence[SigningKey]) -> Outcome:
        """Check ``url`` (resolving its host once), sign ``body`` with every key (one signature each,
        as during a rotation) and POST it to an address the check allowed."""
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            addresses = await ssrf.check_url(url, self.policy, resolve_timeout=self._resolve_timeout)
        except ssrf.HostNotResolved:
            return Outcome(None, elapsed(), DNS_ERROR)
        except ssrf.UrlRefused as exc:
            return Outcome(None, elapsed(), URL_REFUSED, refusal=str(exc))
        timestamp = int(time.time())
        signature = webhooks.sign(
            webhook_id,
            timestamp,
            body,
            [webhooks.SigningKey(kind=key.kind, secret=key.secret) for key in keys],
        )
        headers = {
            **webhooks.headers(webhook_id, timestamp, signature),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            with ssrf.pinned(url, addresses):
                async with self._session().post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    retry_after = response.headers.get("retry-after")
                    length = response.content_length
                    if length is not None and length <= MAX_ANSWER_BYTES:
                        await response.read()
        except aiohttp.ConnectionTimeoutError:
            return Outcome(None, elapsed(), "connect_timeout")
        except aiohttp.SocketTimeoutError:
            return Outcome(None, elapsed(), "read_timeout")
        except TimeoutError:
            return Outcome(None, elapsed(), "timeout")
        except aiohttp.ClientConnectorError:
            return Outcome(None, elapsed(), "connect_error")
        except aiohttp.ClientError:
            return Outcome(None, elapsed(), "transport_error")
        seconds = retry_after_seconds(retry_after) if status == 429 else None
        return Outcome(status, elapsed(), error_class_of(status), seconds)
