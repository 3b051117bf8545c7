"""The recipient's answer to a notice: received, accepted (with a contact person) or rejected."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse

from notify_worker.receipts import service
from notify_worker.receipts.schemas import RECEIPT_EXAMPLES, ReceiptCreate, ReceiptList, ReceiptRead
from shared.auth import PrincipalDep
from shared.db import SessionDep
from shared.errors import problem_responses

router = APIRouter(prefix="/notices/{notice_id}/receipts", tags=["receipts"])


@router.post(
    "",
    response_model=ReceiptRead,
    status_code=201,
    responses={
        200: {
            "model": ReceiptRead,
            "description": "The same answer again: the receipt stored the first time",
        },
        **problem_responses(401, 403, 404, 409, 415, 422),
    },
    summary="Answer a notice",
)
async def submit_receipt(
    notice_id: uuid.UUID,
    body: Annotated[ReceiptCreate, Body(openapi_examples=RECEIPT_EXAMPLES)],
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    """The recipient says it has the notice (`received`), takes the case on (`accepted`, naming a
    contact person and a substitute, each with a phone number or an email address) or declines
    (`rejected`, with a reason). Only in a recipient role (`municipality`, `nav`, `health`: those
    that read the notice detail view; 403 for others) with a token of the notice's recipient
    organization; another organization's notice is a 404. Only a delivered notice takes an answer
    (409 otherwise).

    `received` may come any time before a final answer; `accepted` and `rejected` are final, and
    another answer afterwards is a 409. Sending an answer that is already stored again returns that
    receipt with 200, so a lost reply can be retried safely. Emits `notice.receipt_received.v1`,
    `notice.receipt_accepted.v1` (case-api adds the contact to the case's responsibility group) or
    `notice.receipt_rejected.v1`."""
    submitted = await service.submit(session, principal=principal, notice_id=notice_id, data=body)
    read = ReceiptRead.model_validate(submitted.receipt)
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if submitted.created else 200)


@router.get(
    "",
    response_model=ReceiptList,
    responses=problem_responses(401, 403, 404),
    summary="A notice's receipts",
)
async def list_receipts(notice_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> ReceiptList:
    """What the recipient answered, oldest first: for the recipient in a recipient role
    (`municipality`, `nav`, `health`), and for `admin` and `auditor`."""
    notice = await service.notice_to_read(session, principal, notice_id)
    receipts = await service.receipts_of(session, notice.id)
    return ReceiptList(items=[ReceiptRead.model_validate(receipt) for receipt in receipts])
