"""agreement-api's tables. Imported by migrations/env.py; never reads settings at import."""

from __future__ import annotations

from agreement_api.agreements.models import Agreement, AgreementParty, AgreementVersion, CaseRef, NoticeRule
from agreement_api.organizations.models import NavServiceArea, Organization
from agreement_api.webhooks.models import WebhookEndpoint, WebhookKey
from shared.idempotency import idempotency_model
from shared.outbox import inbox_model, outbox_model

AgreementOutbox = outbox_model("agreement", __name__)
AgreementInbox = inbox_model("agreement", __name__)
AgreementIdempotency = idempotency_model("agreement", __name__)

__all__ = [
    "Agreement",
    "AgreementIdempotency",
    "AgreementInbox",
    "AgreementOutbox",
    "AgreementParty",
    "AgreementVersion",
    "CaseRef",
    "NavServiceArea",
    "NoticeRule",
    "Organization",
    "WebhookEndpoint",
    "WebhookKey",
]
