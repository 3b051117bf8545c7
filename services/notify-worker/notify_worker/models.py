"""notify-worker's tables. Imported by migrations/env.py; never reads settings at import.

Each domain keeps its tables in its own ``models.py`` (``notices``, ``deliveries``, ``receipts``);
this module imports them all, so one metadata holds every ``notify_*`` table, and adds the outbox
and the inbox.
"""

from __future__ import annotations

from notify_worker.deliveries.models import NotifyAttempt, NotifyDelivery, NotifyEndpointHealth
from notify_worker.notices.models import NotifyCase, NotifyNotice, NotifyTold
from notify_worker.receipts.models import NotifyReceipt
from shared.outbox import inbox_model, outbox_model

NotifyOutbox = outbox_model("notify", __name__)
NotifyInbox = inbox_model("notify", __name__)

__all__ = [
    "NotifyAttempt",
    "NotifyCase",
    "NotifyDelivery",
    "NotifyEndpointHealth",
    "NotifyInbox",
    "NotifyNotice",
    "NotifyOutbox",
    "NotifyReceipt",
    "NotifyTold",
]
