"""notify-worker's tables. Imported by migrations/env.py; never reads settings at import."""

from __future__ import annotations

from shared.outbox import inbox_model, outbox_model

NotifyOutbox = outbox_model("notify", __name__)
NotifyInbox = inbox_model("notify", __name__)
