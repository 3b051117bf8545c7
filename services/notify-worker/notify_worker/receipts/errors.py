from __future__ import annotations

from shared.errors import Conflict, NotFound


class NoticeNotFound(NotFound):
    title = "Notice not found"


class NoticeNotDelivered(Conflict):
    title = "Notice not delivered"


class ReceiptAlreadyFinal(Conflict):
    title = "Notice already answered"
