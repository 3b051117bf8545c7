"""Structured logs: identity numbers masked everywhere, correlation id per request."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import structlog

from shared.logging import NIN_MASK, configure_logging, mask_identity_numbers
from tests.conftest import auth

FNR = "01017012345"  # shaped like a fødselsnummer; masking does not depend on check digits
FNR_NO_LEADING_ZERO = "15017012345"  # as an int it keeps all 11 digits


def test_masking_covers_plain_spaced_and_embedded_numbers() -> None:
    assert mask_identity_numbers(f"person {FNR} moved") == f"person {NIN_MASK} moved"
    assert mask_identity_numbers("010170 12345") == NIN_MASK
    assert mask_identity_numbers(f"/cases?fnr={FNR}") == f"/cases?fnr={NIN_MASK}"
    # longer digit runs (account numbers, ids) are not identity numbers
    assert mask_identity_numbers("123456789012") == "123456789012"
    assert mask_identity_numbers("kommunenummer 0301") == "kommunenummer 0301"
    # hex correlation ids and tokens that happen to hold 11 digits in a row stay intact
    assert mask_identity_numbers("71f79898ff1444188402c60178156077") == "71f79898ff1444188402c60178156077"


def test_json_log_lines_never_carry_an_identity_number(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json=True)
    try:
        log = structlog.get_logger("test")
        log.info(
            "case.lookup", person=FNR, nested={"ids": [int(FNR_NO_LEADING_ZERO), "x"]}, note=f"fnr {FNR}"
        )
        logging.getLogger("uvicorn.error").info("stdlib line about %s", FNR)
        try:
            raise ValueError(f"bad person {FNR}")
        except ValueError:
            log.exception("case.failed")
        lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    finally:
        configure_logging(level="INFO", json=False)
    text = json.dumps(lines)
    assert FNR not in text
    assert FNR_NO_LEADING_ZERO not in text
    assert len(lines) == 3
    assert lines[0]["person"] == NIN_MASK
    assert lines[0]["nested"] == {"ids": [NIN_MASK, "x"]}
    assert lines[1]["event"] == f"stdlib line about {NIN_MASK}"
    assert lines[1]["logger"] == "uvicorn.error"
    assert NIN_MASK in lines[2]["exception"]


def test_json_log_lines_mask_keys_and_numbers_that_lost_their_leading_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", json=True)
    try:
        # 08086740746 as an int is 8086740746, ten digits; a JSON key is as visible as a value.
        structlog.get_logger("test").info(
            "body.rejected", number=8086740746, fields={"08086740746": 1}, note="fnr080867-40746"
        )
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        configure_logging(level="INFO", json=False)
    text = json.dumps(line)
    for leak in ("8086740746", "080867"):
        assert leak not in text
    assert line["number"] == NIN_MASK
    assert line["fields"] == {NIN_MASK: 1}


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # the services' own format: 32 lowercase hex digits


async def test_each_request_gets_a_correlation_id_echoed_and_logged(
    case_client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO", json=True)
    try:
        given = await case_client.get("/api/v1/me", headers={**auth("coordinator"), "X-Request-ID": TRACE})
        fresh = await case_client.get("/healthz")
        lines = [
            json.loads(line) for line in capsys.readouterr().err.strip().splitlines() if line.startswith("{")
        ]
    finally:
        configure_logging(level="INFO", json=False)
    assert given.headers["x-request-id"] == TRACE
    assert len(fresh.headers["x-request-id"]) == 32
    requests = [line for line in lines if line["event"] == "http.request"]
    assert {line["correlation_id"] for line in requests} == {TRACE, fresh.headers["x-request-id"]}
    assert requests[0]["path"] == "/api/v1/me"
    assert requests[0]["status"] == 200
