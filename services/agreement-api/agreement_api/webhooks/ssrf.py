"""agreement-api's use of the shared webhook URL policy (shared/ssrf.py): a URL is checked when it
is stored or changed, when its endpoint is enabled again and right before a test event; a refused
URL is a 422 on the field ``url``. notify-worker checks it again before every delivery attempt."""

from __future__ import annotations

from agreement_api.webhooks.errors import InvalidWebhookUrl
from shared import ssrf
from shared.ssrf import IPAddress, UrlPolicy, forbidden_reason, pinned, pinned_client

__all__ = ["IPAddress", "UrlPolicy", "check_url", "forbidden_reason", "pinned", "pinned_client"]


async def check_url(url: str, policy: UrlPolicy) -> list[IPAddress]:
    """Refuse a URL that breaks the policy (422, ``field="url"``); returns its checked addresses."""
    try:
        return await ssrf.check_url(url, policy)
    except ssrf.UrlRefused as exc:
        raise InvalidWebhookUrl(str(exc), field="url") from exc
